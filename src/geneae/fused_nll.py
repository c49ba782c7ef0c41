"""Per-sample negative log-likelihoods with hand-written gradients, for the training step.

The element-wise functions of :mod:`geneae.distributions` are the reference: written
with one torch operator per term, autograd runs each term's forward and backward as a
separate pass over the (samples x genes) batch, and on a CPU those memory-bound passes
took half of the default model's step (BENCHMARKS.md, "Where a training step's time
goes"). The two losses of the default model are written here once more as
:class:`torch.autograd.Function` s that return the sum over genes directly, each term of
the gradient in closed form, so that a step makes a few passes instead of dozens:

* :func:`nb_nll_rows` — the negative binomial of :func:`geneae.distributions.nb_log_prob`,
  parameterised by ``log(mu / theta)``, the quantity both its fractions are built from.
  The terms in the counts (``x log ...``, the log-Gamma coefficient) are evaluated at the
  non-zero entries only; ``theta * softplus(.)`` summed over genes is a matrix-vector
  product.
* :func:`gaussian_nll_rows` — the Gaussian with one variance per gene of
  :func:`geneae.distributions.gaussian_log_prob`; its sum over genes is a matrix-vector
  product of the squared errors and the precisions.

Both agree with the reference to rounding, values and gradients (tests/test_fused_nll.py,
float64 gradcheck included). They take a per-gene parameter (shape ``(g,)``) and a 2-D
batch; :func:`fusable` says when a call has that shape, and the callers keep the
element-wise reference for everything else.

``torch.compile`` is no substitute here: the dense form of the NB loss (log-softmax decoder,
NB over every entry), compiled by inductor with gcc, took 45 s to compile and stepped no
faster than uncompiled (52-56 ms forward and backward at 256 x 2,000, one thread, against
20-25 ms for :func:`nb_nll_rows` in the same run): its time is the log-gamma and digamma of
every entry, which the sparse form evaluates at the non-zero entries only. A compiled sparse
form would take a new number of non-zero entries every batch (dynamic shapes): not tried.
Nor does compiling the whole loss pay as a default: the default member's loss (forward and
backward, these sparse forms included, dynamic shapes) compiled steps 1.21-1.26x as fast at
batches 128-256 in bf16-mixed on two threads, but took 37 s to compile, 7 s with inductor's
on-disk cache warm (``python -m benchmarks.compile_step``, 10x PBMC), against ~5 s saved
over a default member's ~1,600 steps. A hand-fused loop in numba (installed with scanpy) is
no way round either: its loops call the C library's exp and log one element at a time, and
softplus alone over a 256 x 2,000 batch took 8.1 ms against torch's 1.3 ms, one thread each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

# The reference's numerical helpers, shared so that both score alike.
from geneae.distributions import _FIND_NONZERO_MIN, _LOG_2PI, POSITIVE_FLOOR, _softplus

__all__ = ["fusable", "gaussian_nll_rows", "nb_nll_rows", "zinb_nll_rows"]


def fusable(target: Tensor, per_gene: Tensor, *others: Tensor) -> bool:
    """Whether the fused losses apply: a 2-D batch, a ``(g,)`` parameter, 2-D others alike."""
    if target.dim() != 2 or per_gene.dim() != 1 or per_gene.shape[0] != target.shape[1]:
        return False
    return all(t.shape == target.shape for t in others)


def _without_autocast(t: Tensor) -> torch.autocast:
    """A region where autocast (mixed precision) leaves the products in t's float32."""
    return torch.autocast(t.device.type, enabled=False)


def _float32_backward(backward: Callable[..., Any]) -> Callable[..., Any]:
    """Run a Function's backward with autocast off, as its forward.

    A backward called inside an autocast region (Lightning's mixed precision calls
    ``manual_backward`` there) would otherwise run its products over genes in half
    precision and mix their dtypes with the float32 saved tensors.
    """

    @functools.wraps(backward)
    def wrapped(ctx: Any, *grads: Tensor) -> Any:
        with _without_autocast(grads[0]):
            return backward(ctx, *grads)

    return wrapped


