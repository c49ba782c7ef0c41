"""Fitting a :class:`~geneae.pp.Preprocessor` on data seen one chunk of rows at a time.

For data on disk (out-of-core training, docs/scaling.md): the same steps as
:meth:`Preprocessor.fit` in the same order, each from statistics gathered in passes over
the chunks, so the fitted preprocessor chooses the same cells and genes and learns the
same statistics (to float rounding) as a fit on the whole matrix in memory:

1. values checked; each cell's total and detected genes; each gene's detecting cells
   among the cells the cell filters keep (cell filters look at one row at a time);
2. cells left empty by the gene filters (a pass only when genes were dropped);
3. highly variable genes (:mod:`geneae.pp.hvg`: ``seurat_v3`` two passes, ``seurat``,
   ``cell_ranger`` and ``variance`` one; ``mad`` does not stream);
4. cells empty in the selected genes, and the scaling statistics (mean / sd or min / max)
   of the value steps on the final cells and genes.

A pass is a call of ``chunks``, which yields ``(first row, rows in memory)`` in row order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import anndata as ad
import numpy as np
import pandas as pd

from geneae.config import PreprocessConfig
from geneae.errors import ConfigError
from geneae.facts import DataFacts
from geneae.pp import transforms as T
from geneae.pp.blocks import Matrix, densify, nonzero_per, row_sums, take
from geneae.pp.checks import check_shape_and_names
from geneae.pp.hvg import (
    STREAMING_FLAVORS,
    ClippedSums,
    Moments,
    dispersion_top,
    seurat_v3_fit,
    seurat_v3_top,
)
from geneae.pp.preprocessor import Preprocessor
from geneae.pp.selection import Kept, names_sha256, select_cells_and_genes
from geneae.pp.steps import before_scaling, counts_matrix, source_matrix, value_check
from geneae.resolve_preprocess import resolve_preprocess

__all__ = ["ChunkSource", "fit_streaming"]

# One pass over the data: (first row, the rows in memory) in row order.
ChunkSource = Callable[[], Iterable[tuple[int, ad.AnnData]]]


class StreamedKept(Kept):
    """:class:`Kept` whose per-cell and per-gene counts come from passes over chunks.

    The first pass's numbers (every gene; the cells the cell filters keep) are reused;
    anything else is one more pass over the current cells and genes.
    """

    def __init__(self, n_obs: int, n_vars: int, blocks: Callable[[Kept], Iterator]) -> None:
        super().__init__(n_obs, n_vars)
        self.blocks = blocks
        self.total = np.zeros(n_obs)
        self.detected = np.zeros(n_obs, dtype=np.int64)
        self.filtered: np.ndarray | None = None  # the cells the cell filters keep
        self.gene_cells = np.zeros(n_vars, dtype=np.int64)

    def row_sums(self, x: Matrix | None) -> np.ndarray:
        if self.genes.size == self.gene_cells.size:
            return self.total[self.cells]
        return np.concatenate([row_sums(b) for _, b in self.blocks(self)])

    def nonzero_per(self, x: Matrix | None, axis: int) -> np.ndarray:
        if axis == 1 and self.genes.size == self.gene_cells.size:
            return self.detected[self.cells]
        if axis == 0 and self.filtered is not None and np.array_equal(self.cells, self.filtered):
            return self.gene_cells[self.genes]
        parts = [nonzero_per(b, axis) for _, b in self.blocks(self)]
        if axis == 1:
            return np.concatenate(parts)
        return np.sum(parts, axis=0, dtype=np.int64)


def fit_streaming(
    pre: Preprocessor,
    chunks: ChunkSource,
    facts: DataFacts,
    obs_names: pd.Index,
    var_names: pd.Index,
) -> np.ndarray:
    """Fit ``pre`` on the data ``chunks`` yields; return the mask of the cells kept.

    Parameters
    ----------
    pre
        The preprocessor to fit (its parameters as given; resolved here from ``facts``).
    chunks
        Called once per pass; yields every row once, in order, as ``(first row, AnnData)``
        with ``X`` and, when the data have them, raw counts in ``layers["counts"]``.
    facts
        The facts of the whole data (:class:`geneae.facts.FactsAccumulator`).
    obs_names, var_names
        The cells and genes of the whole data.

    Returns
    -------
    numpy.ndarray
        Boolean mask over the cells: those the filters kept (the training cells).
    """
    pre._reset()
    check_shape_and_names(ad.AnnData(obs=pd.DataFrame(index=obs_names), var=var_names.to_frame()))
    steps = resolve_preprocess(pre.config, facts)
    hvg = 0 < steps.n_top_genes
    if hvg and steps.hvg_flavor not in STREAMING_FLAVORS:
        raise ConfigError(
            f"hvg_flavor={steps.hvg_flavor!r} needs every value of a gene at once and does "
            "not work on data read in chunks (out-of-core); choose one of "
            f"{', '.join(STREAMING_FLAVORS)}, or n_top_genes=0."
        )

    def matrices(chunk: ad.AnnData) -> tuple[Matrix | None, Matrix]:
        counts = counts_matrix(chunk, facts)
        return counts, source_matrix(chunk, steps, counts)

    def blocks(kept: Kept, of: str = "base") -> Iterator[tuple[np.ndarray, Matrix]]:
        """(cells of the chunk kept, float64 block of those cells and the current genes)."""
        for start, chunk in chunks():
            rows = kept.cells[start : start + chunk.n_obs]
            if rows.any():
                counts, source = matrices(chunk)
                x = {"counts": counts, "source": source}.get(of)
                x = x if x is not None else (counts if counts is not None else source)
                yield rows, take(x, rows, kept.genes)

    kept = StreamedKept(len(obs_names), len(var_names), blocks)
    _first_pass(kept, chunks, matrices, steps, obs_names, var_names)
    select_cells_and_genes(
        kept,
        None,
        steps,
        var_names,
        hvg=_hvg_ranking(kept, blocks, steps),
        has_counts=facts.has_counts,
    )

    pre.steps_ = steps
    pre.genes_ = [str(g) for g in var_names[kept.genes]]
    if steps.scale or steps.minmax:
        pre.stats_ = _scaling_stats((b for _, b in blocks(kept, "source")), steps)
    pre.n_input_genes_ = len(var_names)
    pre.input_genes_sha256_ = names_sha256(var_names)
    pre.value_type_ = facts.value_type
    return kept.cells


def _first_pass(
    kept: StreamedKept,
    chunks: ChunkSource,
    matrices: Callable[[ad.AnnData], tuple[Matrix | None, Matrix]],
    steps: PreprocessConfig,
    obs_names: pd.Index,
    var_names: pd.Index,
) -> None:
    """Check the values, and count what the filters need in one pass.

    Each cell's total and detected genes over every gene, and each gene's detecting cells
    among the cells the cell filters keep (those filters look at one row at a time).
    """
    min_counts, min_genes = steps.min_counts_per_cell, steps.min_genes_per_cell
    check = value_check(steps, obs_names, var_names)
    filtered = np.zeros(kept.cells.size, dtype=bool)
    for start, chunk in chunks():
        stop = start + chunk.n_obs
        counts, source = matrices(chunk)
        check.add(source, start)
        block = take(counts if counts is not None else source, None, None)
        kept.total[start:stop] = row_sums(block)
        kept.detected[start:stop] = nonzero_per(block, 1)
        ok = np.ones(chunk.n_obs, dtype=bool)
        if min_counts > 0:
            ok &= kept.total[start:stop] >= min_counts
        if min_genes > 0:
            ok &= kept.detected[start:stop] >= min_genes
        filtered[start:stop] = ok
        if ok.any():
            kept.gene_cells += nonzero_per(block[ok], 0)
    check.raise_if_bad()
    kept.filtered = filtered if filtered.any() else None


def _hvg_ranking(
    kept: Kept, blocks: Callable[..., Iterator], steps: PreprocessConfig
) -> Callable[[int], np.ndarray]:
    """``top(n)``: the mask over the current genes of the ``n`` most variable ones.

    The passes over the data run once, at the first call: the wide members' genes
    (``n_wide_genes``) are ranked by the same statistics as the most variable.
    """
    flavor = str(steps.hvg_flavor)
    stats: list[Callable[[int], np.ndarray]] = []

    def top(n_top: int) -> np.ndarray:
        if not stats:
            stats.append(_hvg_stats(kept, blocks, steps, flavor))
        return stats[0](n_top)

    return top


def _hvg_stats(
    kept: Kept, blocks: Callable[..., Iterator], steps: PreprocessConfig, flavor: str
) -> Callable[[int], np.ndarray]:
    """The genes' statistics of ``flavor`` from passes over the data, as a top-n selector."""
    moments = Moments(kept.genes.size)
    if flavor == "seurat_v3":
        for _, block in blocks(kept, "counts"):
            moments.add(block)
        n = moments.n
        reg_std, clip = seurat_v3_fit(moments.mean, moments.var(ddof=1), n)
        sums = ClippedSums(clip)
        for _, block in blocks(kept, "counts"):
            sums.add(block)
        return lambda n_top: seurat_v3_top(moments.mean, reg_std, sums, n, n_top)
    lowest = 0.0
    for _, block in blocks(kept, "source"):
        values = before_scaling(block, steps)
        lowest = min(lowest, float(values.min()))
        if flavor == "seurat":
            values = values.expm1() if hasattr(values, "expm1") else np.expm1(values)
        moments.add(values)
    if flavor == "variance":
        variance = moments.var(ddof=0)
        return lambda n_top: T.top(variance, n_top)
    if flavor == "seurat" and lowest < 0:
        # Log values with a negative floor: a second pass with the floor at 0, as the
        # in-memory path ranks them (geneae.pp.transforms.floored_at_zero).
        moments = Moments(kept.genes.size)
        for _, block in blocks(kept, "source"):
            values = densify(before_scaling(block, steps))
            moments.add(np.expm1(np.asarray(values, dtype=np.float64) - lowest))
    mean, var = moments.mean, moments.var(ddof=1)
    return lambda n_top: dispersion_top(mean, var, flavor, n_top)


def _scaling_stats(blocks: Iterable[Matrix], steps: PreprocessConfig) -> dict[str, np.ndarray]:
    """:func:`geneae.pp.steps.fit_stats` of the value steps before scaling, block by block."""
    moments: Moments | None = None
    lo = hi = None
    for block in blocks:
        x = before_scaling(block, steps, kept=True)
        if steps.scale:
            moments = moments or Moments(x.shape[1])
            moments.add(x)
        else:
            b_lo, b_hi = T.min_max(x)
            lo = b_lo if lo is None else np.minimum(lo, b_lo)
            hi = b_hi if hi is None else np.maximum(hi, b_hi)
    if moments is not None:
        std = np.sqrt(moments.var(ddof=0))
        return {"mean": moments.mean, "std": np.where(std > 0, std, 1.0)}
    assert lo is not None and hi is not None
    return {"min": lo, "max": hi}
