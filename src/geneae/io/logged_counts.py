"""Raw counts kept as their logs in X (``sc.pp.log1p`` without ``normalize_total``).

A file read in memory (:mod:`geneae.io.finalize`), a file read on disk
(:mod:`geneae.io.backed`) and an AnnData given in Python
(:func:`geneae.io.raw.as_read_from_a_file`) take the counts back by one rule
(:func:`geneae.logcounts.counts_under_log`) and say so in one line; X is kept as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from geneae.logcounts import counts_under_log
from geneae.logscale import LogScale

logger = logging.getLogger(__name__)

Matrix = np.ndarray | sp.spmatrix | sp.sparray

#: What a reader says when it takes the counts back from X's logs of them.
LOG_COUNTS_NOTE = (
    "X of %s holds %s of whole numbers (raw counts, not normalised): the count models use "
    "the counts, %s"
)


def say_counts_from_log(path: Path, scale: LogScale) -> None:
    """One line on counts taken back from their logs."""
    logger.info(LOG_COUNTS_NOTE, path, scale, scale.inverse)


def counts_from_log(x: Matrix, path: Path) -> tuple[LogScale, Matrix] | None:
    """The log ``x`` is on and the counts whose logs it holds, for ``layers["counts"]``.

    Only where every stored value of ``x`` is the log of a whole number
    (:func:`geneae.logcounts.counts_under_log`), else None; the caller has found no counts
    elsewhere. The counts have ``x``'s shape and storage (CSR with its pattern, or dense).
    """
    csr = sp.csr_matrix(x) if sp.issparse(x) else None
    found = counts_under_log(csr.data if csr is not None else np.asarray(x).ravel())
    if found is None:
        return None
    scale, values = found
    if csr is None:
        counts: Matrix = values.reshape(np.shape(x))
    else:
        counts = sp.csr_matrix((values, csr.indices, csr.indptr), shape=csr.shape)
    say_counts_from_log(path, scale)
    return scale, counts


def counts_origin(scale: LogScale) -> str:
    """Where the counts layer came from, for ``geneae info`` (``"e^v - 1 of X's ln(x+1)"``)."""
    return f"{scale.inverse} of X's {scale}"
