"""geneae.distributions against scipy.stats and closed forms, plus float32 robustness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from geneae.distributions import (
    _softplus,
    bernoulli_log_prob,
    gaussian_log_prob,
    nb_log_prob,
    poisson_log_prob,
    zinb_log_prob,
    zip_log_prob,
)

RTOL = 1e-6
N = 2000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def t64(a: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def log_uniform(rng: np.random.Generator, low: float, high: float, size: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def counts_near(rng: np.random.Generator, mu: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Counts from the NB itself (plus zeros and far tails) so each regime is exercised."""
    x = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float64)
    x[rng.random(x.size) < 0.2] = 0.0
    far = rng.random(x.size) < 0.1
    x[far] = np.floor(log_uniform(rng, 1.0, 1e5, int(far.sum())))
    return x


def assert_rel(actual: torch.Tensor, expected: np.ndarray, rtol: float = RTOL) -> None:
    assert actual.dtype == torch.float64
    np.testing.assert_allclose(actual.numpy(), expected, rtol=rtol, atol=0.0)


# -- float64 accuracy against references ---------------------------------------------------


def test_gaussian_matches_scipy(rng):
    x = rng.normal(0, 100, N)
    mean = rng.normal(0, 100, N)
    var = log_uniform(rng, 1e-6, 1e6, N)
    expected = stats.norm.logpdf(x, loc=mean, scale=np.sqrt(var))
    assert_rel(gaussian_log_prob(t64(x), t64(mean), t64(var)), expected)


def test_bernoulli_matches_scipy_on_binary_targets(rng):
    x = rng.integers(0, 2, N).astype(np.float64)
    logits = rng.uniform(-30, 30, N)
    p = special.expit(logits)
    expected = stats.bernoulli.logpmf(x, p)
    # scipy works from p, which rounds to 1.0 for large logits; compare where p is exact.
    ok = np.isfinite(expected) & (p < 1 - 1e-9)
    assert_rel(bernoulli_log_prob(t64(x), t64(logits))[ok], expected[ok])


def test_bernoulli_is_negative_bce_for_continuous_targets(rng):
    x = rng.uniform(0, 1, N)
    logits = rng.uniform(-50, 50, N)
    # closed form: x log(sigmoid l) + (1 - x) log(1 - sigmoid l)
    expected = x * -np.logaddexp(0, -logits) + (1 - x) * -np.logaddexp(0, logits)
    actual = bernoulli_log_prob(t64(x), t64(logits))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=RTOL, atol=1e-12)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        t64(logits), t64(x), reduction="none"
    )
    # torch's own BCE is the same function, computed less carefully in float64.
    np.testing.assert_allclose(actual.numpy(), -bce.numpy(), rtol=1e-8, atol=1e-12)


def test_poisson_matches_scipy(rng):
    rate = log_uniform(rng, 1e-8, 1e5, N)
    x = rng.poisson(rate).astype(np.float64)
    x[::7] = np.floor(log_uniform(rng, 1.0, 1e5, x[::7].size))
    x[::11] = 0.0
    expected = stats.poisson.logpmf(x, rate)
    assert_rel(poisson_log_prob(t64(x), t64(rate)), expected)


def test_nb_matches_scipy(rng):
    mu = log_uniform(rng, 1e-8, 1e5, N)
    theta = log_uniform(rng, 1e-4, 1e4, N)
    x = counts_near(rng, mu, theta)
    # scipy parameterises by p = theta / (theta + mu), which loses the small side of the
    # ratio once mu / theta < ~1e-6; keep to where the reference itself is accurate (the
    # extreme ratios are checked against the closed form below).
    ok = mu / theta > 1e-6
    expected = stats.nbinom.logpmf(x[ok], theta[ok], theta[ok] / (theta[ok] + mu[ok]))
    assert_rel(nb_log_prob(t64(x[ok]), t64(mu[ok]), t64(theta[ok])), expected)


