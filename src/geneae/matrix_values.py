"""What a matrix's values are, from the values alone (no torch, no AnnData).

Its stored values, whether they are raw counts, which kind of values they hold
(:func:`value_type`), their range and the share at its minimum, each gene's variance, and
whether a dense matrix is better held sparse. :mod:`geneae.facts` gathers these into the
facts of a dataset; readers and preprocessing call them on matrices directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp

from geneae.logscale import LOG_RANGE

if TYPE_CHECKING:
    from geneae.pp.hvg import Moments

ValueType = Literal["raw counts", "unlogged expression", "log-normalised", "standardised", "other"]

# Values checked at a time by is_count_matrix: its temporaries stay a few MB at any size.
CHECK_BLOCK = 1 << 20
# Non-negative, non-integer values whose maximum reaches this are not on a log scale:
# log1p of a normalised count (1e4 per cell) stays below ~10, log2(TPM + 1) below ~20 (the
# range logscale gives log values of expression).
UNLOGGED_MAX = LOG_RANGE
# ... and so are those of which no sample totals this much: shares of each sample's
# expression (RSEM's scaled estimates, TPM / 1e6, normalize_total to 1), which total 1 at
# most, with room for estimates not normalised exactly. Log values of expression total
# hundreds per sample (log1p of a cell's 2,000 genes), tens over a panel of a few genes.
FRACTIONS_TOTAL = 2.0
# A dense matrix with fewer non-zero entries than this fraction is held as CSR: it then takes
# less memory (8 bytes per stored value against 4 per entry), every pass over it (gene
# selection, fingerprint, preprocessing) touches only the stored values, and its training
# batches carry the positions of their non-zeros, which the count likelihoods use to skip
# the zeros. Single-cell counts are typically 2-10 % non-zero.
SPARSE_BELOW = 0.4
# Standardised values whose genes' median |sd - 1| is under this are z-scores; centred log
# values spread from ~0.1 to a few units.
UNIT_SD_TOLERANCE = 0.1


def values_of(x: np.ndarray | sp.spmatrix | sp.sparray) -> np.ndarray:
    """The stored values of a dense or sparse matrix as a flat array (no densifying)."""
    if sp.issparse(x):
        return np.asarray(x.data).ravel()
    return np.asarray(x).ravel()


def csr_if_mostly_zero(
    x: np.ndarray | sp.spmatrix | sp.sparray,
) -> np.ndarray | sp.spmatrix | sp.sparray:
    """A 2-D dense matrix as CSR when under :data:`SPARSE_BELOW` of it is non-zero, else x."""
    if sp.issparse(x):
        return x
    x = np.asarray(x)
    if x.ndim == 2 and x.size and np.count_nonzero(x) < SPARSE_BELOW * x.size:
        return sp.csr_matrix(x)
    return x


def has_implicit_zeros(x: np.ndarray | sp.spmatrix | sp.sparray) -> bool:
    """Whether ``x`` is sparse with entries it does not store (zeros among its values)."""
    return bool(sp.issparse(x)) and x.nnz < x.shape[0] * x.shape[1]


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
      FPKM, RSEM or other normalised expression before any log), or no sample totalling
      2 (:data:`FRACTIONS_TOTAL`: each sample's shares of its expression).
    - ``log-normalised``: non-negative, not all integers, maximum below 30, other than
      shares.
    - ``standardised``: has negative values and per-gene means near 0.
    - ``other``: anything else (e.g. log ratios).
    """
    if is_count_matrix(x):
        return "raw counts"
    v = values_of(x)
    finite = v[np.isfinite(v)]

    def col_means() -> np.ndarray:
        dense = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
        return np.nanmean(dense, axis=0)

    lo, hi = (finite.min(), finite.max()) if finite.size else (None, None)
    return classify(False, lo, hi, col_means, lambda: largest_total(x))


