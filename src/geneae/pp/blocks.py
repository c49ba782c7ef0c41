"""Row-block machinery: work on a matrix a block of rows at a time, dense or CSR.

Row-wise steps (normalisation, log1p, scaling) run on float64 copies of one block at a
time and write float32 results allocated once, so memory stays at the data plus a constant
and results are bit-identical to a one-piece computation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp

Matrix = np.ndarray | sp.csr_matrix


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
