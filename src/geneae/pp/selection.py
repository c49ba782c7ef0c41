"""Choosing the training cells and genes: filters, empty rows and columns, gene lists."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geneae.errors import DataWarning, InputError
from geneae.pp.blocks import Matrix, nonzero_per, row_blocks, row_sums, take
from geneae.pp.checks import needs_counts, preview

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from geneae.config import PreprocessConfig


class Kept:
    """Training cells (mask) and genes (ordered index) still in play, and what was dropped."""

    def __init__(self, n_obs: int, n_vars: int) -> None:
        self.cells = np.ones(n_obs, dtype=bool)
        self.genes = np.arange(n_vars)
        self.cell_notes: list[tuple[int, str]] = []
        self.gene_notes: list[tuple[int, str]] = []

    def drop_cells(self, keep: np.ndarray, why: str, nothing_left: str) -> None:
        """Drop the current cells where ``keep`` (over the current cells) is False."""
        if keep.all():
            return
        if not keep.any():
            raise InputError(nothing_left)
        current = np.flatnonzero(self.cells)
        self.cells[current[~keep]] = False
        self.cell_notes.append((int((~keep).sum()), why))

    def drop_genes(self, keep: np.ndarray, why: str, nothing_left: str) -> None:
        """Drop the current genes where ``keep`` (over the current genes) is False."""
        if keep.all():
            return
        if not keep.any():
            raise InputError(nothing_left)
        self.gene_notes.append((int((~keep).sum()), why))
        self.genes = self.genes[keep]

    def current(self, x: Matrix) -> Matrix:
        return take(x, self.cells, self.genes)

    def row_sums(self, x: Matrix) -> np.ndarray:
        """Row sums of :meth:`current` (float64), computed block by block."""
        return np.concatenate([row_sums(b) for _, b in row_blocks(x, self.cells, self.genes)])

    def nonzero_per(self, x: Matrix, axis: int) -> np.ndarray:
        """:func:`nonzero_per` of :meth:`current`, computed block by block."""
        parts = [nonzero_per(b, axis) for _, b in row_blocks(x, self.cells, self.genes)]
        if axis == 1:
            return np.concatenate(parts)
        return np.sum(parts, axis=0, dtype=np.int64) if parts else np.zeros(self.genes.size, int)


def filter_cells_and_genes(
    kept: Kept,
    x: Matrix,
    *,
    min_counts_per_cell: float,
    min_genes_per_cell: int,
    min_cells_per_gene: int,
    drop_empty: bool,
) -> None:
    """Cell filters, then the gene filter, then all-zero genes and cells, in that order."""
    if not kept.nonzero_per(x, axis=1).any():
        # Empty data, not a filter too strict: say so rather than advise lowering one.
        raise InputError(
            f"every value is 0 ({kept.cells.size:,} cells x {kept.genes.size:,} genes): there "
            "is nothing to train on; check that the file holds the expression values."
        )
    if min_counts_per_cell > 0:
        total = kept.row_sums(x)
        v = min_counts_per_cell
        kept.drop_cells(
            total >= v,
            "with no counts" if v == 1 else f"with fewer than min_counts_per_cell={v:g} counts",
            f"min_counts_per_cell={v:g} removed all {total.size:,} cells (the largest total "
            f"is {total.max():g}); lower it.",
        )
    if min_genes_per_cell > 0:
        n_genes = kept.nonzero_per(x, axis=1)
        v = min_genes_per_cell
        kept.drop_cells(
            n_genes >= v,
            f"with fewer than min_genes_per_cell={v} genes detected",
            f"min_genes_per_cell={v} removed all {n_genes.size:,} cells (the most genes "
            f"detected in a cell: {n_genes.max():,}); lower it.",
        )
    if min_cells_per_gene > 0:
        n_cells = kept.nonzero_per(x, axis=0)
        v = min_cells_per_gene
        kept.drop_genes(
            n_cells >= v,
            "detected in no cell" if v == 1 else f"in fewer than min_cells_per_gene={v} cells",
            f"min_cells_per_gene={v} removed all {n_cells.size:,} genes (the most cells a "
            f"gene is detected in: {n_cells.max():,}); lower it.",
        )
    if drop_empty:
        n_cells = kept.nonzero_per(x, axis=0)
        kept.drop_genes(n_cells > 0, "all zero", "every gene is zero in every cell kept.")
        drop_empty_cells(kept, x, "all zero")


def drop_empty_cells(kept: Kept, x: Matrix, why: str) -> None:
    """Drop cells with no nonzero value in the current genes."""
    n_genes = kept.nonzero_per(x, axis=1)
    kept.drop_cells(n_genes > 0, why, f"every cell is {why}; there is nothing left to train on.")


def warn_dropped(kept: Kept, n_obs: int, n_vars: int) -> None:
    """One DataWarning saying how many training cells and genes were dropped, and why."""
    parts = []
    for notes, total, what in (
        (kept.cell_notes, n_obs, "cells"),
        (kept.gene_notes, n_vars, "genes"),
    ):
        if notes:
            n = sum(count for count, _ in notes)
            why = "; ".join(f"{count:,} {reason}" for count, reason in notes)
            parts.append(f"{n:,} of {total:,} {what} ({why})")
    if parts:
        warnings.warn(
            "preprocessing dropped from the training data: " + " and ".join(parts) + ".",
            DataWarning,
            stacklevel=4,
        )


def read_gene_list(path: str | os.PathLike[str]) -> list[str]:
    """Gene IDs from a text file: one per line; blank lines and ``#`` comments skipped."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: gene list file not found; check the path.")
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    genes = [line for line in lines if line and not line.startswith("#")]
    return list(dict.fromkeys(genes))  # unique, in file order


