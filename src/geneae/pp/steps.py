"""The steps of a :class:`~geneae.pp.Preprocessor` on matrices.

Where the values come from, normalisation and log1p, per-gene fits (scaling statistics,
HVG), the counts layer of the output.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from geneae.config import PreprocessConfig
from geneae.facts import DataFacts
from geneae.pp import transforms as T
from geneae.pp.blocks import Matrix, is_canonical, is_identity, map_rows
from geneae.pp.checks import get_matrix, needs_counts, not_counts
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


def source_matrix(adata: ad.AnnData, steps: PreprocessConfig, counts: Matrix | None) -> Matrix:
    """The matrix the value steps start from: raw counts or X, as fitted."""
    if steps.source == "X":
        return get_matrix(adata, None)
    if counts is None:
        raise needs_counts(f"preset {steps.preset!r}", why_not_counts(adata))
    return counts


def before_scaling(x: Matrix, steps: PreprocessConfig) -> Matrix:
    """The steps before scaling: normalisation, then log1p, in place on a float64 copy."""
    if steps.normalize:
        x = T.normalize_total(x, steps.target_sum)
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


def hvg_mask(
    kept: Kept, source: Matrix, counts: Matrix | None, steps: PreprocessConfig
) -> np.ndarray:
    """Boolean mask over ``kept.genes`` of the ``n_top_genes`` most variable genes.

    Scored scanpy-style on all current genes normalised together (then log1p), or on the
    raw counts for ``seurat_v3``.
    """
    n_top, flavor = steps.n_top_genes, steps.hvg_flavor
    if flavor == "seurat_v3":
        assert counts is not None
        return T.scanpy_hvg(kept.current(counts), flavor, n_top)
    x = before_scaling(kept.current(source), steps)
    if flavor == "variance":
        return T.top(T.mean_var(x)[1], n_top)
    if flavor == "mad":
        return T.top(T.median_abs_deviation(x), n_top)
    return T.scanpy_hvg(x, flavor, n_top)


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
