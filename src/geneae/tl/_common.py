"""Helpers shared by the ``tl`` functions: the ``uns["geneae"]`` dict and input checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from geneae.errors import InputError


def geneae_uns(results: Any) -> dict[str, Any]:
    """``results.uns["geneae"]``, created empty when absent (the tl functions write into it)."""
    uns = results.uns.get("geneae")
    if not isinstance(uns, dict):
        uns = {}
        results.uns["geneae"] = uns
    return uns


def as_matrix(x: Any, name: str, n_obs: int, n_vars: int | None = None) -> Any:
    """``x`` as a CSR array or ndarray of ``n_obs`` rows (and ``n_vars`` columns).

    Floating-point data keep their precision (no float64 copy of a large float32 matrix);
    anything else becomes float64.
    """
    if sp.issparse(x):
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        m = sp.csr_array(x, dtype=dtype)
    else:
        m = np.asarray(x)
        if not np.issubdtype(m.dtype, np.floating):
            m = m.astype(np.float64)
    if m.ndim != 2:
        raise InputError(f"{name} must be cells x features, got an array of shape {m.shape}.")
    if m.shape[0] != n_obs:
        raise InputError(
            f"{name} has {m.shape[0]} rows but the results have {n_obs} cells; pass the "
            "matrix of the evaluated cells, in the order of results.obs_names."
        )
    if n_vars is not None and m.shape[1] != n_vars:
        raise InputError(
            f"{name} has {m.shape[1]} columns but the results have {n_vars} genes; pass the "
            "matrix in the model's gene space (results.var_names)."
        )
    return m


def dense_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of a dense or sparse matrix as a dense float64 array."""
    sub = x[rows]
    return np.asarray(sub.toarray() if sp.issparse(sub) else sub, dtype=np.float64)


def column_variance(x: Any, chunk: int = 10_000) -> np.ndarray:
    """Variance of each column (implicit zeros of sparse matrices included).

    Accumulated in float64 over blocks of ``chunk`` rows, so a large float32 matrix is never
    copied whole.
    """
    n = x.shape[0]
    if n == 0:
        return np.zeros(x.shape[1])
    total = np.zeros(x.shape[1])
    squares = np.zeros(x.shape[1])
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        if sp.issparse(block):
            block = sp.csr_array(block, dtype=np.float64)
            total += np.asarray(block.sum(axis=0)).ravel()
            squares += np.asarray(block.multiply(block).sum(axis=0)).ravel()
        else:
            block = np.asarray(block, dtype=np.float64)
            total += block.sum(axis=0)
            squares += np.einsum("ij,ij->j", block, block)
    mean = total / n
    return np.maximum(squares / n - mean**2, 0.0)