def largest_total(x: np.ndarray | sp.spmatrix | sp.sparray) -> float:
    """The largest sum of a row of ``x``'s finite values, a block of rows at a time.

    Each block holds about :data:`CHECK_BLOCK` values, so the temporaries stay a few MB.
    """
    if sp.issparse(x) and x.format != "csr":
        x = sp.csr_matrix(x)
    n_rows, n_cols = x.shape
    stored = x.nnz if sp.issparse(x) else n_rows * n_cols
    rows = max(1, int(CHECK_BLOCK * n_rows // max(stored, 1)))
    top = -np.inf if n_rows else 0.0
    for start in range(0, n_rows, rows):
        block = x[start : start + rows]
        if sp.issparse(block):
            block = sp.csr_matrix(block, dtype=np.float64, copy=True)
            block.data[~np.isfinite(block.data)] = 0.0
            sums = np.asarray(block.sum(axis=1)).ravel()
        else:
            dense = np.asarray(block, dtype=np.float64)
            sums = np.where(np.isfinite(dense), dense, 0.0).sum(axis=1)
        top = max(top, float(sums.max()))
    return top


def classify(
    counts: bool,
    lo: float | None,
    hi: float | None,
    col_means: Callable[[], np.ndarray],
    top_total: Callable[[], float],
) -> ValueType:
    """:func:`value_type` from summaries of a matrix.

    Whether all values are counts, the finite minimum and maximum (None: no finite value),
    the per-gene means (computed only when asked: there are negative values) and the
    largest sample total (asked for non-negative values below :data:`UNLOGGED_MAX`).
    """
    if counts:
        return "raw counts"
    if lo is None or hi is None:
        return "other"
    if lo >= 0:
        unlogged = hi >= UNLOGGED_MAX or top_total() < FRACTIONS_TOTAL
        return "unlogged expression" if unlogged else "log-normalised"
    with np.errstate(invalid="ignore"):
        if np.nanmedian(np.abs(col_means())) < 0.1:
            return "standardised"
    return "other"


def is_unit_variance(col_var: np.ndarray) -> bool:
    """Whether genes of these variances were scaled to one (z-scores), or only centred.

    scikit-learn's and scanpy's scalers give every gene a standard deviation of 1 (a clip
    at 10 barely moves it); values only centred (UCSC Xena's pan-cancer tables: each gene's
    log2 expression minus its mean) keep each gene's own spread, which can rank genes.
    Constant genes (variance 0) are left out.
    """
    sd = np.sqrt(col_var[col_var > 0])
    return bool(sd.size) and float(np.median(np.abs(sd - 1.0))) < UNIT_SD_TOLERANCE


def gene_variances(x: np.ndarray | sp.spmatrix | sp.sparray, rows: int = 4096) -> np.ndarray:
    """Each gene's population variance, a block of rows at a time.

    NaN where a gene has NaN or infinite values: :func:`is_unit_variance` leaves it out,
    and such data are refused later.
    """
    moments = new_moments(x.shape[1])
    for start in range(0, x.shape[0], rows):
        add_moments(moments, x[start : start + rows])
    return moments.var()


def new_moments(n_vars: int) -> Moments:
    """Running per-gene moments: the streamed gene selection's :class:`geneae.pp.hvg.Moments`."""
    from geneae.pp.hvg import Moments  # imported here: geneae.pp imports this module

    return Moments(n_vars)


def add_moments(moments: Moments, block: np.ndarray | sp.spmatrix | sp.sparray) -> None:
    """Merge ``block`` into ``moments``; a non-finite value makes its gene's variance NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        moments.add(block)


def value_range(x: np.ndarray | sp.spmatrix | sp.sparray) -> tuple[float, float, int]:
    """``(min, max, entries at the min)`` of ``x``'s finite values, unstored zeros included.

    ``(inf, -inf, 0)`` where it has none.
    """
    stored = values_of(x)
    v = stored[np.isfinite(stored)] if stored.dtype.kind in "fc" else stored
    implicit = x.shape[0] * x.shape[1] - stored.size if has_implicit_zeros(x) else 0
    lo, hi = (float(v.min()), float(v.max())) if v.size else (np.inf, -np.inf)
    if implicit:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    return lo, hi, int(np.count_nonzero(v == lo)) + (implicit if lo == 0.0 else 0)