def _nonzero_of(x: Tensor, nonzero: Tensor | None) -> Tensor | None:
    """The flat positions of x's non-zero entries: given, found (CPU), or None (dense)."""
    if nonzero is not None:
        return nonzero
    if x.is_cuda or x.numel() < _FIND_NONZERO_MIN:
        return None  # dense evaluation: no data-dependent indexing on a GPU
    return torch.nonzero(x.reshape(-1)).squeeze(1)


def _entries(
    x: Tensor, log_ratio: Tensor, theta: Tensor, nonzero: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """At the non-zero entries: counts, log-ratios, rows, genes, thetas and NB coefficients.

    The coefficient is ``lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)`` (0 at x = 0),
    with ``lgamma(theta)`` evaluated once per gene.
    """
    g = x.shape[1]
    xn = x.reshape(-1).index_select(0, nonzero)
    an = log_ratio.reshape(-1).index_select(0, nonzero)
    rows = nonzero // g
    genes = nonzero - rows * g  # the remainder without a second integer division
    thetan = theta.index_select(0, genes)
    coef = torch.lgamma(xn + thetan).sub_(torch.lgamma(theta).index_select(0, genes))
    return xn, an, rows, genes, thetan, coef.sub_(torch.lgamma(xn + 1.0))


# Coefficients of digamma's asymptotic series, B_2k / (2k), k = 1..6: psi(w) ~ log(w)
# - 1/(2w) - sum_k B_2k / (2k w^2k).
_DIGAMMA_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760)
# Shift before the series: psi(z) = psi(z + 3) - 1/z - 1/(z + 1) - 1/(z + 2).
_DIGAMMA_SHIFT = 3


def digamma(z: Tensor) -> Tensor:
    """``torch.digamma`` of positive ``z``, as exact in float32 and narrower, faster on a CPU.

    torch's CPU digamma recurses one element at a time up to 10: on the ~25,000 non-zero
    counts of a 128-cell batch it took 0.53 ms, 6% of the default model's step, against
    0.23 ms for this (about 25 vectorised whole-tensor passes). The argument is raised by
    3 with the recurrence ``psi(z) = psi(z + 1) - 1/z`` and ``psi`` at ``w = z + 3 >= 3``
    taken from its asymptotic series through ``w^-12``, whose next term is below 2e-8 there:
    under float32's resolution of ``psi`` (tests/test_fused_nll.py: against scipy).
    Float64 keeps ``torch.digamma``; half precisions are computed in float32. The passes
    after the first write in place (0.19 ms on 51,000 entries against 0.24 out of place),
    so no gradient flows through it: the fused losses call it in their backward.
    """
    if z.dtype == torch.float64:
        return torch.digamma(z)
    if z.dtype != torch.float32:
        return digamma(z.float()).to(z.dtype)
    shift = z.reciprocal()
    for k in range(1, _DIGAMMA_SHIFT):
        shift.add_(torch.add(z, k).reciprocal_())
    w = z + _DIGAMMA_SHIFT
    inv = w.reciprocal()
    inv2 = inv * inv
    series = torch.mul(inv2, _DIGAMMA_SERIES[-1]).add_(_DIGAMMA_SERIES[-2])
    for c in reversed(_DIGAMMA_SERIES[:-2]):
        series.mul_(inv2).add_(c)
    series.mul_(inv2)
    return w.log_().sub_(inv, alpha=0.5).sub_(series).sub_(shift)


def _coef_theta_grad(xn: Tensor, thetan: Tensor, theta: Tensor, genes: Tensor) -> Tensor:
    """The coefficient's theta derivative at the non-zero entries (a digamma difference)."""
    return digamma(xn + thetan) - digamma(theta).index_select(0, genes)


