"""The steps of a :class:`~geneae.pp.Preprocessor` on matrices.

Where the values come from, normalisation and log1p, per-gene fits (scaling statistics,
HVG), the value steps with the fitted statistics and their description, the counts layer
of the output.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.config import PreprocessConfig
from geneae.errors import InputError
from geneae.facts import DataFacts
from geneae.pp import transforms as T
from geneae.pp.blocks import Matrix, densify, is_canonical, is_identity, map_rows
from geneae.pp.checks import ValueCheck, get_matrix, needs_counts, not_counts
from geneae.pp.selection import Kept


def upgrade_v1(steps: dict[str, Any]) -> dict[str, Any]:
    """Format-1 parameters / steps (geneae < 0.2) in today's PreprocessConfig fields."""
    return {k: v for k, v in steps.items() if k in PreprocessConfig.model_fields}


def counts_matrix(adata: ad.AnnData, facts: DataFacts) -> Matrix | None:
    """The raw counts where ``facts`` found them, or None."""
    if facts.counts_in is None:
        return None
    return get_matrix(adata, "counts" if facts.counts_in == "layers['counts']" else None)


def why_not_counts(adata: ad.AnnData) -> Any:
    """What is wrong with X as counts (only computed for an error message)."""
    return not_counts(get_matrix(adata, None), "X", adata.obs_names, adata.var_names)


def source_matrix(
    adata: ad.AnnData, steps: PreprocessConfig, counts: Matrix | None, *, fitted: bool = False
) -> Matrix:
    """The matrix the value steps start from: raw counts or X, as fitted.

    X taken out of the log ``steps.unlog`` names when it names one (a new float32 array),
    so that the filters, the library sizes and the value steps all see expression.
    ``fitted``: the steps were fitted already (new data for a trained model), so missing
    counts can only be given, not worked around by another preset.
    """
    if steps.source == "X":
        x = get_matrix(adata, None)
        scale = steps.log_scale
        return x if scale is None else T.unlogged(x, scale)
    if counts is None and fitted:
        problem = why_not_counts(adata)
        raise InputError(
            "the model was trained on raw counts, and these data have none: "
            f"{problem.detail if problem is not None else 'no counts found'}. Give the new "
            "data's raw counts (X or layers['counts'])."
        )
    if counts is None:
        raise needs_counts(f"preset {steps.preset!r}", why_not_counts(adata))
    return counts


def value_check(steps: PreprocessConfig, obs: pd.Index, var: pd.Index) -> ValueCheck:
    """The check of the values :func:`source_matrix` gives, before the value steps."""
    return ValueCheck(
        nonnegative=bool(steps.normalize or steps.log1p or steps.log_scale),
        where="the counts" if steps.source == "counts" else "X",
        obs=obs,
        var=var,
        unlogged=steps.log_scale,
    )


def library_genes(steps: PreprocessConfig, n_kept: int) -> int:
    """How many of ``n_kept`` kept genes (the leading ones) a sample's library size sums.

    All of them; where the genes kept for wide members (``n_wide_genes``) follow the
    ``n_top_genes`` most variable, those only: the values of the most variable genes are
    then those they have without the wide genes (the default's narrow members read them as
    they read them alone; on 600 synthetic tumours a library of 5,000 genes took those
    members from ARI 1.000 to 0.797, docs/design/default-model.md, round 73).
    """
    n_top, n_wide = steps.n_top_genes or 0, steps.n_wide_genes or 0
    return n_top if n_wide > n_top > 0 and n_kept > n_top else n_kept


def before_scaling(x: Matrix, steps: PreprocessConfig, *, kept: bool = False) -> Matrix:
    """The steps before scaling: normalisation, then log1p, in place on a float64 copy.

    ``kept``: ``x``'s columns are the kept genes in their order, whose library is that of
    :func:`library_genes` (else every column's: the genes before selection).
    """
    if steps.normalize:
        over = library_genes(steps, x.shape[1]) if kept else None
        x = T.normalize_total(x, steps.target_sum, over)
    if steps.log1p:
        x = T.log1p(x)
    return x


def fit_stats(x: Matrix, steps: PreprocessConfig) -> dict[str, np.ndarray]:
    """Per-gene mean and std (ddof 0; a std of 0 is stored as 1), or min and max."""
    if steps.scale:
        mean, var = T.mean_var(x)
        std = np.sqrt(var)
        return {"mean": mean, "std": np.where(std > 0, std, 1.0)}
    if steps.minmax:
        lo, hi = T.min_max(x)
        return {"min": lo, "max": hi}
    return {}


