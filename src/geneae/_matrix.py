"""Small facts about expression matrices shared by io, pp and model (no torch here)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

ValueType = Literal["raw counts", "log-normalised", "standardised", "other"]


def values_of(x: np.ndarray | sp.spmatrix | sp.sparray) -> np.ndarray:
    """The stored values of a dense or sparse matrix as a flat array (no densifying)."""
    if sp.issparse(x):
        return np.asarray(x.data).ravel()
    return np.asarray(x).ravel()


# Values checked at a time by is_count_matrix: its temporaries stay a few MB at any size.
CHECK_BLOCK = 1 << 20


def is_count_matrix(x: np.ndarray | sp.spmatrix | sp.sparray) -> bool:
    """True when every value is a finite non-negative integer (raw counts)."""
    v = values_of(x)
    if v.size == 0:
        return True
    if not np.issubdtype(v.dtype, np.number):
        return False
    if np.issubdtype(v.dtype, np.integer):
        return bool(v.min() >= 0)
    for start in range(0, v.size, CHECK_BLOCK):
        b = v[start : start + CHECK_BLOCK]
        if not (np.all(np.isfinite(b)) and b.min() >= 0 and np.all(b == np.round(b))):
            return False
    return True


def value_type(x: np.ndarray | sp.spmatrix | sp.sparray) -> ValueType:
    """Classify a matrix as raw counts, log-normalised, standardised or other.

    Counts: non-negative integers. Log-normalised: non-negative, non-integer, max below 30
    (log1p of a normalised count stays far below that). Standardised: has negative values
    and per-column means near 0.
    """
    if is_count_matrix(x):
        return "raw counts"
    v = values_of(x)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return "other"
    if finite.min() >= 0 and finite.max() < 30:
        return "log-normalised"
    if finite.min() < 0:
        dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        col_means = np.nanmean(dense, axis=0)
        if np.nanmedian(np.abs(col_means)) < 0.1:
            return "standardised"
    return "other"
