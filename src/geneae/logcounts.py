"""Counts written as their logs: ``log(x + 1)`` of whole numbers, recognised and undone exactly.

``sc.pp.log1p`` run without ``normalize_total`` leaves ln(1 + UMIs) in X, and many bulk
tables are log2(count + 1); the counts are then gone from the file but not from the values:
every value is the log of a whole number, a property no normalised table has. Such values
are undone to the counts, which the count models use as ``layers["counts"]`` (as scanpy's
layout of log values in X beside the counts); X stays as the user gave it. No torch, no
AnnData here.
"""

from __future__ import annotations

import numpy as np

from geneae.logscale import LogScale
from geneae.matrix_values import is_count_matrix

__all__ = [
    "COUNT_LOGS",
    "COUNT_LOG_EVIDENCE",
    "COUNT_LOG_TOLERANCE",
    "TOLD_APART",
    "counts_of",
    "counts_under_log",
]

#: The logs of whole numbers looked for: scanpy's log1p, then log2 and log10 of x + 1.
COUNT_LOGS = (LogScale("ln", 1.0), LogScale("log2", 1.0), LogScale("log10", 1.0))
#: A value this close to the log of a whole number is that log: float32 keeps a log value
#: below 16 to about 1e-6, a table written to 4 decimals to 5e-5.
COUNT_LOG_TOLERANCE = 5e-5
#: Whole numbers up to this lie at least 4e-4 apart on log10 (1e-3 on ln), eight times the
#: tolerance: a value that is not a log of one lands near one by chance one time in eight
#: at most, and far less often near small counts, where most values of a table lie ...
TOLD_APART = 1000
#: ... and a table is read as logs of counts only when at least this many of its first
#: :data:`BLOCK` values (or all the non-zero ones, where they are fewer) are logs of counts
#: from 1 to :data:`TOLD_APART`: a handful of values that land near such logs are chance.
COUNT_LOG_EVIDENCE = 1000
#: Values checked at a time: the float64 temporaries stay a few MB at any size.
BLOCK = 1 << 20


def counts_of(values: np.ndarray, scale: LogScale) -> np.ndarray:
    """``values`` undone from ``scale`` as float32, whole where within the tolerance.

    A value within :data:`COUNT_LOG_TOLERANCE` of the log of a whole number becomes that
    number; any other keeps its fraction, so that :func:`geneae.matrix_values.is_count_matrix` of
    the result tells whether every value was the log of a count.
    """
    v = np.asarray(values, dtype=np.float64)
    undone = scale.undo(v)
    whole = np.round(undone)
    near = np.abs(v - scale.redo(whole)) <= COUNT_LOG_TOLERANCE
    out = np.where(near, whole, undone).astype(np.float32)
    # float32 may round a fraction away: keep such values off the whole numbers.
    lost = ~near & (out == np.round(out))
    out[lost] = np.nextafter(out[lost], np.float32(np.inf))
    return out


def counts_under_log(values: np.ndarray) -> tuple[LogScale, np.ndarray] | None:
    """The log of :data:`COUNT_LOGS` whose whole numbers ``values`` are, and the counts.

    Parameters
    ----------
    values
        The stored values of a matrix (flat; zeros are the log of a zero count on every
        such log). Not all whole numbers already (those are counts as they are).

    Returns
    -------
    (LogScale, numpy.ndarray) or None
        The log and ``values`` undone from it (float32 whole numbers, in the same order),
        or None when no log fits every value with enough evidence
        (:data:`COUNT_LOG_EVIDENCE`, in the first block of values). Tables of other
        values fail in their first block.
    """
    v = np.asarray(values).ravel()
    if v.size == 0 or not np.issubdtype(v.dtype, np.floating):
        return None
    for scale in COUNT_LOGS:
        counts = np.empty(v.size, dtype=np.float32)
        for start in range(0, v.size, BLOCK):
            block = counts_of(v[start : start + BLOCK], scale)
            if not is_count_matrix(block) or (start == 0 and not _evidence(block)):
                break
            counts[start : start + BLOCK] = block
        else:
            return scale, counts
    return None


def _evidence(counts: np.ndarray) -> bool:
    """Whether enough of ``counts`` are whole numbers from 1 to :data:`TOLD_APART`.

    At least :data:`COUNT_LOG_EVIDENCE` of them, or all non-zero ones where there are fewer.
    On a base too large for the values (ln(1 + x) at 1e4 per cell read as log10 of whole
    numbers in the thousands) every value is near the log of some whole number: none of
    them tells.
    """
    told = int(np.count_nonzero((counts >= 1) & (counts <= TOLD_APART)))
    nonzero = int(np.count_nonzero(counts))
    return nonzero > 0 and told >= min(COUNT_LOG_EVIDENCE, nonzero)
