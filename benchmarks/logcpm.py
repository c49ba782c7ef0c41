"""edgeR's log counts per million of bulk read counts, with TMM factors, for benchmark inputs.

The workflow of edgeR and limma users, and the form of many GEO tables, is
``calcNormFactors`` (TMM) then ``cpm(y, log = TRUE, prior.count = 2)``. This builds those
values from counts, from the published formulas (Robinson & Oshlack 2010 for TMM; edgeR's
documented ``cpm``):

- TMM factors: each sample against a reference sample (the one whose upper quartile of
  counts per total is nearest the samples' mean, edgeR 3's choice), over genes read in
  both; the log ratios M and mean log values A of those genes, trimmed of their 30%
  extremes of M and 5% of A (by rank, ties sharing theirs), are averaged with weights the
  inverse of their asymptotic variances; the factors are scaled to a geometric mean of 1.
  Effective library sizes are the totals times the factors.
- log-CPM: ``log2((y + p) / (L + 2 p) * 1e6)`` with the prior count ``p`` scaled to each
  sample's effective library size ``L`` (``prior x L / mean(L)``), so that every sample's
  zero sits at the same value, ``log2(prior x 1e6 / (mean(L) + 2 prior))``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

#: edgeR's default prior count for ``cpm(log = TRUE)``.
PRIOR_COUNT = 2.0
#: TMM's trims (fractions cut from each end): of the log ratios M and of the mean logs A.
TRIM_M = 0.3
TRIM_A = 0.05


def _trimmed(values: np.ndarray, fraction: float) -> np.ndarray:
    """Which values lie outside the ``fraction`` smallest and largest, by rank (ties share
    their average rank, so tied values are kept or left out together)."""
    n = values.size
    rank = rankdata(values)
    cut = np.floor(n * fraction)
    return (rank >= cut + 1) & (rank <= n - cut)


def tmm_factors(counts: np.ndarray) -> np.ndarray:
    """TMM normalisation factors of each sample (rows), with a geometric mean of 1."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1)
    upper = np.quantile(counts / totals[:, None], 0.75, axis=1)
    ref = int(np.argmin(np.abs(upper - upper.mean())))
    factors = np.ones(counts.shape[0])
    y_r, n_r = counts[ref], totals[ref]
    for k in range(counts.shape[0]):
        y_k, n_k = counts[k], totals[k]
        both = (y_k > 0) & (y_r > 0)
        p_k, p_r = y_k[both] / n_k, y_r[both] / n_r
        m = np.log2(p_k / p_r)
        a = 0.5 * np.log2(p_k * p_r)
        variance = (n_k - y_k[both]) / (n_k * y_k[both]) + (n_r - y_r[both]) / (n_r * y_r[both])
        keep = _trimmed(m, TRIM_M) & _trimmed(a, TRIM_A)
        factors[k] = 2.0 ** (np.sum(m[keep] / variance[keep]) / np.sum(1.0 / variance[keep]))
    return factors / np.exp(np.mean(np.log(factors)))


def log_cpm(counts: np.ndarray, prior_count: float = PRIOR_COUNT) -> np.ndarray:
    """edgeR's ``cpm(log = TRUE)`` of ``counts`` (samples x genes) after TMM, as float32."""
    counts = np.asarray(counts, dtype=np.float64)
    library = counts.sum(axis=1) * tmm_factors(counts)
    prior = prior_count * library / library.mean()
    values = np.log2((counts + prior[:, None]) / (library + 2.0 * prior)[:, None] * 1e6)
    return values.astype(np.float32)