class _NBRows(torch.autograd.Function):
    """Rows of ``-log NB(x; mu, theta)`` from ``a = log(mu / theta)`` (see nb_nll_rows)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, log_ratio: Tensor, theta: Tensor, nonzero: Tensor | None
    ) -> Tensor:
        # -log f(x) = theta softplus(a) + x softplus(-a) - [lgamma(x + theta)
        #             - lgamma(theta) - lgamma(x + 1)]; the last two terms are 0 at x = 0.
        softplus_a = _softplus(log_ratio)
        if nonzero is None:
            coef = torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1.0)
            rows_nll = softplus_a @ theta + (x * _softplus(-log_ratio) - coef).sum(1)
            ctx.save_for_backward(x, log_ratio, softplus_a, theta)
            ctx.dense = True
            return rows_nll
        xn, an, rows, genes, thetan, coef = _entries(x, log_ratio, theta, nonzero)
        rows_nll = (softplus_a @ theta).index_add(0, rows, xn * _softplus(-an) - coef)
        ctx.save_for_backward(xn, an, log_ratio, softplus_a, theta, thetan, nonzero, rows, genes)
        ctx.dense = False
        return rows_nll

    @staticmethod
    @_float32_backward
    def backward(  # type: ignore[override]
        ctx: Any, grad_rows: Tensor
    ) -> tuple[None, Tensor | None, Tensor | None, None]:
        # d/da = theta sigmoid(a) - x sigmoid(-a);
        # d/dtheta = softplus(a) - [digamma(x + theta) - digamma(theta)], the last at x > 0.
        need_a, need_theta = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if ctx.dense:
            x, log_ratio, softplus_a, theta = ctx.saved_tensors
            grad_a = grad_theta = None
            if need_a:
                grad_a = torch.sigmoid(log_ratio).mul_(theta) - x * torch.sigmoid(-log_ratio)
                grad_a.mul_(grad_rows.unsqueeze(1))
            if need_theta:
                digammas = torch.digamma(x + theta) - torch.digamma(theta)
                grad_theta = grad_rows @ (softplus_a - torch.where(x > 0, digammas, 0.0))
            return None, grad_a, grad_theta, None
        xn, an, log_ratio, softplus_a, theta, thetan, nonzero, rows, genes = ctx.saved_tensors
        weights = grad_rows.index_select(0, rows)
        grad_a = grad_theta = None
        if need_a:
            grad_a = torch.sigmoid(log_ratio).contiguous()  # index_add_ below needs a flat view
            grad_a.mul_(theta).mul_(grad_rows.unsqueeze(1))
            grad_a.view(-1).index_add_(0, nonzero, -weights * xn * torch.sigmoid(-an))
        if need_theta:
            digammas = _coef_theta_grad(xn, thetan, theta, genes)
            grad_theta = (grad_rows @ softplus_a).index_add_(0, genes, -weights * digammas)
        return None, grad_a, grad_theta, None


def nb_nll_rows(
    x: Tensor, log_ratio: Tensor, theta: Tensor, *, nonzero: Tensor | None = None
) -> Tensor:
    r"""Negative binomial negative log-likelihood summed over genes, per sample.

    .. math:: -\sum_g \log NB(x_{ng}; \mu_{ng}, \theta_g), \quad
              a_{ng} = \log(\mu_{ng} / \theta_g)

    equal to ``-nb_log_prob(x, mu, theta).sum(1)`` of :mod:`geneae.distributions` (the same
    softplus form, so the same accuracy over any ratio of mu and theta).

    Parameters
    ----------
    x
        (n, g) non-negative counts (data: no gradient flows to them).
    log_ratio
        (n, g) :math:`\log\mu - \log\theta`; a softmax decoder gives it as
        ``log_softmax(logits) + log(library) - log(theta)`` without forming mu.
    theta
        (g,) inverse dispersions, > 0.
    nonzero
        Optional int64 flat positions of every entry of ``x`` that may be non-zero (the
        batch's ``"target_nonzero"``); found here on a CPU when not given, and not used on a
        GPU (dense evaluation).

    Returns
    -------
    Tensor
        (n,) negative log-likelihoods.
    """
    theta = theta.clamp_min(POSITIVE_FLOOR)
    with _without_autocast(x):  # sums over thousands of genes: no half-precision products
        return _NBRows.apply(x, log_ratio, theta, _nonzero_of(x, nonzero))


class _ZINBRows(torch.autograd.Function):
    """Rows of ``-log ZINB(x; mu, theta, pi)`` from ``a = log(mu / theta)`` and pi's logits.

    Every entry is first scored as a zero, ``z0 = log(pi + (1 - pi) f0)`` with
    ``log f0 = c = -theta softplus(a)`` (as :func:`geneae.distributions.zinb_log_prob`:
    ``log1p`` where the zero is near certain, ``logaddexp`` elsewhere); the non-zero entries
    then trade ``z0`` for ``log(1 - pi) + log f(x) = -softplus(l) + coef - x softplus(-a) + c``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, log_ratio: Tensor, theta: Tensor, logits: Tensor, nonzero: Tensor
    ) -> Tensor:
        softplus_a = _softplus(log_ratio)
        log_f0 = softplus_a * theta
        log_f0.neg_()
        softplus_l = _softplus(logits)  # -log(1 - pi)
        y = torch.exp(-softplus_l).mul_(torch.expm1(log_f0))  # (1 - pi) (f0 - 1), in (-1, 0]
        near = y > -0.5
        # log pi = -softplus(-l) = l - softplus(l)
        log_zero = torch.where(
            near,
            torch.log1p(torch.where(near, y, 0.0)),
            torch.logaddexp(logits - softplus_l, log_f0 - softplus_l),
        )
        xn, an, rows, genes, thetan, coef = _entries(x, log_ratio, theta, nonzero)
        ln = logits.reshape(-1).index_select(0, nonzero)
        log_nonzero = coef - _softplus(ln) - xn * _softplus(-an)
        log_nonzero = log_nonzero + log_f0.reshape(-1).index_select(0, nonzero)
        zero_n = log_zero.reshape(-1).index_select(0, nonzero)
        rows_nll = log_zero.sum(1).neg_().index_add_(0, rows, zero_n - log_nonzero)
        ctx.save_for_backward(
            xn, an, ln, log_ratio, logits, softplus_a, log_f0, softplus_l, y, log_zero,
            theta, thetan, nonzero, rows, genes,
        )  # fmt: skip
        return rows_nll

    @staticmethod
    @_float32_backward
    def backward(  # type: ignore[override]
        ctx: Any, grad_rows: Tensor
    ) -> tuple[None, Tensor | None, Tensor | None, Tensor | None, None]:
        (
            xn, an, ln, log_ratio, logits, softplus_a, log_f0, softplus_l, y, log_zero,
            theta, thetan, nonzero, rows, genes,
        ) = ctx.saved_tensors  # fmt: skip
        weights = grad_rows.index_select(0, rows)
        w = grad_rows.unsqueeze(1)
        # As a zero: d z0 / d c = (1 - pi) f0 / P and d z0 / d l = pi (1 - pi)(1 - f0) / P
        # with P = exp(z0); both from logarithms, finite for any P. A non-zero entry has
        # d/dc = 1 and d/dl = -sigmoid(l). The loss is the negative of both.
        grad_c = torch.exp(log_f0 - softplus_l - log_zero).neg_()
        grad_c.view(-1).index_fill_(0, nonzero, -1.0)
        grad_c.mul_(w)
        grad_a = grad_theta = grad_l = None
        if ctx.needs_input_grad[1]:  # c = -theta softplus(a): dc/da = -theta sigmoid(a)
            grad_a = torch.sigmoid(log_ratio).mul_(grad_c).mul_(theta).neg_().contiguous()
            grad_a.view(-1).index_add_(0, nonzero, -weights * xn * torch.sigmoid(-an))
        if ctx.needs_input_grad[2]:  # dc/dtheta = -softplus(a); -coef at the non-zeros
            digammas = _coef_theta_grad(xn, thetan, theta, genes)
            grad_theta = (grad_c * softplus_a).sum(0).neg_()
            grad_theta.index_add_(0, genes, -weights * digammas)
        if ctx.needs_input_grad[3]:
            grad_l = torch.exp(logits - softplus_l - log_zero).mul_(y).contiguous()
            grad_l.view(-1).index_copy_(0, nonzero, torch.sigmoid(ln))
            grad_l.mul_(w)
        return None, grad_a, grad_theta, grad_l, None