def apply_value_steps(x: Matrix, steps: PreprocessConfig, stats: dict[str, np.ndarray]) -> Matrix:
    """Normalise, log1p, then scale or min-max with the fitted statistics.

    Works in place on ``x``, a private float64 copy (a dense one is overwritten).

    Parameters
    ----------
    x
        One block of rows, float64, the fitted genes.
    steps
        The resolved steps.
    stats
        The fitted per-gene statistics (see :func:`fit_stats`).

    Returns
    -------
    Matrix
        The block as the model's input (dense when scaled; a scaled sparse block comes
        back as float32, its final values, see :func:`_scaled_dense`).
    """
    x = before_scaling(x, steps, kept=True)
    if steps.scale and sp.issparse(x):
        return _scaled_dense(x, stats["mean"], stats["std"], steps.clip)
    if steps.scale:
        x = densify(x)
        x -= stats["mean"]
        x /= stats["std"]
        if steps.clip > 0:
            np.clip(x, -steps.clip, steps.clip, out=x)
    elif steps.minmax:
        x = densify(x)
        lo, span = stats["min"], stats["max"] - stats["min"]
        x -= lo
        x /= np.where(span > 0, span, 1.0)  # constant genes map to 0
        np.clip(x, 0.0, 1.0, out=x)  # new data outside the fitted range
    return x


def _scaled_dense(x: sp.csr_matrix, mean: np.ndarray, std: np.ndarray, clip: float) -> np.ndarray:
    """``float32(clip((x.toarray() - mean) / std))`` of a CSR block: the same bits, fewer passes.

    Every absent entry of a column takes that column's value at zero, so the block is one
    broadcast of the zero row plus the stored entries, each computed with the same float64
    operations and rounded to float32 once. Out-of-core training repeats this on every
    buffer of every epoch: ~3x faster than densifying first (1,000 x 2,000 blocks, 7%
    stored).
    """
    x = sp.csr_matrix(x)
    if not x.has_canonical_format:
        x.sum_duplicates()  # as toarray would add them
    zero = (0.0 - mean) / std
    cols = x.indices
    values = (x.data - mean[cols]) / std[cols]
    if clip > 0:
        np.clip(zero, -clip, clip, out=zero)
        np.clip(values, -clip, clip, out=values)
    out = np.empty(x.shape, dtype=np.float32)  # rounding each value once, as the caller would
    out[:] = zero.astype(np.float32)
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    out[rows, cols] = values.astype(np.float32)
    return out


def describe_value_steps(steps: PreprocessConfig) -> str:
    """Resolved value steps in words, e.g. ``normalised to 10000 per cell, log1p, z-scored``."""
    parts = [f"{steps.log_scale} undone"] if steps.log_scale else []
    if steps.normalize:
        parts.append(f"normalised to {steps.target_sum:g} per cell")
    if steps.log1p:
        parts.append("log1p")
    if steps.scale:
        parts.append("z-scored")
    elif steps.minmax:
        parts.append("min-max scaled")
    return ", ".join(parts) or "as given"


def hvg_mask(
    kept: Kept, source: Matrix, counts: Matrix | None, steps: PreprocessConfig, n_top: int
) -> np.ndarray:
    """Boolean mask over ``kept.genes`` of the ``n_top`` most variable genes.

    Scored scanpy-style on all current genes normalised together (then log1p), or on the
    raw counts for ``seurat_v3``.
    """
    flavor = steps.hvg_flavor
    if flavor == "seurat_v3":
        assert counts is not None
        return T.scanpy_hvg(kept.current(counts), flavor, n_top)
    x = before_scaling(kept.current(source), steps)
    if flavor == "variance":
        return T.top(T.mean_var(x)[1], n_top)
    if flavor == "mad":
        return T.top(T.median_abs_deviation(x), n_top)
    return T.scanpy_hvg(T.floored_at_zero(x), flavor, n_top)


def counts_layer(
    counts: Matrix, rows: np.ndarray | None, cols: np.ndarray, *, copy: bool
) -> Matrix:
    """The raw counts of the kept cells and genes, as float32.

    ``counts`` itself when it is that already and ``copy`` is False.
    """
    unchanged = rows is None and is_identity(cols, counts.shape[1]) and is_canonical(counts)
    c_order = sp.issparse(counts) or counts.flags.c_contiguous
    if not copy and unchanged and counts.dtype == np.float32 and c_order:
        return counts
    return map_rows(
        counts, rows, cols, lambda _, block: block, dense=not sp.issparse(counts), share=not copy
    )