def keep_gene_list(kept: Kept, path: str, names: pd.Index) -> None:
    """Keep only the listed genes, in the file's order."""
    listed = read_gene_list(path)
    if not any(g in names for g in listed):
        raise InputError(
            f"{path}: none of its {len(listed):,} gene IDs match the data's gene names. "
            f"The file lists {preview(listed, 3)}; the data has {preview(list(names), 3)}. "
            "Use the same kind of IDs (e.g. symbols vs Ensembl IDs)."
        )
    position = {g: i for i, g in enumerate(names[kept.genes])}
    order = np.array([position[g] for g in listed if g in position], dtype=np.int64)
    if order.size == 0:
        raise InputError(
            f"{path}: every listed gene found in the data was removed by the filters (e.g. "
            "all zero); relax the filters or check the list."
        )
    if order.size < len(listed):
        absent = [g for g in listed if g not in position]
        warnings.warn(
            f"{path}: {len(absent):,} of {len(listed):,} listed genes are not in the data or "
            f"were filtered out (e.g. {preview(absent)}).",
            DataWarning,
            stacklevel=4,
        )
    kept.genes = kept.genes[order]


def names_sha256(names: Sequence[str] | pd.Index) -> str:
    """Order-independent fingerprint of a gene set (to recognise the training genes)."""
    text = "\n".join(sorted(str(n) for n in names))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def select_cells_and_genes(
    kept: Kept,
    base: Matrix | None,
    steps: PreprocessConfig,
    var_names: pd.Index,
    *,
    hvg: Callable[[int], np.ndarray],
    has_counts: bool,
    why_not_counts: object = None,
) -> None:
    """The fit's selection, in order: filters, gene list, HVG, empty cells; then the warning.

    One sequence for the fit in memory (``base`` the matrix the filters count) and the
    streaming fit (``base`` None: ``kept`` reads its own blocks). ``hvg(n)`` returns the
    mask over ``kept.genes`` of the ``n`` most variable; seurat_v3 needs counts
    (``has_counts``, else the error names ``why_not_counts``). With ``n_wide_genes`` above
    ``n_top_genes`` the genes ranked up to it are kept too, after the ``n_top_genes`` most
    variable (an ensemble's narrow members read those first columns, geneae.module.views);
    each part keeps the table's order.
    """
    filter_cells_and_genes(
        kept,
        base,
        min_counts_per_cell=steps.min_counts_per_cell,
        min_genes_per_cell=steps.min_genes_per_cell,
        min_cells_per_gene=steps.min_cells_per_gene,
        drop_empty=steps.drop_empty,
    )
    if steps.gene_list is not None:
        keep_gene_list(kept, steps.gene_list, var_names)
    if 0 < steps.n_top_genes < kept.genes.size:
        if steps.hvg_flavor == "seurat_v3" and not has_counts:
            raise needs_counts("hvg_flavor='seurat_v3'", why_not_counts)
        n_before = kept.genes.size
        core = hvg(steps.n_top_genes)
        n_wide = steps.n_wide_genes or 0
        if n_wide > steps.n_top_genes:
            wide = ~core if n_wide >= n_before else hvg(n_wide) & ~core
            kept.genes = np.concatenate([kept.genes[core], kept.genes[wide]])
            logger.info(
                "kept the %s most variable of %s genes, the %s most variable first (hvg_flavor "
                "%s; preprocess.n_wide_genes and n_top_genes set them)",
                f"{kept.genes.size:,}",
                f"{n_before:,}",
                f"{int(core.sum()):,}",
                steps.hvg_flavor,
            )
        else:
            kept.genes = kept.genes[core]
            logger.info(
                "kept the %s most variable of %s genes (hvg_flavor %s; preprocess.n_top_genes: "
                "0 keeps them all)",
                f"{kept.genes.size:,}",
                f"{n_before:,}",
                steps.hvg_flavor,
            )
    if steps.drop_empty:
        drop_empty_cells(kept, base, "all zero in the selected genes")
    warn_dropped(kept, kept.cells.size, len(var_names))
