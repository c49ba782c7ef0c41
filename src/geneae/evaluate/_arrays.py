"""Small array helpers shared by the evaluation modules (validation, chunking, densifying)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from geneae.errors import InputError
from geneae.labels import labelled_rows

Matrix = np.ndarray | sp.spmatrix | sp.sparray

# Rows per chunk when streaming over a matrix: bounds the dense working copy to roughly
# CHUNK_ROWS x n_genes float64 values (32 MB for 2,000 genes) whatever the number of cells.
CHUNK_ROWS = 2048


def as_2d(x: Any, name: str) -> Matrix:
    """Return ``x`` as a 2-D numeric matrix (sparse kept sparse, as CSR), or raise InputError."""
    if sp.issparse(x):
        if x.ndim != 2:
            raise InputError(f"{name}: expected a 2-D matrix, got shape {x.shape}.")
        return sp.csr_array(x)
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D matrix (cells x features), got {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: expected numbers, got dtype {arr.dtype}.")
    return arr


def dense(x: Matrix, dtype: type = np.float64, *, copy: bool = False) -> np.ndarray:
    """A dense ``dtype`` version of a dense or sparse matrix (a fresh array if ``copy``)."""
    if sp.issparse(x):
        return np.asarray(x.toarray(), dtype=dtype)
    return np.array(x, dtype=dtype, copy=True if copy else None)


def row_chunks(n_rows: int, size: int | None = None) -> Iterator[slice]:
    """Consecutive row slices of at most ``size`` rows (default :data:`CHUNK_ROWS`)."""
    size = size or CHUNK_ROWS
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def check_same_shape(a: Matrix, b: Matrix, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise InputError(
            f"{names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; both must be "
            "cells x genes in the same space (reconstruct into the space of the model input)."
        )


def check_rows(n: int, other: Any, name: str) -> None:
    if len(other) != n:
        raise InputError(f"{name} has {len(other)} entries but the matrix has {n} rows (cells).")


def label_array(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """Labels as a 1-D array of strings-or-numbers with missing values rejected.

    Missing as :func:`geneae.labels.labelled_rows` tells (None, NaN, blank).
    """
    arr, labelled = labelled_rows(labels, n, name)
    if not labelled.all():
        raise InputError(
            f"{name}: {int((~labelled).sum())} missing values; drop unlabelled cells or fill "
            "them in first."
        )
    return arr


def encode(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..k-1 and the sorted unique values of ``labels``."""
    classes, codes = np.unique(labels, return_inverse=True)
    return codes.ravel(), classes


def subsample(n: int, max_n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subsample of ``min(n, max_n)`` rows (all rows if n <= max_n)."""
    if n <= max_n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_n, replace=False))


def as_latent(latent: Any) -> np.ndarray:
    """A latent space as finite float64 cells x dims (a vector: one dim), or raise InputError."""
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2:
        raise InputError(f"latent must be cells x dims, got shape {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise InputError(
            "latent contains NaN or infinite values; the model diverged — lower the learning "
            "rate or check the input for NaN."
        )
    return z


def check_subset(rows: Any, n: int, name: str = "rows") -> np.ndarray:
    """``rows`` as sorted distinct int64 indices into ``n`` samples, or raise InputError.

    ``name``: the argument's name in the message.
    """
    keep = np.asarray(rows)
    if keep.ndim != 1 or not (keep.size == 0 or np.issubdtype(keep.dtype, np.integer)):
        raise InputError(f"{name} must be a 1-D array of integer sample indices.")
    keep = keep.astype(np.int64)
    if keep.size and (keep[0] < 0 or keep[-1] >= n or np.any(np.diff(keep) <= 0)):
        raise InputError(f"{name} must be sorted, distinct sample indices in 0..{n - 1}.")
    return keep


def check_n_clusters(n_clusters: int, n: int) -> None:
    """Refuse a number of clusters outside 1..``n`` (the cells clustered)."""
    if not 1 <= n_clusters <= n:
        raise InputError(f"n_clusters = {n_clusters} must be between 1 and the {n} cells.")
