"""Element-wise log-likelihoods for expression data.

Every ``*_log_prob`` function returns ``log p(x | params)`` element by element: the inputs
broadcast against each other (e.g. ``x`` of shape ``(n, g)`` with a per-gene ``theta`` of
shape ``(g,)``) and the result has their broadcast shape. Reducing over genes and samples is
left to the caller (the modules sum over genes to get a per-sample reconstruction term).
The squared-error losses (``mse``, ``masked_mse``) are in :mod:`geneae.squared_errors`.

Numerical conventions
---------------------
* Everything is written with ``lgamma``, ``softplus`` and ``logaddexp`` so that float32 stays
  finite (values and gradients) for counts up to 1e5, means in [1e-8, 1e5] and inverse
  dispersions in [1e-4, 1e4]. Compute in float32 or float64: under mixed precision the
  caller should upcast the parameters first (float16 cannot even hold a count of 1e5).
* Positive parameters of the count likelihoods (``rate``, ``mu``, ``theta``) are floored at
  ``POSITIVE_FLOOR = 1e-30`` before their logarithm is taken. A softmax decoder can
  underflow to an exact 0 in float32, and ``log(0)`` would turn the loss into ``-inf`` /
  NaN. The floor is far below any value a model produces on purpose, so results for
  parameters >= 1e-30 are exact (unlike the common ``log(mu + 1e-8)``, which biases small
  means), and ``x / 1e-30`` still fits in float32 for the gradient of ``x * log(mu)``.
* The negative binomial's ``lgamma(x + theta) - lgamma(theta)`` is a difference of two
  terms of size ``~theta * log(theta)``, so its absolute rounding error grows with theta:
  about 5e-3 in float32 at theta = 1e4 (float64: 2e-12), harmless for training. For
  theta beyond ~1e6 the distribution is Poisson to within that error: use the Poisson.
* ``gaussian_log_prob`` takes a variance that must be positive: decoders produce it with
  ``softplus``/``exp`` plus their own minimum, so no floor is added here.
* Count likelihoods accept non-integer ``x`` (``lgamma`` interpolates) but are only
  normalised densities for non-negative integers; refusing non-count data is the job of the
  model layer, not of these functions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "POSITIVE_FLOOR",
    "bernoulli_log_prob",
    "gaussian_log_prob",
    "nb_log_prob",
    "poisson_log_prob",
    "zinb_log_prob",
    "zip_log_prob",
]

POSITIVE_FLOOR = 1e-30
"""Smallest value used for a positive count-likelihood parameter before taking its log."""

_LOG_2PI = math.log(2.0 * math.pi)

# Below this many entries a CPU batch is scored densely: finding the non-zero positions
# costs more than it saves.
_FIND_NONZERO_MIN = 4096


def _softplus(t: Tensor) -> Tensor:
    """``log(1 + exp(t))`` to the precision of ``t``'s dtype.

    ``torch.nn.functional.softplus`` returns ``t`` itself above ``t = 20``, dropping
    ``log1p(exp(-t))`` (at most 2.1e-9). That is below float32's resolution there (an ulp of
    20 is 1.9e-6), so float32 and narrower types take that fused kernel, about twice as fast
    as ``logaddexp`` forward and backward: it is on every count-likelihood step. In float64
    the term is a large relative error for a log-probability near 0, so float64 keeps
    ``logaddexp``, whose gradient is exactly ``sigmoid(t)``.
    """
    if t.dtype == torch.float64:
        return torch.logaddexp(t, torch.zeros((), dtype=t.dtype, device=t.device))
    return torch.nn.functional.softplus(t)


def _log_positive(t: Tensor) -> Tensor:
    """``log(max(t, POSITIVE_FLOOR))``: finite for parameters that underflowed to 0."""
    return torch.log(t.clamp_min(POSITIVE_FLOOR))


# -- continuous ------------------------------------------------------------------------------


def gaussian_log_prob(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    r"""Log-density of a Gaussian with the given mean and variance.

    .. math:: \log N(x; \mu, \sigma^2) = -\tfrac12\left(\log 2\pi + \log\sigma^2
              + (x - \mu)^2 / \sigma^2\right)

    Parameters
    ----------
    x
        Observations.
    mean
        Means :math:`\mu`.
    var
        Variances :math:`\sigma^2` (not standard deviations); must be positive.

    Returns
    -------
    Tensor
        Log-densities, with the broadcast shape of the inputs.
    """
    return -0.5 * (_LOG_2PI + torch.log(var) + (x - mean).square() / var)


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    r"""Bernoulli log-probability from logits; the negative binary cross-entropy.

    .. math:: \log p(x) = x \log\sigma(l) + (1 - x)\log(1 - \sigma(l))
              = -x \operatorname{softplus}(-l) - (1 - x)\operatorname{softplus}(l)

    The right-hand form never evaluates :math:`\sigma(l)` and so stays accurate and finite
    for logits of any size; it equals ``-binary_cross_entropy_with_logits(l, x)``. ``x`` may be any
    value in [0, 1] (continuous targets such as min-max scaled expression), in which case
    this is the negative cross-entropy rather than a normalised log-probability.

    Parameters
    ----------
    x
        Targets in [0, 1].
    logits
        Logits :math:`l` of the success probability :math:`\sigma(l)`.

    Returns
    -------
    Tensor
        Log-probabilities (<= 0), with the broadcast shape of the inputs.
    """
    # The sum of two non-positive terms, never a difference of two large ones (x * l and
    # softplus(l) cancel for large l), so log-probabilities near 0 keep relative precision.
    return -(x * _softplus(-logits) + (1.0 - x) * _softplus(logits))


# -- counts ----------------------------------------------------------------------------------


def _at_nonzero(x: Tensor, nonzero: Tensor, values: Tensor) -> Tensor:
    """A tensor of ``x``'s shape holding ``values`` at the flat positions ``nonzero``, else 0."""
    out = torch.zeros(x.numel(), dtype=values.dtype, device=values.device)
    return out.index_copy(0, nonzero, values).view(x.shape)


