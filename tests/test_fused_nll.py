"""geneae.fused_nll against scipy.stats and the element-wise reference, values and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from geneae import fused_nll
from geneae.distributions import gaussian_log_prob, nb_log_prob, zinb_log_prob
from geneae.fused_nll import fusable, gaussian_nll_rows, nb_nll_rows, zinb_nll_rows
from geneae.module.heads import LikelihoodHead

N_ROWS, N_GENES = 40, 150  # 6,000 entries: above the size where a CPU finds the non-zeros


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(2024)


def nb_case(rng: np.random.Generator, dtype=torch.float64):
    """Counts, log(mu / theta) and theta over wide ranges, with many zeros and far tails."""
    theta = np.exp(rng.uniform(np.log(1e-3), np.log(1e3), N_GENES))
    log_mu = rng.uniform(np.log(1e-4), np.log(1e4), (N_ROWS, N_GENES))
    mu = np.exp(log_mu)
    x = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)
    x[rng.random(x.shape) < 0.5] = 0.0
    far = rng.random(x.shape) < 0.05
    x[far] = np.floor(np.exp(rng.uniform(0.0, np.log(1e5), int(far.sum()))))
    log_ratio = log_mu - np.log(theta)
    as_t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    return as_t(x), as_t(log_ratio), as_t(theta), mu


ROUTES = ("given", "found", "dense")


def nonzero_for(route: str, x: torch.Tensor, monkeypatch) -> torch.Tensor | None:
    """The positions the caller passes on each route (dense: the CPU search switched off)."""
    if route == "dense":
        monkeypatch.setattr(fused_nll, "_FIND_NONZERO_MIN", x.numel() + 1)
    if route == "given":
        return torch.nonzero(x.reshape(-1)).squeeze(1)
    return None


@pytest.mark.parametrize("route", ROUTES)
def test_nb_rows_match_scipy(rng, route, monkeypatch):
    x, log_ratio, theta, mu = nb_case(rng)
    nonzero = nonzero_for(route, x, monkeypatch)
    got = nb_nll_rows(x, log_ratio, theta, nonzero=nonzero)
    th = theta.numpy()
    expected = -stats.nbinom.logpmf(x.numpy(), th, th / (th + mu)).sum(1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def reference_nb_rows(x, log_ratio, theta):
    """The element-wise reference as a function of (a, theta): mu = exp(a) theta."""
    return -nb_log_prob(x, log_ratio.exp() * theta, theta).sum(1)


def value_and_grads(fn, x, log_ratio, theta, weights, **kw):
    """``fn``'s rows and the gradients of their weighted sum in (log_ratio, theta)."""
    a, t = log_ratio.clone().requires_grad_(), theta.clone().requires_grad_()
    rows = fn(x, a, t, **kw)
    return (rows.detach(), *torch.autograd.grad((rows * weights).sum(), (a, t)))


@pytest.mark.parametrize("route", ROUTES)
def test_nb_rows_and_gradients_match_the_reference(rng, route, monkeypatch):
    x, log_ratio, theta, _ = nb_case(rng)
    log_ratio = log_ratio.clamp(-20, 20)  # exp(a) * theta stays finite in float32 below
    weights = torch.tensor(rng.uniform(0.1, 2.0, N_ROWS))  # the upstream gradient
    nonzero = nonzero_for(route, x, monkeypatch)
    got = value_and_grads(nb_nll_rows, x, log_ratio, theta, weights, nonzero=nonzero)
    expected = value_and_grads(reference_nb_rows, x, log_ratio, theta, weights)
    for g, e in zip(got, expected, strict=True):  # value, d/da, d/dtheta
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9 * float(e.abs().max()))
    # float32 against the float64 values: every quantity to ~1e-7 of its scale. (The
    # reference's theta gradient is 2,500 times less accurate here: through
    # mu = exp(a) theta it cancels terms of the size of x * theta.)
    x32, a32, t32, w32 = (t.float() for t in (x, log_ratio, theta, weights))
    got32 = value_and_grads(nb_nll_rows, x32, a32, t32, w32, nonzero=nonzero)
    for g, e in zip(got32, got, strict=True):
        torch.testing.assert_close(g.double(), e, rtol=0, atol=2e-6 * float(e.abs().max()))