def zinb_nll_rows(
    x: Tensor, log_ratio: Tensor, theta: Tensor, pi_logits: Tensor, *, nonzero: Tensor | None = None
) -> Tensor:
    r"""Zero-inflated negative binomial negative log-likelihood summed over genes, per sample.

    Equal to ``-zinb_log_prob(x, mu, theta, pi_logits).sum(1)`` of
    :mod:`geneae.distributions`, with :math:`a = \log(\mu / \theta)` as in
    :func:`nb_nll_rows`.

    Parameters
    ----------
    x
        (n, g) non-negative counts (data: no gradient flows to them).
    log_ratio
        (n, g) :math:`\log\mu - \log\theta`.
    theta
        (g,) inverse dispersions, > 0.
    pi_logits
        (n, g) logits of the zero-inflation probability.
    nonzero
        Optional int64 flat positions of every entry of ``x`` that may be non-zero; found
        here when not given.

    Returns
    -------
    Tensor
        (n,) negative log-likelihoods.
    """
    theta = theta.clamp_min(POSITIVE_FLOOR)
    if nonzero is None:
        nonzero = torch.nonzero(x.reshape(-1)).squeeze(1)
    with _without_autocast(x):
        return _ZINBRows.apply(x, log_ratio, theta, pi_logits, nonzero)