def test_nb_zero_matches_closed_form_at_extreme_ratios(rng):
    # log f(0) = -theta * log1p(mu / theta): no reference cancellation at any ratio.
    mu = log_uniform(rng, 1e-8, 1e5, N)
    theta = log_uniform(rng, 1e-4, 1e4, N)
    expected = -theta * np.log1p(mu / theta)
    assert_rel(nb_log_prob(t64(np.zeros(N)), t64(mu), t64(theta)), expected)


def test_nb_tends_to_poisson_for_large_theta():
    # NB - Poisson ~ (x - mu)^2 / (2 theta) ~ 1e-6 here; lgamma(x + theta) - lgamma(theta)
    # costs ~theta * log(theta) * 1e-16 ~ 2e-7 absolute in float64 at theta = 1e8.
    x = t64(np.arange(0.0, 30.0))
    nb = nb_log_prob(x, t64(7.5), t64(1e8))
    np.testing.assert_allclose(nb.numpy(), stats.poisson.logpmf(x.numpy(), 7.5), rtol=1e-5)


def zero_inflated_reference(
    x: np.ndarray, log_f: np.ndarray, log_f0: np.ndarray, pi_logits: np.ndarray
) -> np.ndarray:
    """log(pi + (1 - pi) f(0)) at zero, log(1 - pi) + log f(x) elsewhere, by hand."""
    pi = special.expit(pi_logits)
    at_zero = np.log(pi + (1 - pi) * np.exp(log_f0))
    elsewhere = np.log1p(-pi) + log_f
    return np.where(x == 0, at_zero, elsewhere)


# The naive reference above cancels to an absolute error of ~1e-16 where log p(0) ~ 0 (a
# zero that is almost certain); allow that much absolute error, and check the relative
# accuracy there separately against log1p((1 - pi) * expm1(log f0)).
ZI_ATOL = 1e-15


def test_zip_matches_hand_computed_mixture(rng):
    rate = log_uniform(rng, 1e-8, 1e5, N)
    x = rng.poisson(rate).astype(np.float64)
    x[::5] = 0.0
    pi_logits = rng.uniform(-10, 10, N)
    expected = zero_inflated_reference(x, stats.poisson.logpmf(x, rate), -rate, pi_logits)
    actual = zip_log_prob(t64(x), t64(rate), t64(pi_logits))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=RTOL, atol=ZI_ATOL)


def test_zinb_matches_hand_computed_mixture(rng):
    mu = log_uniform(rng, 1e-6, 1e5, N)
    theta = log_uniform(rng, 1e-4, 1e4, N)
    ok = mu / theta > 1e-6  # where scipy's nbinom is accurate (see test_nb_matches_scipy)
    mu, theta = mu[ok], theta[ok]
    x = counts_near(rng, mu, theta)
    x[::5] = 0.0
    pi_logits = rng.uniform(-10, 10, x.size)
    p = theta / (theta + mu)
    expected = zero_inflated_reference(
        x, stats.nbinom.logpmf(x, theta, p), stats.nbinom.logpmf(0, theta, p), pi_logits
    )
    actual = zinb_log_prob(t64(x), t64(mu), t64(theta), t64(pi_logits))
    np.testing.assert_allclose(actual.numpy(), expected, rtol=RTOL, atol=ZI_ATOL)


def test_zero_inflated_zeros_keep_relative_precision(rng):
    # log p(0) = log1p((1 - pi) * expm1(log f0)): exact where the zero is almost certain.
    rate = log_uniform(rng, 1e-12, 1e-2, N)
    pi_logits = rng.uniform(-30, 30, N)
    expected = np.log1p(special.expit(-pi_logits) * np.expm1(-rate))
    assert_rel(zip_log_prob(t64(np.zeros(N)), t64(rate), t64(pi_logits)), expected)
    theta = log_uniform(rng, 1e-4, 1e4, N)
    log_f0 = -theta * np.log1p(rate / theta)
    expected = np.log1p(special.expit(-pi_logits) * np.expm1(log_f0))
    actual = zinb_log_prob(t64(np.zeros(N)), t64(rate), t64(theta), t64(pi_logits))
    assert_rel(actual, expected)