@pytest.mark.parametrize("route", ROUTES)
def test_nb_rows_gradcheck(route, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full((6, 9), 1.5, dtype=torch.float64), generator=gen)
    if route == "dense":
        nonzero = None
    else:  # the sparse route, positions given (a 54-entry batch would be scored densely)
        nonzero = torch.nonzero(x.reshape(-1)).squeeze(1)
    a = torch.randn(6, 9, dtype=torch.float64, generator=gen).requires_grad_()
    theta = torch.rand(9, dtype=torch.float64, generator=gen).add(0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, t: nb_nll_rows(x, a, t, nonzero=nonzero), (a, theta))


def test_nb_rows_gradients_asked_for_alone_equal_those_asked_together(rng):
    x, log_ratio, theta, _ = nb_case(rng)
    a, t = log_ratio.clone().requires_grad_(), theta.clone().requires_grad_()
    both = torch.autograd.grad(nb_nll_rows(x, a, t).sum(), (a, t))
    (only_a,) = torch.autograd.grad(nb_nll_rows(x, a, theta).sum(), (a,))
    (only_t,) = torch.autograd.grad(nb_nll_rows(x, log_ratio, t).sum(), (t,))
    torch.testing.assert_close(only_a, both[0], rtol=0, atol=0)
    torch.testing.assert_close(only_t, both[1], rtol=0, atol=0)


# -- zero-inflated negative binomial -------------------------------------------------------


def zinb_case(rng: np.random.Generator, dtype=torch.float64):
    """An NB case plus zero-inflation logits from near-never to near-always."""
    x, log_ratio, theta, mu = nb_case(rng, dtype)
    logits = torch.tensor(rng.uniform(-12.0, 12.0, x.shape), dtype=dtype)
    return x, log_ratio, theta, logits, mu


ZINB_ROUTES = ("given", "found")


def test_zinb_rows_match_the_hand_computed_mixture(rng):
    x, log_ratio, theta, logits, mu = zinb_case(rng)
    got = zinb_nll_rows(x, log_ratio, theta, logits)
    th, xs, pi = theta.numpy(), x.numpy(), special.expit(logits.numpy())
    p = th / (th + mu)
    at_zero = np.log(pi + (1 - pi) * stats.nbinom.pmf(0, th, p))
    elsewhere = np.log1p(-pi) + stats.nbinom.logpmf(xs, th, p)
    expected = -np.where(xs == 0, at_zero, elsewhere).sum(1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9)


def reference_zinb_rows(x, log_ratio, theta, logits):
    return -zinb_log_prob(x, log_ratio.exp() * theta, theta, logits).sum(1)


def zinb_value_and_grads(fn, x, log_ratio, theta, logits, weights, **kw):
    a, t, lg = (v.clone().requires_grad_() for v in (log_ratio, theta, logits))
    rows = fn(x, a, t, lg, **kw)
    return (rows.detach(), *torch.autograd.grad((rows * weights).sum(), (a, t, lg)))


@pytest.mark.parametrize("route", ZINB_ROUTES)
def test_zinb_rows_and_gradients_match_the_reference(rng, route):
    x, log_ratio, theta, logits, _ = zinb_case(rng)
    log_ratio = log_ratio.clamp(-20, 20)
    weights = torch.tensor(rng.uniform(0.1, 2.0, N_ROWS))
    nonzero = torch.nonzero(x.reshape(-1)).squeeze(1) if route == "given" else None
    got = zinb_value_and_grads(zinb_nll_rows, x, log_ratio, theta, logits, weights, nonzero=nonzero)
    expected = zinb_value_and_grads(reference_zinb_rows, x, log_ratio, theta, logits, weights)
    for g, e in zip(got, expected, strict=True):  # value, d/da, d/dtheta, d/dlogits
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9 * float(e.abs().max()))
    x32, a32, t32, l32, w32 = (t.float() for t in (x, log_ratio, theta, logits, weights))
    got32 = zinb_value_and_grads(zinb_nll_rows, x32, a32, t32, l32, w32, nonzero=nonzero)
    for g, e in zip(got32, got, strict=True):
        torch.testing.assert_close(g.double(), e, rtol=0, atol=2e-6 * float(e.abs().max()))


def test_zinb_rows_gradcheck():
    gen = torch.Generator().manual_seed(4)
    x = torch.poisson(torch.full((6, 9), 1.0, dtype=torch.float64), generator=gen)
    a = torch.randn(6, 9, dtype=torch.float64, generator=gen).requires_grad_()
    theta = torch.rand(9, dtype=torch.float64, generator=gen).add(0.2).requires_grad_()
    logits = torch.randn(6, 9, dtype=torch.float64, generator=gen).mul(3).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, t, lg: zinb_nll_rows(x, a, t, lg), (a, theta, logits))