class _GaussianRows(torch.autograd.Function):
    """Rows of ``-log N(x; mean, var)`` with one variance per gene (see gaussian_nll_rows)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:  # type: ignore[override]
        residual = mean - x
        squared = residual.square()
        rows = (squared @ var.reciprocal() + (var.log().sum() + x.shape[1] * _LOG_2PI)) * 0.5
        ctx.save_for_backward(residual, squared, var)
        return rows

    @staticmethod
    @_float32_backward
    def backward(  # type: ignore[override]
        ctx: Any, grad_rows: Tensor
    ) -> tuple[None, Tensor | None, Tensor | None]:
        # d/dmean = (mean - x) / var; d/dvar = (1 / var - (mean - x)^2 / var^2) / 2.
        residual, squared, var = ctx.saved_tensors
        grad_mean = grad_var = None
        if ctx.needs_input_grad[1]:
            grad_mean = residual.div(var).mul_(grad_rows.unsqueeze(1))
        if ctx.needs_input_grad[2]:
            grad_var = (grad_rows.sum() - (grad_rows @ squared) / var) / (2.0 * var)
        return None, grad_mean, grad_var


def gaussian_nll_rows(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    r"""Gaussian negative log-likelihood with a variance per gene, summed over genes.

    Equal to ``-gaussian_log_prob(x, mean, var).sum(1)`` of :mod:`geneae.distributions`.

    Parameters
    ----------
    x
        (n, g) observations (data: no gradient flows to them).
    mean
        (n, g) means.
    var
        (g,) variances, > 0.

    Returns
    -------
    Tensor
        (n,) negative log-likelihoods.
    """
    with _without_autocast(x):
        return _GaussianRows.apply(x, mean, var)
