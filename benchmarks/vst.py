"""DESeq2's variance-stabilising transformation of bulk read counts, for benchmark inputs.

Many bulk tables are shared as DESeq2's ``vst()`` of the read counts (the input of its
``plotPCA``, and of many GEO supplementary files): log2-like values whose floor, the value of
a gene never read, sits a few units above zero. This builds them from counts as DESeq2's
``vst(blind = TRUE, fitType = "parametric")`` does, from its published formulas:

- size factors by the median of ratios to each gene's geometric mean over the samples
  (genes read in every sample);
- a dispersion per gene, here by the method of moments on the normalised counts (DESeq2
  takes the likelihood's maximum; both estimate the same quantity), and the parametric
  trend ``asymptotic + extra_poisson / mean`` fitted to them by a gamma-family regression,
  leaving out genes whose dispersion is under 1e-4 or over 15 times the trend, as DESeq2
  does;
- the closed-form transformation of that trend applied to the normalised counts.

And DESeq2's ``normTransform``, log2 of the normalised counts plus 1 (:func:`normalised_log2`).
"""

from __future__ import annotations

import numpy as np

#: Genes with fewer reads than this over all samples are left out before the transformation,
#: as DESeq2's vignette filters them (``rowSums(counts(dds)) >= 10``): the VST of a gene never
#: read is a constant.
PREFILTER_READS = 10
#: Dispersions this far from the trend (as a ratio) are left out of its fit, as DESeq2 does.
RATIO_BOUNDS = (1e-4, 15.0)


def size_factors(counts: np.ndarray) -> np.ndarray:
    """Each sample's median ratio to the genes' geometric means (genes read in every sample)."""
    seen = (counts > 0).all(axis=0)
    if not seen.any():
        raise ValueError("no gene is read in every sample: size factors are undefined")
    logs = np.log(counts[:, seen])
    return np.exp(np.median(logs - logs.mean(axis=0), axis=1))


def dispersion_trend(normalised: np.ndarray, factors: np.ndarray) -> tuple[float, float]:
    """``(asymptotic, extra_poisson)`` of the trend ``asymptotic + extra_poisson / mean``.

    Each gene's dispersion by moments, (variance - mean x mean(1 / size factor)) / mean^2,
    then a gamma-family regression on (1, 1 / mean) by iterated weighted least squares
    (weights 1 / fit^2: a gamma's variance grows with its mean squared).
    """
    mean = normalised.mean(axis=0)
    keep = mean > 0
    mean = mean[keep]
    var = normalised[:, keep].var(axis=0, ddof=1)
    dispersion = (var - mean * np.mean(1.0 / factors)) / mean**2
    design = np.column_stack([np.ones_like(mean), 1.0 / mean])
    coefs = np.array([0.1, 1.0])
    for _ in range(50):
        fit = design @ coefs
        ratio = dispersion / fit
        use = (ratio > RATIO_BOUNDS[0]) & (ratio < RATIO_BOUNDS[1])
        w = 1.0 / fit[use]
        new, *_ = np.linalg.lstsq(design[use] * w[:, None], dispersion[use] * w, rcond=None)
        new = np.maximum(new, 1e-8)  # a trend that stays positive, as DESeq2 requires
        if np.allclose(new, coefs, rtol=1e-6):
            break
        coefs = new
    return float(coefs[0]), float(coefs[1])


def transform(normalised: np.ndarray, asymptotic: float, extra_poisson: float) -> np.ndarray:
    """The variance-stabilising transformation of the parametric trend, on a log2 scale.

    It tends to log2 of the normalised count as counts grow; a count of 0 maps to
    log2((1 + extra_poisson) / (4 x asymptotic)).
    """
    a, b, q = asymptotic, extra_poisson, normalised
    inside = 1.0 + b + 2.0 * a * q + 2.0 * np.sqrt(a * q * (1.0 + b + a * q))
    return np.log2(inside / (4.0 * a))


def normalised_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DESeq2's ``counts(dds, normalized = TRUE)`` (float64) and the size factors used."""
    counts = np.asarray(counts, dtype=np.float64)
    factors = size_factors(counts)
    return counts / factors[:, None], factors


def vst(counts: np.ndarray) -> np.ndarray:
    """DESeq2's blind parametric VST of samples x genes read counts (float32).

    Pass the genes kept by :func:`prefiltered`, as DESeq2's users do.
    """
    normalised, factors = normalised_counts(counts)
    return transform(normalised, *dispersion_trend(normalised, factors)).astype(np.float32)


def normalised_log2(counts: np.ndarray) -> np.ndarray:
    """DESeq2's ``normTransform``: log2 of the normalised counts plus 1 (float32).

    As many tables give them; each sample's total is the same only up to its composition.
    """
    return np.log2(normalised_counts(counts)[0] + 1.0).astype(np.float32)


def prefiltered(counts: np.ndarray) -> np.ndarray:
    """Which genes have at least :data:`PREFILTER_READS` reads over all samples."""
    return np.asarray(counts.sum(axis=0)).ravel() >= PREFILTER_READS