def test_zinb_near_certain_zeros_keep_relative_precision():
    """A zero that is almost certain scores ~0 to relative precision (the log1p branch)."""
    a = torch.linspace(-30.0, -5.0, 50, dtype=torch.float64).reshape(1, 50)
    theta = torch.full((50,), 2.0, dtype=torch.float64)
    logits = torch.linspace(-20.0, 20.0, 50, dtype=torch.float64).reshape(1, 50)
    x = torch.zeros(1, 50, dtype=torch.float64)
    log_f0 = -theta * torch.nn.functional.softplus(a)
    expected = -torch.log1p(torch.sigmoid(-logits) * torch.expm1(log_f0)).sum(1)
    got = zinb_nll_rows(x, a, theta, logits, nonzero=torch.zeros(0, dtype=torch.long))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0.0)


def test_gaussian_rows_match_scipy(rng):
    x = rng.normal(0.0, 10.0, (N_ROWS, N_GENES))
    mean = rng.normal(0.0, 10.0, (N_ROWS, N_GENES))
    var = np.exp(rng.uniform(np.log(1e-4), np.log(1e4), N_GENES))
    got = gaussian_nll_rows(torch.tensor(x), torch.tensor(mean), torch.tensor(var))
    expected = -stats.norm.logpdf(x, loc=mean, scale=np.sqrt(var)).sum(1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gaussian_rows_and_gradients_match_the_reference(rng, dtype):
    as_t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    x = as_t(rng.normal(0.0, 2.0, (N_ROWS, N_GENES)))
    mean = as_t(rng.normal(0.0, 2.0, (N_ROWS, N_GENES)))
    var = as_t(np.exp(rng.uniform(-3.0, 3.0, N_GENES)))
    weights = as_t(rng.uniform(0.1, 2.0, N_ROWS))
    m1, v1 = mean.clone().requires_grad_(), var.clone().requires_grad_()
    m2, v2 = mean.clone().requires_grad_(), var.clone().requires_grad_()
    got = gaussian_nll_rows(x, m1, v1)
    expected = -gaussian_log_prob(x, m2, v2).sum(1)
    got_grads = torch.autograd.grad((got * weights).sum(), (m1, v1))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (m2, v2))
    rtol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(
        got, expected, rtol=rtol, atol=rtol * float(expected.detach().abs().max())
    )
    for g, e in zip(got_grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=rtol * 10, atol=rtol * 10 * float(e.abs().max()))


def test_gaussian_rows_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, dtype=torch.float64, generator=gen)
    mean = torch.randn(5, 7, dtype=torch.float64, generator=gen).requires_grad_()
    var = torch.rand(7, dtype=torch.float64, generator=gen).add(0.3).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, v: gaussian_nll_rows(x, m, v), (mean, var))


def test_fusable_shapes():
    x = torch.zeros(4, 3)
    assert fusable(x, torch.ones(3), torch.zeros(4, 3))
    assert not fusable(x, torch.ones(1))  # a scalar parameter
    assert not fusable(x, torch.ones(4, 3))  # a parameter per entry
    assert not fusable(x.unsqueeze(1), torch.ones(3))  # the GMVAE's (n, 1, g) target
    assert not fusable(x, torch.ones(3), torch.zeros(4, 2, 3))


# -- the likelihood head: its fused sum is the element-wise loss summed ------------------------


def head_case(likelihood: str, library: bool):
    torch.manual_seed(3)
    head = LikelihoodHead(16, N_GENES, likelihood).double()
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0.0, 0.5)
    h = torch.randn(N_ROWS, 16, dtype=torch.float64)
    lib = torch.rand(N_ROWS, dtype=torch.float64).mul(5e3).add(100.0) if library else None
    if likelihood in ("nb", "zinb"):
        target = torch.poisson(torch.full((N_ROWS, N_GENES), 0.7, dtype=torch.float64))
        if lib is not None:
            lib[0] = 0.0  # an empty cell: its mean is 0 everywhere
            target[0] = 0.0
    else:
        target = torch.randn(N_ROWS, N_GENES, dtype=torch.float64)
    return head, h, lib, target


