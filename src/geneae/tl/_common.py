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
    """``x`` as a float64 CSR array or ndarray of ``n_obs`` rows (and ``n_vars`` columns)."""
    if sp.issparse(x):
        m = sp.csr_array(x, dtype=np.float64)
    else:
        m = np.asarray(x, dtype=np.float64)
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


def column_variance(x: Any) -> np.ndarray:
    """Variance of each column (implicit zeros of sparse matrices included)."""
    if sp.issparse(x):
        x = sp.csr_array(x, dtype=np.float64)
        mean = np.asarray(x.mean(axis=0)).ravel()
        return np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    return np.asarray(x, dtype=np.float64).var(axis=0)
