"""Value transforms and per-gene statistics on dense arrays or CSR (no AnnData state)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis, min_max_axis

from geneae.errors import DataWarning, InputError
from geneae.logscale import LogScale
from geneae.pp.blocks import Matrix, densify, row_slices, row_sums

Fitted = TypeVar("Fitted")

#: The loess spans of ``seurat_v3`` tried in turn: scanpy's 0.3 first, wider ones where that
#: fit is singular. skmisc's loess fails outright (R's warns and goes on) where thousands of
#: genes share one low mean and variance, e.g. the 2,304 genes seen in a single cell of the
#: whole-genome worm neuron table, which fits at 0.4.
SEURAT_V3_SPANS = (0.3, 0.4, 0.5, 1.0)


def normalize_total(x: Matrix, target_sum: float, over: int | None = None) -> Matrix:
    """Scale each row of ``x`` so that it sums to ``target_sum``, in place.

    ``over``: the row's first ``over`` columns sum to ``target_sum`` (None: all of them),
    the others on the same scale. All-zero rows stay zero. ``x`` must be a private float
    copy (e.g. from :func:`take`): it is overwritten.
    """
    sums = row_sums(x if over is None or over >= x.shape[1] else x[:, :over])
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


def unlogged(x: Matrix, scale: LogScale) -> np.ndarray:
    """``x`` taken out of the log ``scale`` (zero expression at its floor), as float32.

    A new dense array, computed a block of rows at a time in float64: a sparse ``x`` is
    densified, since its absent entries are log values of 0, not the floor.
    """
    out = np.empty(x.shape, dtype=np.float32)
    for rows in row_slices(x):
        out[rows] = scale.undo(densify(x[rows]))  # at most 1e9, or inf: no float32 overflow
    return out


def floored_at_zero(x: Matrix) -> Matrix:
    """``x`` shifted by a constant so that its smallest value is 0 (as is, when it is already).

    Log values with a small pseudo-count have a negative floor where the gene was not
    measured (UCSC Xena's log2(TPM + 0.001): -9.97). The dispersion flavours of highly
    variable genes take ``expm1`` of log values and need that floor at 0, as log1p puts it;
    the shift moves every value alike, so each gene's log values keep their spread.
    """
    lo = float(x.min())
    if lo >= 0:
        return x
    return np.asarray(densify(x), dtype=np.float64) - lo


def scanpy_hvg(x: Matrix, flavor: str, n_top: int) -> np.ndarray:
    """Mask of scanpy's ``n_top`` highly variable genes of ``x`` for ``flavor``.

    ``seurat_v3`` fits its loess at the first of :data:`SEURAT_V3_SPANS` that is not singular.
    """
    import scanpy as sc  # slow to import; only needed here

    data = ad.AnnData(X=x, var=pd.DataFrame(index=[f"g{i}" for i in range(x.shape[1])]))

    def select(span: float | None) -> pd.DataFrame:
        extra = {} if span is None else {"span": span}
        return sc.pp.highly_variable_genes(
            data, flavor=flavor, n_top_genes=n_top, inplace=False, **extra
        )

    try:
        table = with_loess_span(select, x.shape[1]) if flavor == "seurat_v3" else select(None)
    except ImportError as exc:  # seurat_v3 needs scikit-misc
        raise ImportError(
            f"hvg_flavor={flavor!r} needs an optional package ({exc}); install it with "
            "`pip install scikit-misc`, or choose hvg_flavor='seurat' / 'variance'."
        ) from exc
    return table["highly_variable"].to_numpy(dtype=bool)


def with_loess_span(fit: Callable[[float], Fitted], n_genes: int) -> Fitted:
    """``fit(span)`` at the first of :data:`SEURAT_V3_SPANS` whose loess is not singular.

    A span wider than scanpy's is said in a warning; a loess singular at every span is an
    :class:`~geneae.errors.InputError` naming the way out.
    """
    for span in SEURAT_V3_SPANS:
        try:
            fitted = fit(span)
        except ValueError as exc:
            # skmisc's loess reports its numerical failures as ValueError(bytes)
            if not (exc.args and isinstance(exc.args[0], bytes)):
                raise
            failure = exc.args[0].decode(errors="replace").strip()
            continue
        if span != SEURAT_V3_SPANS[0]:
            warnings.warn(
                f"hvg_flavor seurat_v3: the loess of gene variance on mean was singular at "
                f"span {SEURAT_V3_SPANS[0]:g} (many genes of the same low mean, such as genes "
                f"seen in one cell); fitted at span {span:g} instead",
                DataWarning,
                stacklevel=2,
            )
        return fitted
    raise InputError(
        f"hvg_flavor seurat_v3: the loess of gene variance on mean is singular on these "
        f"{n_genes} genes at every span tried ({failure}); drop rarely seen genes "
        "(preprocess.min_cells_per_gene, e.g. 3) or choose preprocess.hvg_flavor 'seurat'."
    )