def test_zero_inflation_limits():
    x = t64([0.0, 0.0, 3.0])
    mu, theta = t64(2.0), t64(5.0)
    # pi -> 0: the plain NB; pi -> 1: all mass at zero.
    np.testing.assert_allclose(
        zinb_log_prob(x, mu, theta, t64(-50.0)).numpy(),
        nb_log_prob(x, mu, theta).numpy(),
        rtol=1e-12,
    )
    assert zinb_log_prob(t64(0.0), mu, theta, t64(50.0)).item() == pytest.approx(0.0, abs=1e-12)
    assert zip_log_prob(t64(0.0), t64(2.0), t64(50.0)).item() == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    x=st.integers(0, 100_000),
    log_mu=st.floats(np.log(1e-8), np.log(1e5)),
    log_theta=st.floats(np.log(1e-4), np.log(1e4)),
)
def test_nb_matches_scipy_property(x, log_mu, log_theta):
    mu, theta = np.exp(log_mu), np.exp(log_theta)
    if mu / theta <= 1e-6:
        expected = special.gammaln(x + theta) - special.gammaln(theta) - special.gammaln(x + 1)
        expected += -theta * np.log1p(mu / theta) + x * (np.log(mu) - np.log(theta + mu))
    else:
        expected = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    actual = nb_log_prob(t64(float(x)), t64(mu), t64(theta)).item()
    assert actual == pytest.approx(expected, rel=RTOL, abs=1e-12)


# -- float32 robustness ------------------------------------------------------------------


