"""Matrix-level building blocks of :mod:`geneae.pp` (dense arrays or CSR, no AnnData state).

Kept apart from the estimator so that each piece is small and testable: reading X or a
layer, checking values with messages that say where the problem is, the value transforms
(normalisation, log1p, per-gene statistics) and the fit-time choice of cells and genes.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis, min_max_axis

from geneae._matrix import is_count_matrix, value_type
from geneae.errors import DataWarning, InputError

Matrix = np.ndarray | sp.csr_matrix


# -- reading ------------------------------------------------------------------------------
def in_memory(adata: ad.AnnData) -> ad.AnnData:
    """The AnnData itself, loaded into memory if it is backed by a file."""
    if not isinstance(adata, ad.AnnData):
        raise InputError(f"expected an AnnData object, got {type(adata).__name__}.")
    return adata.to_memory() if adata.isbacked else adata


def check_shape_and_names(adata: ad.AnnData) -> None:
    """Refuse empty data and duplicated gene names (genes are matched by name)."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"the data is empty ({adata.n_obs} cells x {adata.n_vars} genes).")
    if not adata.var_names.is_unique:
        dup = adata.var_names[adata.var_names.duplicated()].unique()
        raise InputError(
            f"{len(dup):,} gene names occur more than once (e.g. {preview(list(dup))}); "
            "make them unique first (adata.var_names_make_unique())."
        )


def get_matrix(adata: ad.AnnData, layer: str | None) -> Matrix:
    """X or a layer as a NumPy array or a CSR matrix (views and other formats converted)."""
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        raise InputError("the AnnData has no X matrix; put the expression values in X.")
    if sp.issparse(x):
        return sp.csr_matrix(x)
    return np.asarray(x)


# -- checking values ----------------------------------------------------------------------
@dataclass(frozen=True)
class NotCounts:
    """Why a matrix is not raw counts, for error messages."""

    detail: str
    negative: bool


def find_counts(adata: ad.AnnData) -> tuple[Matrix | None, NotCounts | None]:
    """Raw counts from ``layers["counts"]``, else from ``X``; or None and what was wrong."""
    if "counts" in adata.layers:
        counts = get_matrix(adata, "counts")
        if is_count_matrix(counts):
            return counts, None
        where, candidate = "layers['counts']", counts
        x = get_matrix(adata, None)
        if is_count_matrix(x):
            return x, None
    else:
        where, candidate = "X", get_matrix(adata, None)
        if is_count_matrix(candidate):
            return candidate, None
    return None, not_counts(candidate, where, adata.obs_names, adata.var_names)


