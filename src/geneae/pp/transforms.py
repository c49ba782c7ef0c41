"""Value transforms and per-gene statistics on dense arrays or CSR (no AnnData state)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis, min_max_axis

from geneae.pp.blocks import Matrix, densify, row_sums


def normalize_total(x: Matrix, target_sum: float) -> Matrix:
    """Scale each row of ``x`` to sum to ``target_sum``, in place; all-zero rows stay zero.

    ``x`` must be a private float copy (e.g. from :func:`take`): it is overwritten.
    """
    sums = row_sums(x)
    factor = np.divide(target_sum, sums, out=np.zeros_like(sums), where=sums > 0)
    if sp.issparse(x):
        x.data *= np.repeat(factor, np.diff(x.indptr))
    else:
        x *= factor[:, None]
    return x


def log1p(x: Matrix) -> Matrix:
    """``log(1 + x)`` in place on a private float copy ``x``."""
    values = x.data if sp.issparse(x) else x
    np.log1p(values, out=values)
    return x


def mean_var(x: Matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene mean and population variance (ddof=0), float64."""
    if sp.issparse(x):
        mean, var = mean_variance_axis(x, axis=0)
        return np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
    return x.mean(axis=0), x.var(axis=0)


def min_max(x: Matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene minimum and maximum (implicit sparse zeros included)."""
    if sp.issparse(x):
        lo, hi = min_max_axis(x, axis=0)
        return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return x.min(axis=0), x.max(axis=0)


def median_abs_deviation(x: Matrix, chunk: int = 512) -> np.ndarray:
    """Per-gene median absolute deviation from the median (unscaled), chunked over genes."""
    out = np.empty(x.shape[1], dtype=np.float64)
    for start in range(0, x.shape[1], chunk):
        block = densify(x[:, start : start + chunk])
        med = np.median(block, axis=0)
        out[start : start + chunk] = np.median(np.abs(block - med), axis=0)
    return out


def top(score: np.ndarray, n: int) -> np.ndarray:
    """Mask of the ``n`` highest scores (ties: the earlier gene wins)."""
    mask = np.zeros(score.size, dtype=bool)
    mask[np.argsort(-score, kind="stable")[:n]] = True
    return mask


def scanpy_hvg(x: Matrix, flavor: str, n_top: int) -> np.ndarray:
    """Mask of scanpy's ``n_top`` highly variable genes of ``x`` for ``flavor``."""
    import scanpy as sc  # slow to import; only needed here

    data = ad.AnnData(X=x, var=pd.DataFrame(index=[f"g{i}" for i in range(x.shape[1])]))
    try:
        table = sc.pp.highly_variable_genes(data, flavor=flavor, n_top_genes=n_top, inplace=False)
    except ImportError as exc:  # seurat_v3 needs scikit-misc
        raise ImportError(
            f"hvg_flavor={flavor!r} needs an optional package ({exc}); install it with "
            "`pip install scikit-misc`, or choose hvg_flavor='seurat' / 'variance'."
        ) from exc
    return table["highly_variable"].to_numpy(dtype=bool)
