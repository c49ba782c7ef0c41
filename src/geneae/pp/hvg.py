"""Highly variable genes from per-gene statistics gathered a block of rows at a time.

Scanpy's selections need only a few numbers per gene, so data on disk can be scored in
passes over blocks of rows (:mod:`geneae.pp.streaming`) and give the same genes as
:func:`geneae.pp.transforms.scanpy_hvg` on the whole matrix:

- ``seurat_v3`` (on counts): the mean and variance of each gene, a loess fit of
  log10(variance) on log10(mean), then in a second pass the sums of each gene's values
  clipped at ``mean + sqrt(n) * sd_fitted``; genes ranked by the normalised variance.
- ``seurat`` / ``cell_ranger``: the mean and variance of each gene (``seurat``: of
  ``expm1`` of the log values), dispersions normalised within bins of mean expression.
- ``variance``: the variance of each gene's log values.

``mad`` (median absolute deviation) needs every value of a gene at once and does not
stream.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.pp import transforms as T
from geneae.pp.blocks import Matrix

__all__ = ["STREAMING_FLAVORS", "ClippedSums", "Moments", "dispersion_top", "seurat_v3_top"]

STREAMING_FLAVORS = ("seurat_v3", "seurat", "cell_ranger", "variance")


class Moments:
    """Per-gene count, mean and sum of squared deviations, merged block by block.

    Chan et al.'s pairwise update: each block's own mean and variance are merged into the
    running ones, which stays accurate where sums of squares would cancel.
    """

    def __init__(self, n_genes: int) -> None:
        self.n = 0
        self.mean = np.zeros(n_genes)
        self.m2 = np.zeros(n_genes)

    def add(self, block: Matrix) -> None:
        k = block.shape[0]
        if k == 0:
            return
        mean, var = T.mean_var(block)
        total = self.n + k
        delta = mean - self.mean
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + var * k + delta**2 * (self.n * k / total)
        self.n = total

    def var(self, ddof: int = 0) -> np.ndarray:
        return self.m2 / max(self.n - ddof, 1)


class ClippedSums:
    """Per-gene sums of values and of squared values, each value clipped at ``clip``."""

    def __init__(self, clip: np.ndarray) -> None:
        self.clip = clip
        self.sum = np.zeros(clip.size)
        self.sq = np.zeros(clip.size)

    def add(self, block: Matrix) -> None:
        if sp.issparse(block):
            block = sp.csr_matrix(block, dtype=np.float64)
            values = np.minimum(block.data, self.clip[block.indices])
            self.sum += np.bincount(block.indices, values, minlength=self.clip.size)
            self.sq += np.bincount(block.indices, values**2, minlength=self.clip.size)
        else:
            values = np.minimum(np.asarray(block, dtype=np.float64), self.clip)
            self.sum += values.sum(0)
            self.sq += np.square(values).sum(0)


def seurat_v3_fit(mean: np.ndarray, var: np.ndarray, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    """(regularised sd, clip value) of each gene from the counts' mean and variance (ddof 1).

    The loess of scanpy's ``seurat_v3`` (degree 2; span 0.3, or the first wider span of
    :data:`geneae.pp.transforms.SEURAT_V3_SPANS` where that is singular) on the genes whose
    variance is not 0.
    """
    try:
        from skmisc.loess import loess
    except ImportError as exc:
        raise ImportError(
            f"hvg_flavor='seurat_v3' needs scikit-misc ({exc}); install it with "
            "`pip install scikit-misc`, or choose hvg_flavor='seurat' / 'variance'."
        ) from exc
    not_const = var > 0
    fitted = np.zeros(mean.size)
    x, y = np.log10(mean[not_const]), np.log10(var[not_const])

    def fit(span: float) -> np.ndarray:
        model = loess(x, y, span=span, degree=2)
        model.fit()
        return model.outputs.fitted_values

    fitted[not_const] = T.with_loess_span(fit, int(not_const.sum()))
    reg_std = np.sqrt(10**fitted)
    return reg_std, reg_std * np.sqrt(n_obs) + mean


def seurat_v3_top(
    mean: np.ndarray, reg_std: np.ndarray, sums: ClippedSums, n_obs: int, n_top: int
) -> np.ndarray:
    """Mask of the ``n_top`` genes of highest normalised variance, ranked as scanpy does."""
    norm_var = (1 / ((n_obs - 1) * np.square(reg_std))) * (
        n_obs * np.square(mean) + sums.sq - 2 * sums.sum * mean
    )
    # Ranks by argsort twice, as scanpy: with one batch its top genes are the ranks below
    # n_top.
    return np.argsort(np.argsort(-norm_var)) < n_top


def dispersion_top(mean: np.ndarray, var: np.ndarray, flavor: str, n_top: int) -> np.ndarray:
    """Mask of scanpy's ``seurat`` / ``cell_ranger`` top genes.

    From each gene's mean and variance (ddof 1; for ``seurat`` those of ``expm1`` of the
    log values); ties at the cut-off are all kept, as in scanpy.
    """
    mean = mean.copy()
    mean[mean == 0] = 1e-12
    dispersion = var / mean
    if flavor == "seurat":
        dispersion[dispersion == 0] = np.nan
        dispersion = np.log(dispersion)
        mean = np.log1p(mean)
        bins = pd.cut(pd.Series(mean), bins=20)
    else:
        edges = np.r_[-np.inf, np.percentile(mean, np.arange(10, 105, 5)), np.inf]
        bins = pd.cut(pd.Series(mean), bins=edges)
    frame = pd.DataFrame({"bin": bins, "dispersion": dispersion})
    grouped = frame.groupby("bin", observed=True)["dispersion"]
    if flavor == "seurat":
        stats = grouped.agg(avg="mean", dev="std")
        single = stats["dev"].isnull()  # one gene in the bin: its normalised dispersion is 1
        stats.loc[single, "dev"] = stats.loc[single, "avg"]
        stats.loc[single, "avg"] = 0
    else:
        stats = grouped.agg(avg="median", dev=_mad)
    per_gene = stats.loc[frame["bin"]].to_numpy()
    norm = (dispersion - per_gene[:, 0]) / per_gene[:, 1]
    finite = norm[~np.isnan(norm)]
    cutoff = np.sort(finite)[::-1][min(n_top, finite.size) - 1]
    return np.nan_to_num(norm, nan=-np.inf) >= cutoff


def _mad(a: pd.Series) -> float:
    """Median absolute deviation scaled to the normal's sd (statsmodels' ``mad``)."""
    values = np.asarray(a, dtype=np.float64)
    if values.size == 0:
        return np.nan
    return float(np.median(np.abs(values - np.median(values))) / 0.6744897501960817)