def _log_factorial(x: Tensor, nonzero: Tensor | None) -> Tensor:
    """``lgamma(x + 1)``, evaluated only at ``nonzero`` when given (it is 0 at x = 0)."""
    if nonzero is None:
        return torch.lgamma(x + 1.0)
    return _at_nonzero(x, nonzero, torch.lgamma(x.reshape(-1).index_select(0, nonzero) + 1.0))


def poisson_log_prob(x: Tensor, rate: Tensor, *, nonzero: Tensor | None = None) -> Tensor:
    r"""Poisson log-probability.

    .. math:: \log p(x; \lambda) = x\log\lambda - \lambda - \log\Gamma(x + 1)

    Parameters
    ----------
    x
        Non-negative counts.
    rate
        Rates :math:`\lambda > 0` (floored at :data:`POSITIVE_FLOOR` inside the log).
    nonzero
        Optional int64 flat positions (into ``x`` viewed as a vector) of every entry of
        ``x`` that may be non-zero; all other entries must be 0. The log-Gamma term is then
        evaluated there only (the training batches of sparse data carry them).

    Returns
    -------
    Tensor
        Log-probabilities, with the broadcast shape of the inputs.
    """
    return x * _log_positive(rate) - rate - _log_factorial(x, nonzero)


def _nb_log_terms(
    x: Tensor, mu: Tensor, theta: Tensor, nonzero: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Return ``(log f(x), log f(0))`` of the negative binomial, sharing the softplus terms."""
    log_mu = _log_positive(mu)
    log_theta = _log_positive(theta)
    theta = theta.clamp_min(POSITIVE_FLOOR)
    # With a = log mu - log theta: log(theta / (theta + mu)) = -softplus(a) and
    # log(mu / (theta + mu)) = a - softplus(a). No theta + mu is ever formed, so neither a
    # huge mu next to a tiny theta nor the reverse loses the small one, and one softplus
    # serves both fractions: log f(x) = coef + x a - (theta + x) softplus(a).
    log_ratio = log_mu - log_theta
    softplus_ratio = _softplus(log_ratio)
    log_f0 = -theta * softplus_ratio
    log_f = _nb_log_coef(x, theta, nonzero) + x * log_ratio - (theta + x) * softplus_ratio
    return log_f, log_f0


def _nb_log_coef(x: Tensor, theta: Tensor, nonzero: Tensor | None = None) -> Tensor:
    """``lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)``, exactly 0 where ``x == 0``.

    Single-cell counts are mostly zeros, and lgamma / digamma dominate the NB step on a
    CPU; with one theta per gene (or a scalar) they are evaluated at the ``nonzero``
    positions only, and ``lgamma(theta)`` once per gene. Without the positions a CPU
    finds them itself; on GPUs the dense form is faster (no data-dependent indexing).
    """
    per_gene = x.dim() >= 1 and theta.dim() <= 1 and theta.numel() in (1, x.shape[-1])
    if nonzero is None and per_gene and not x.is_cuda and x.numel() >= _FIND_NONZERO_MIN:
        nonzero = torch.nonzero(x.reshape(-1)).squeeze(1)
    if nonzero is None or not per_gene:
        return torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1.0)
    xn = x.reshape(-1).index_select(0, nonzero)
    if theta.numel() > 1:
        genes = nonzero % x.shape[-1]
        thetan = theta.index_select(0, genes)
        lgamma_theta = torch.lgamma(theta).index_select(0, genes)
    else:
        thetan = theta.reshape(-1)
        lgamma_theta = torch.lgamma(thetan)
    values = torch.lgamma(xn + thetan) - lgamma_theta - torch.lgamma(xn + 1.0)
    return _at_nonzero(x, nonzero, values)


def nb_log_prob(x: Tensor, mu: Tensor, theta: Tensor, *, nonzero: Tensor | None = None) -> Tensor:
    r"""Negative binomial log-probability, mean / inverse-dispersion parameterisation.

    With mean :math:`\mu` and inverse dispersion :math:`\theta` (variance
    :math:`\mu + \mu^2/\theta`; :math:`\theta\to\infty` is Poisson):

    .. math:: \log p(x) = \log\Gamma(x+\theta) - \log\Gamma(\theta) - \log\Gamma(x+1)
              + \theta\log\frac{\theta}{\theta+\mu} + x\log\frac{\mu}{\theta+\mu}

    This is ``scipy.stats.nbinom`` with ``n = theta`` and ``p = theta / (theta + mu)``. The
    two fractions are computed as ``-softplus(log mu - log theta)`` and
    ``-softplus(log theta - log mu)``, which are accurate over any ratio of the two.

    Parameters
    ----------
    x
        Non-negative counts.
    mu
        Means :math:`\mu > 0`.
    theta
        Inverse dispersions :math:`\theta > 0` (often one per gene, shape ``(g,)``).

    nonzero
        Optional int64 flat positions (into ``x`` viewed as a vector) of every entry of
        ``x`` that may be non-zero; all other entries must be 0 (see
        :func:`poisson_log_prob`).

    Returns
    -------
    Tensor
        Log-probabilities, with the broadcast shape of the inputs.
    """
    return _nb_log_terms(x, mu, theta, nonzero)[0]


def _zero_inflate(x: Tensor, log_f: Tensor, log_f0: Tensor, pi_logits: Tensor) -> Tensor:
    r"""Mix a point mass at zero (probability :math:`\pi = \sigma(\text{pi\_logits})`) into f.

    ``log pi = -softplus(-l)`` and ``log(1 - pi) = -softplus(l)`` are exact for any logit.
    Every branch is finite everywhere, so ``torch.where`` passes finite gradients to each.
    """
    log_pi = -_softplus(-pi_logits)
    log_one_minus_pi = -_softplus(pi_logits)
    # At zero, log(pi + (1 - pi) f0) = log1p(y) with y = (1 - pi) * expm1(log f0) in (-1, 0].
    # Near 0 (zero almost certain) logaddexp would cancel to an absolute, not relative,
    # error, so take log1p there; below log(0.5) logaddexp is accurate and log1p is not.
    y = torch.exp(log_one_minus_pi) * torch.expm1(log_f0)
    near_certain = y > -0.5
    at_zero = torch.where(
        near_certain,
        torch.log1p(torch.where(near_certain, y, torch.zeros_like(y))),  # no log1p(-1) = -inf
        torch.logaddexp(log_pi, log_one_minus_pi + log_f0),
    )
    elsewhere = log_one_minus_pi + log_f
    return torch.where(x == 0, at_zero, elsewhere)


def zip_log_prob(
    x: Tensor, rate: Tensor, pi_logits: Tensor, *, nonzero: Tensor | None = None
) -> Tensor:
    r"""Zero-inflated Poisson log-probability.

    With :math:`\pi = \sigma(\text{pi\_logits})` the zero-inflation probability and
    :math:`f` the Poisson pmf:

    .. math:: \log p(x) = \begin{cases}
              \log\left(\pi + (1-\pi) e^{-\lambda}\right) & x = 0 \\
              \log(1-\pi) + \log f(x; \lambda) & x > 0 \end{cases}

    Parameters
    ----------
    x
        Non-negative counts.
    rate
        Poisson rates :math:`\lambda > 0`.
    pi_logits
        Logits of the zero-inflation probability.

    nonzero
        Optional int64 flat positions (into ``x`` viewed as a vector) of every entry of
        ``x`` that may be non-zero; all other entries must be 0 (see
        :func:`poisson_log_prob`).

    Returns
    -------
    Tensor
        Log-probabilities, with the broadcast shape of the inputs.
    """
    log_f = poisson_log_prob(x, rate, nonzero=nonzero)
    return _zero_inflate(x, log_f, -rate, pi_logits)


def zinb_log_prob(
    x: Tensor, mu: Tensor, theta: Tensor, pi_logits: Tensor, *, nonzero: Tensor | None = None
) -> Tensor:
    r"""Zero-inflated negative binomial log-probability.

    With :math:`\pi = \sigma(\text{pi\_logits})` the zero-inflation probability and
    :math:`f` the negative binomial pmf of :func:`nb_log_prob`:

    .. math:: \log p(x) = \begin{cases}
              \log\left(\pi + (1-\pi)\left(\frac{\theta}{\theta+\mu}\right)^\theta\right)
              & x = 0 \\
              \log(1-\pi) + \log f(x; \mu, \theta) & x > 0 \end{cases}

    Parameters
    ----------
    x
        Non-negative counts.
    mu
        Means :math:`\mu > 0` of the negative binomial component.
    theta
        Inverse dispersions :math:`\theta > 0`.
    pi_logits
        Logits of the zero-inflation probability.

    nonzero
        Optional int64 flat positions (into ``x`` viewed as a vector) of every entry of
        ``x`` that may be non-zero; all other entries must be 0 (see
        :func:`poisson_log_prob`).

    Returns
    -------
    Tensor
        Log-probabilities, with the broadcast shape of the inputs.
    """
    log_f, log_f0 = _nb_log_terms(x, mu, theta, nonzero)
    return _zero_inflate(x, log_f, log_f0, pi_logits)