def extreme_grid() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every combination of extreme and ordinary values, in float32."""
    xs = torch.tensor([0.0, 1.0, 2.0, 17.0, 1e3, 1e4, 1e5])
    mus = torch.tensor([1e-8, 1e-4, 0.1, 1.0, 50.0, 1e3, 1e5])
    thetas = torch.tensor([1e-4, 1e-2, 1.0, 30.0, 1e3, 1e4])
    logits = torch.tensor([-30.0, -3.0, 0.0, 3.0, 30.0])
    grids = torch.meshgrid(xs, mus, thetas, logits, indexing="ij")
    return tuple(g.reshape(-1).clone() for g in grids)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("fn", "n_params"),
    [(poisson_log_prob, 1), (nb_log_prob, 2), (zip_log_prob, 2), (zinb_log_prob, 3)],
)
def test_count_likelihoods_finite_in_float32(fn, n_params):
    x, mu, theta, logits = extreme_grid()
    params = {1: [mu], 2: [mu, theta], 3: [mu, theta, logits]}[n_params]
    if fn is zip_log_prob:
        params = [mu, logits]
    params = [p.requires_grad_() for p in params]
    out = fn(x, *params)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert (out <= 1e-4).all()  # log-probabilities of counts
    grads = torch.autograd.grad(out.sum(), params)
    for g in grads:
        assert torch.isfinite(g).all()


def test_count_likelihoods_survive_underflowed_parameters():
    # A softmax decoder can return an exact 0 in float32: still finite, value and gradient.
    x = torch.tensor([0.0, 5.0])
    mu = torch.zeros(2, requires_grad=True)
    theta = torch.tensor([1.0, 1.0], requires_grad=True)
    for out in (
        poisson_log_prob(x, mu),
        nb_log_prob(x, mu, theta),
        zinb_log_prob(x, mu, theta, torch.zeros(2)),
    ):
        assert torch.isfinite(out).all()
        grads = torch.autograd.grad(out.sum(), [mu, theta], allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_float32_agrees_with_float64_on_ordinary_values(rng):
    mu = log_uniform(rng, 1e-2, 1e3, 500)
    theta = log_uniform(rng, 0.1, 100, 500)
    x = counts_near(rng, mu, theta)
    x = np.minimum(x, 1e3)
    lo = nb_log_prob(*(torch.tensor(a, dtype=torch.float32) for a in (x, mu, theta)))
    hi = nb_log_prob(t64(x), t64(mu), t64(theta))
    np.testing.assert_allclose(lo.double().numpy(), hi.numpy(), rtol=1e-3, atol=1e-3)


def test_continuous_likelihoods_finite_in_float32():
    logits = torch.tensor([-1e4, -88.0, 0.0, 88.0, 1e4], requires_grad=True)
    for x in (torch.zeros(5), torch.ones(5), torch.full((5,), 0.3)):
        out = bernoulli_log_prob(x, logits)
        assert torch.isfinite(out).all() and (out <= 0).all()
        (g,) = torch.autograd.grad(out.sum(), [logits])
        assert torch.isfinite(g).all()
    var = torch.tensor([1e-6, 1.0, 1e6], requires_grad=True)
    out = gaussian_log_prob(torch.tensor([1e3, 0.0, -1e3]), torch.zeros(3), var)
    assert torch.isfinite(out).all()


# -- broadcasting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, p, q: gaussian_log_prob(x, p, q),
        lambda x, p, q: bernoulli_log_prob(x.clamp(max=1), p),
        lambda x, p, q: poisson_log_prob(x, q),
        lambda x, p, q: nb_log_prob(x, q, q + 1),
        lambda x, p, q: zip_log_prob(x, q, p),
        lambda x, p, q: zinb_log_prob(x, q, q + 1, p),
    ],
)
def test_per_gene_parameters_broadcast(fn):
    gen = torch.Generator().manual_seed(0)
    n, g = 6, 4
    x = torch.poisson(torch.full((n, g), 2.0), generator=gen).double()
    p = torch.randn(g, generator=gen, dtype=torch.float64)  # per-gene, shape (g,)
    q = torch.rand(g, generator=gen, dtype=torch.float64) + 0.5
    out = fn(x, p, q)
    assert out.shape == (n, g)
    full = fn(x, p.expand(n, g), q.expand(n, g))
    torch.testing.assert_close(out, full)
    # and parameters of shape (n, 1) against a single gene row
    assert fn(x[:1], p[:1].expand(n, 1), q[:1].expand(n, 1)).shape == (n, g)


def test_gradients_match_finite_differences():
    gen = torch.Generator().manual_seed(3)
    x = torch.tensor([0.0, 0.0, 1.0, 4.0, 30.0], dtype=torch.float64)
    mu = (torch.rand(5, generator=gen, dtype=torch.float64) * 10 + 0.01).requires_grad_()
    theta = (torch.rand(5, generator=gen, dtype=torch.float64) * 5 + 0.1).requires_grad_()
    logits = torch.tensor([-3.0, 2.0, 0.0, 1.0, -1.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, t: nb_log_prob(x, m, t), (mu, theta))
    assert torch.autograd.gradcheck(lambda m, t, p: zinb_log_prob(x, m, t, p), (mu, theta, logits))
    assert torch.autograd.gradcheck(lambda m, p: zip_log_prob(x, m, p), (mu, logits))
    assert torch.autograd.gradcheck(lambda p: bernoulli_log_prob(x.clamp(max=1), p), (logits,))


def test_nb_sparse_coefficient_path_matches_dense_formula():
    """Large, mostly-zero inputs take the non-zero-only lgamma path; it must be exact."""
    gen = torch.Generator().manual_seed(7)
    x = torch.poisson(torch.rand(64, 300, generator=gen) * 0.3).double()
    assert x.numel() >= 4096 and (x == 0).float().mean() > 0.5
    mu = (torch.rand(64, 300, generator=gen) * 3 + 0.01).double().requires_grad_()
    theta = (torch.rand(300, generator=gen) * 5 + 0.1).double().requires_grad_()
    fast = nb_log_prob(x, mu, theta)
    dense = (
        torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
        + theta * torch.log(theta / (theta + mu))
        + x * torch.log(mu / (theta + mu))
    )
    torch.testing.assert_close(fast, dense, rtol=1e-10, atol=1e-10)
    g_fast = torch.autograd.grad(fast.sum(), (mu, theta))
    g_dense = torch.autograd.grad(dense.sum(), (mu, theta))
    for a, b in zip(g_fast, g_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("shape", [(40, 25), (40, 1, 25)])
@pytest.mark.parametrize("name", ["poisson", "nb", "zip", "zinb"])
def test_given_nonzero_positions_match_the_dense_evaluation(name, shape):
    """The batch's stored-entry positions (a superset of the non-zeros) change nothing."""
    gen = torch.Generator().manual_seed(11)
    x = torch.poisson(torch.rand(shape, generator=gen) * 0.8).double()
    x[0] = 0.0  # an empty row
    flat = x.reshape(-1)
    stored = torch.nonzero((flat != 0) | (torch.rand(flat.shape, generator=gen) < 0.1))[:, 0]
    k = 3 if len(shape) == 3 else 1
    params_shape = (shape[0], k, shape[-1]) if len(shape) == 3 else shape
    mu = (torch.rand(params_shape, generator=gen) * 4 + 0.01).double().requires_grad_()
    theta = (torch.rand(shape[-1], generator=gen) * 5 + 0.1).double().requires_grad_()
    logits = torch.randn(params_shape, generator=gen).double().requires_grad_()
    fn = {
        "poisson": lambda **kw: poisson_log_prob(x, mu, **kw),
        "nb": lambda **kw: nb_log_prob(x, mu, theta, **kw),
        "zip": lambda **kw: zip_log_prob(x, mu, logits, **kw),
        "zinb": lambda **kw: zinb_log_prob(x, mu, theta, logits, **kw),
    }[name]
    fast, dense = fn(nonzero=stored), fn()
    torch.testing.assert_close(fast, dense, rtol=1e-12, atol=1e-12)
    inputs = (mu, theta, logits)
    g_fast = torch.autograd.grad(fast.sum(), inputs, allow_unused=True)
    g_dense = torch.autograd.grad(dense.sum(), inputs, allow_unused=True)
    for a, b in zip(g_fast, g_dense, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_nb_nonzero_positions_with_a_scalar_theta():
    gen = torch.Generator().manual_seed(12)
    x = torch.poisson(torch.rand(30, 20, generator=gen) * 2).double()
    stored = torch.nonzero(x.reshape(-1))[:, 0]
    mu = (torch.rand(30, 20, generator=gen) * 4 + 0.01).double()
    theta = torch.tensor(2.5, dtype=torch.float64)
    torch.testing.assert_close(
        nb_log_prob(x, mu, theta, nonzero=stored), nb_log_prob(x, mu, theta), rtol=1e-12, atol=0
    )


def test_float32_softplus_and_its_gradient_match_float64(rng):
    # float32 takes torch's thresholded softplus for speed; it must stay within float32's
    # resolution of the exact value across the range, the threshold (t = 20) included.
    t = np.concatenate([rng.uniform(-100, 100, 2000), [-20.0, 19.999, 20.0, 20.001, 80.0]])
    t32 = torch.tensor(t, dtype=torch.float32, requires_grad=True)
    _softplus(t32).sum().backward()
    exact = np.logaddexp(0.0, t32.detach().double().numpy())
    tiny = float(np.finfo(np.float32).tiny)  # below it float32 is subnormal: absolute only
    np.testing.assert_allclose(
        _softplus(t32).detach().double().numpy(), exact, rtol=3e-7, atol=tiny
    )
    np.testing.assert_allclose(t32.grad.double().numpy(), special.expit(t), rtol=3e-7, atol=1e-9)
    # float64 keeps the term the threshold drops: log1p(exp(-30)) ~ 9.4e-14 survives.
    assert _softplus(torch.tensor(30.0, dtype=torch.float64)).item() - 30.0 == pytest.approx(
        np.log1p(np.exp(-30.0)), rel=1e-6
    )