def not_counts(x: Matrix, where: str, obs: pd.Index, var: pd.Index) -> NotCounts:
    """Describe the values of ``x`` that are not non-negative integers."""

    def bad(v: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return ~np.isfinite(v) | (v < 0) | (v != np.round(v))

    n, example = find_bad(x, bad, obs, var)
    detail = f"{where} has {n:,} negative or non-integer values (e.g. {example})"
    stored = x.data if sp.issparse(x) else np.asarray(x).ravel()
    return NotCounts(detail, negative=bool(np.nanmin(stored, initial=0) < 0))


def needs_counts(what: str, problem: NotCounts | None) -> InputError:
    """The error for a step that needs raw counts, naming the presets to use instead."""
    detail = problem.detail if problem is not None else "no counts found"
    if problem is not None and problem.negative:
        instead = "preset='standardize'"
    else:
        instead = "preset='lognorm' (non-negative values such as TPM) or preset='standardize'"
    return InputError(
        f"{what} needs raw counts (non-negative integers), but the data are not raw counts: "
        f"{detail}. Put raw counts in X or layers['counts'], or use {instead} instead."
    )


def check_values(x: Matrix, *, nonnegative: bool, where: str, obs: pd.Index, var: pd.Index) -> None:
    """Non-finite values are never usable; negative ones not for normalise / log1p.

    Checked in blocks of rows, so that the masks stay small whatever the size of ``x``.
    """
    check = ValueCheck(nonnegative=nonnegative, where=where, obs=obs, var=var)
    for rows in row_slices(x):
        check.add(x[rows], rows.start)
    check.raise_if_bad()


class ValueCheck:
    """:func:`check_values` over a matrix seen in consecutive blocks of rows.

    Counts the bad values of every block and keeps the first example, so the error after
    the last block reads exactly as a check of the whole matrix would.
    """

    def __init__(self, *, nonnegative: bool, where: str, obs: pd.Index, var: pd.Index) -> None:
        self.nonnegative, self.where, self.obs, self.var = nonnegative, where, obs, var
        self.n_nonfinite = self.n_negative = 0
        self.nonfinite_example = self.negative_example = ""

    def add(self, block: Matrix, start: int) -> None:
        """Check ``block``, whose first row is row ``start`` of the whole matrix."""
        obs = self.obs[start : start + block.shape[0]]
        n, example = find_bad(block, lambda v: ~np.isfinite(v), obs, self.var)
        self.n_nonfinite += n
        self.nonfinite_example = self.nonfinite_example or example
        if self.nonnegative:
            with np.errstate(invalid="ignore"):  # NaN compares False: counted above
                n, example = find_bad(block, lambda v: v < 0, obs, self.var)
            self.n_negative += n
            self.negative_example = self.negative_example or example

    @property
    def found(self) -> bool:
        """Whether any block so far had a bad value."""
        return bool(self.n_nonfinite or self.n_negative)

    def raise_if_bad(self) -> None:
        if self.n_nonfinite:
            raise InputError(
                f"{self.where} has {self.n_nonfinite:,} non-finite values (NaN or infinity), "
                f"e.g. {self.nonfinite_example}; remove or impute them first."
            )
        if self.n_negative:
            raise InputError(
                "library-size normalisation and log1p need non-negative values, but "
                f"{self.where} has {self.n_negative:,} negative values (e.g. "
                f"{self.negative_example}); the data look scaled already: use "
                "preset='standardize' (or normalize=False, log1p=False)."
            )


def find_bad(
    x: Matrix, bad: Callable[[np.ndarray], np.ndarray], obs: pd.Index, var: pd.Index
) -> tuple[int, str]:
    """How many stored values are bad, and where the first one is (for messages)."""
    if sp.issparse(x):
        mask = bad(x.data)
        n = int(mask.sum())
        if n == 0:
            return 0, ""
        pos = int(np.argmax(mask))
        row, col = int(np.searchsorted(x.indptr, pos, side="right") - 1), int(x.indices[pos])
        value = x.data[pos]
    else:
        mask = bad(np.asarray(x))
        n = int(mask.sum())
        if n == 0:
            return 0, ""
        row, col = divmod(int(np.argmax(mask.ravel())), x.shape[1])
        value = x[row, col]
    return n, f"{value:g} at cell {str(obs[row])!r}, gene {str(var[col])!r}"


def warn_if_lognormalised(x: Matrix) -> None:
    """Warn before normalising and log-transforming data that looks log-normalised."""
    if value_type(x) == "log-normalised":
        warnings.warn(
            "X looks log-normalised already (non-negative, non-integer, max below 30) and has "
            "no raw counts; preset 'lognorm' normalises and log-transforms it again. Use "
            "preset='standardize' or 'none' for data that is already log-normalised.",
            DataWarning,
            stacklevel=4,
        )


# -- value transforms ---------------------------------------------------------------------
def take(x: Matrix, rows: np.ndarray | None, cols: np.ndarray | None) -> Matrix:
    """``x[rows][:, cols]`` as a float64 copy, with sorted sparse indices.

    Sorted indices make sparse row sums add up in the same order whatever the input's
    gene order, so a gene-permuted copy of the data gives bit-identical results.
    """
    if rows is not None and not np.all(rows):
        x = x[rows]
    if cols is not None and not (is_identity(cols, x.shape[1]) and is_canonical(x)):
        x = x[:, cols]
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float64, copy=True)
        x.sort_indices()
        return x
    return np.array(x, dtype=np.float64)


def is_identity(cols: np.ndarray, n: int) -> bool:
    """Whether ``cols`` selects all ``n`` columns in order (selecting them changes nothing)."""
    return len(cols) == n and bool(np.array_equal(cols, np.arange(n)))


def is_canonical(x: Matrix) -> bool:
    """Dense, or CSR with sorted indices and no duplicates (indexing would change nothing)."""
    return not sp.issparse(x) or bool(x.has_canonical_format)


# About this many values per block of rows: a float64 working copy of a block stays near
# 50 MB, and per-block overhead is negligible (small data is one block).
BLOCK_VALUES = 1 << 20


