"""Facts about a dataset, computed once and passed down (no torch here).

:func:`describe` looks at an AnnData once — what kind of values ``X`` holds, where raw counts
are, how it is stored — and :class:`DataFacts` carries the answer to every step that needs
it: :func:`geneae.resolve.resolve` (which settings the data call for), the preprocessor and
the model. Nothing downstream re-derives these from the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

ValueType = Literal["raw counts", "unlogged expression", "log-normalised", "standardised", "other"]
CountsIn = Literal["layers['counts']", "X"]

# Values checked at a time by is_count_matrix: its temporaries stay a few MB at any size.
CHECK_BLOCK = 1 << 20
# Non-negative, non-integer values whose maximum reaches this are not on a log scale:
# log1p of a normalised count (1e4 per cell) stays below ~10, log2(TPM + 1) below ~20.
UNLOGGED_MAX = 30.0


def values_of(x: np.ndarray | sp.spmatrix | sp.sparray) -> np.ndarray:
    """The stored values of a dense or sparse matrix as a flat array (no densifying)."""
    if sp.issparse(x):
        return np.asarray(x.data).ravel()
    return np.asarray(x).ravel()


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
    """Classify a matrix's values.

    - ``raw counts``: non-negative integers.
    - ``unlogged expression``: non-negative, not all integers, maximum of 30 or more (TPM,
      FPKM, RSEM or other normalised expression before any log).
    - ``log-normalised``: non-negative, not all integers, maximum below 30.
    - ``standardised``: has negative values and per-gene means near 0.
    - ``other``: anything else (e.g. log ratios).
    """
    if is_count_matrix(x):
        return "raw counts"
    v = values_of(x)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return "other"
    if finite.min() >= 0:
        return "unlogged expression" if finite.max() >= UNLOGGED_MAX else "log-normalised"
    dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    col_means = np.nanmean(dense, axis=0)
    if np.nanmedian(np.abs(col_means)) < 0.1:
        return "standardised"
    return "other"


@dataclass(frozen=True)
class DataFacts:
    """What one look at a dataset found.

    Attributes
    ----------
    n_obs, n_vars
        Samples and genes.
    value_type
        The kind of values in ``X`` (see :func:`value_type`).
    counts_in
        Where raw counts are: ``layers['counts']`` when that layer holds counts, else
        ``X`` when X does, else None.
    sparse
        Whether ``X`` is stored sparse.
    max_value
        The largest finite value of ``X`` (for messages, e.g. why data count as unlogged).
    """

    n_obs: int
    n_vars: int
    value_type: ValueType
    counts_in: CountsIn | None
    sparse: bool
    max_value: float

    @property
    def has_counts(self) -> bool:
        return self.counts_in is not None

    def describe_values(self) -> str:
        """One phrase for messages, e.g. ``"unlogged expression (max 15,302)"``."""
        return f"{self.value_type} (max {self.max_value:,.4g})"


def describe(adata: object, layer: str | None = None) -> DataFacts:
    """Look at ``adata`` (or its ``layer`` as X) once and return its :class:`DataFacts`."""
    x = adata.X if layer is None else adata.layers[layer]  # type: ignore[attr-defined]
    layers = adata.layers if layer is None else {}  # type: ignore[attr-defined]
    kind = value_type(x)
    counts_in: CountsIn | None = None
    if "counts" in layers and is_count_matrix(layers["counts"]):
        counts_in = "layers['counts']"
    elif kind == "raw counts":
        counts_in = "X"
    v = values_of(x)
    finite = v[np.isfinite(v)] if v.dtype.kind == "f" else v
    n_obs, n_vars = x.shape
    return DataFacts(
        n_obs=int(n_obs),
        n_vars=int(n_vars),
        value_type=kind,
        counts_in=counts_in,
        sparse=bool(sp.issparse(x)),
        max_value=float(finite.max()) if finite.size else 0.0,
    )