@pytest.mark.parametrize(
    ("likelihood", "library"), [("nb", True), ("nb", False), ("gaussian", False)]
)
def test_head_row_loss_equals_the_summed_elementwise_loss(likelihood, library):
    head, h, lib, target = head_case(likelihood, library)
    params = head(h, lib)
    fused = head.row_loss(target, params)
    fused_grads = torch.autograd.grad(fused.sum(), list(head.parameters()))
    params = head(h, lib)
    reference = head.loss(target, params).sum(-1)
    reference_grads = torch.autograd.grad(reference.sum(), list(head.parameters()))
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, reference, rtol=1e-9, atol=1e-9)
    for f, r in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(f, r, rtol=1e-8, atol=1e-8)


def test_head_row_loss_keeps_the_reference_for_other_likelihoods():
    head, h, _, _ = head_case("gaussian", False)
    zip_head = LikelihoodHead(16, N_GENES, "zip").double()
    target = torch.poisson(torch.full((N_ROWS, N_GENES), 0.7, dtype=torch.float64))
    params = zip_head(h)
    torch.testing.assert_close(
        zip_head.row_loss(target, params), zip_head.loss(target, params).sum(-1)
    )
    # A (n, K, g) batch of per-component parameters, as the GMVAE scores it, is not fused.
    params = head(h.unsqueeze(1).expand(-1, 2, -1))
    target = torch.randn(N_ROWS, 1, N_GENES, dtype=torch.float64)
    torch.testing.assert_close(head.row_loss(target, params), head.loss(target, params).sum(-1))


def test_mixed_precision_keeps_the_sums_in_float32(rng):
    """Under autocast the products over genes stay float32 (bf16 would round them)."""
    x, log_ratio, theta, _ = nb_case(rng, torch.float32)
    mean = torch.randn(N_ROWS, N_GENES)
    var = torch.rand(N_GENES).add(0.5)
    expected = (nb_nll_rows(x, log_ratio, theta), gaussian_nll_rows(x, mean, var))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = (nb_nll_rows(x, log_ratio, theta), gaussian_nll_rows(x, mean, var))
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, e)


def test_backward_inside_autocast_keeps_float32_gradients(rng):
    """Lightning's mixed precision runs the backward inside autocast: same gradients."""
    x, log_ratio, theta, _ = nb_case(rng, torch.float32)
    pi_logits = torch.randn(N_ROWS, N_GENES)
    mean, var = torch.randn(N_ROWS, N_GENES), torch.rand(N_GENES).add(0.5)
    losses = {
        "nb": lambda a, t, p, m, v: nb_nll_rows(x, a, t),
        "zinb": lambda a, t, p, m, v: zinb_nll_rows(x, a, t, p),
        "gaussian": lambda a, t, p, m, v: gaussian_nll_rows(x, m, v),
    }
    for name, loss in losses.items():
        grads = []
        for autocast in (False, True):
            inputs = [t.clone().requires_grad_() for t in (log_ratio, theta, pi_logits, mean, var)]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss(*inputs).sum().backward()
            grads.append([t.grad for t in inputs])
        for plain, mixed in zip(*grads, strict=True):
            if plain is None:
                assert mixed is None, name
                continue
            assert mixed.dtype == torch.float32, name
            torch.testing.assert_close(mixed, plain, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_digamma_matches_scipy_to_single_precision(rng, dtype):
    # From 1e-8 (an inverse dispersion at its floor) to 1e6 (a far count), and densely over
    # (0, 20] where the shift and the series meet; float32 is what training runs it in.
    z = np.concatenate(
        [
            np.exp(rng.uniform(np.log(1e-8), np.log(1e6), 20_000)),
            rng.uniform(0.0, 20.0, 20_000) + 1e-6,
        ]
    )
    t = torch.tensor(z, dtype=dtype)
    expected = special.digamma(t.double().numpy())  # at the inputs as the dtype holds them
    got = fused_nll.digamma(t).double().numpy()
    resolution = {torch.float32: 2.0**-23, torch.bfloat16: 2.0**-8}[dtype]
    scale = np.maximum(np.abs(expected), 1.0)
    assert np.all(np.abs(got - expected) <= 4 * resolution * scale)


def test_digamma_keeps_torch_in_float64(rng):
    z = torch.tensor(np.exp(rng.uniform(np.log(1e-6), np.log(1e5), 1000)))
    torch.testing.assert_close(fused_nll.digamma(z), torch.digamma(z), rtol=0, atol=0)