def row_slices(x: Matrix, n_rows: int | None = None) -> Iterator[slice]:
    """Consecutive slices of ``n_rows`` rows (default: all of ``x``'s).

    Each covers about :data:`BLOCK_VALUES` stored values of ``x`` (all values if dense).
    """
    n = x.shape[0] if n_rows is None else n_rows
    per_row = x.nnz / max(1, x.shape[0]) if sp.issparse(x) else x.shape[1]
    step = max(1, int(BLOCK_VALUES / max(per_row, 1.0)))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def row_blocks(
    x: Matrix, rows: np.ndarray | None, cols: np.ndarray | None
) -> Iterator[tuple[slice, Matrix]]:
    """``take(x, rows, cols)`` block by block: (rows of the result, float64 block).

    Every row of a block is the same as that row of the one-piece result (each is a copy
    of one input row, sorted the same way), so anything computed row by row is
    bit-identical, with memory for one block instead of a float64 copy of everything.
    """
    index = None if rows is None or np.all(rows) else np.flatnonzero(rows)
    n = x.shape[0] if index is None else index.size
    for out in row_slices(x, n):
        part = x[out] if index is None else x[index[out]]
        yield out, take(part, None, cols)


def map_rows(
    x: Matrix,
    rows: np.ndarray | None,
    cols: np.ndarray | None,
    fn: Callable[[slice, Matrix], Matrix],
    *,
    dense: bool,
    share: bool = False,
) -> Matrix:
    """``float32(fn(take(x, rows, cols)))`` assembled block by block.

    ``fn(out_rows, block)`` may change its private float64 block in place; it must map
    rows to rows and keep a sparse block's stored entries (or give a dense block when
    ``dense``). The result is allocated once: a dense float32 array, or CSR whose arrays
    are sized by the input rows' stored values and trimmed in place at the end. When the
    selection changes nothing (every row, every column in order, canonical CSR), the
    result has the input's sparsity pattern: copied, or with ``share`` the input's own
    index arrays (the result is then read-only in practice).
    """
    n_rows = x.shape[0] if rows is None else int(np.count_nonzero(rows))
    n_cols = x.shape[1] if cols is None else len(cols)
    if dense:
        out = np.empty((n_rows, n_cols), dtype=np.float32)
        for where, block in row_blocks(x, rows, cols):
            out[where] = densify(fn(where, block))
        return out
    unchanged = (
        n_rows == x.shape[0] and (cols is None or is_identity(cols, x.shape[1])) and is_canonical(x)
    )
    if unchanged:
        data = np.empty(x.nnz, dtype=np.float32)
        for where, block in row_blocks(x, None, None):
            data[x.indptr[where.start] : x.indptr[where.stop]] = fn(where, block).data
        indices, indptr = (x.indices, x.indptr) if share else (x.indices.copy(), x.indptr.copy())
        return sp.csr_matrix((data, indices, indptr), shape=x.shape)
    sizes = np.diff(x.indptr) if rows is None else np.diff(x.indptr)[rows]
    upper = int(sizes.sum())
    index_dtype = np.int32 if max(upper, n_cols) < 2**31 else np.int64
    data = np.empty(upper, dtype=np.float32)
    indices = np.empty(upper, dtype=index_dtype)
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    filled = 0
    for where, block in row_blocks(x, rows, cols):
        block = fn(where, block)
        k = block.nnz
        data[filled : filled + k] = block.data
        indices[filled : filled + k] = block.indices
        indptr[where.start + 1 : where.stop + 1] = block.indptr[1:] + filled
        filled += k
    if filled < upper:  # genes left out: shrink in place (a slice would pin the whole buffer)
        try:
            data.resize(filled)
            indices.resize(filled)
        except ValueError:  # numpy saw another reference: copy instead
            data, indices = data[:filled].copy(), indices[:filled].copy()
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))


def densify(x: Matrix) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else x


def row_sums(x: Matrix) -> np.ndarray:
    return np.asarray(x.sum(axis=1), dtype=np.float64).ravel()


def nonzero_per(x: Matrix, axis: int) -> np.ndarray:
    """Number of nonzero values per column (axis=0) or per row (axis=1)."""
    if sp.issparse(x):
        return np.asarray((x != 0).sum(axis=axis)).ravel()
    return np.count_nonzero(x, axis=axis)


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


# -- choosing training cells and genes ----------------------------------------------------
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


# -- small helpers ------------------------------------------------------------------------
def names_sha256(names: Sequence[str] | pd.Index) -> str:
    """Order-independent fingerprint of a gene set (to recognise the training genes)."""
    text = "\n".join(sorted(str(n) for n in names))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def preview(items: Sequence[Any], n: int = 5) -> str:
    """The first ``n`` items quoted, and how many more there are."""
    shown = ", ".join(repr(str(i)) for i in items[:n])
    return shown + (f", ... ({len(items) - n:,} more)" if len(items) > n else "")
