import numpy as np
import pytest

from geneae.errors import InputError
from geneae.evaluate import kl_per_dimension, latent_usage


def test_kl_hand_values():
    # KL(N(m, v) || N(0, 1)) = 0.5 (m^2 + v - 1 - log v)
    mean = np.array([[0.0, 1.0], [0.0, 3.0]])
    var = np.array([[1.0, 1.0], [np.e, 1.0]])
    kl = kl_per_dimension(mean, var)
    expected_dim0 = (0.0 + 0.5 * (np.e - 1 - 1)) / 2
    expected_dim1 = (0.5 * 1.0 + 0.5 * 9.0) / 2
    np.testing.assert_allclose(kl, [expected_dim0, expected_dim1])


def test_kl_monte_carlo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 2))
    var = rng.uniform(0.2, 2.0, size=(3, 2))
    n = 400_000
    eps = rng.standard_normal((n, 3, 2))
    z = mean + np.sqrt(var) * eps
    log_q = -0.5 * (np.log(2 * np.pi * var) + eps**2)
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    mc = (log_q - log_p).mean(axis=0).mean(axis=0)
    np.testing.assert_allclose(kl_per_dimension(mean, var), mc, atol=0.01)


def test_kl_rejects_log_variance_and_survives_underflow():
    with pytest.raises(InputError, match="exp"):
        kl_per_dimension(np.zeros((2, 2)), -np.ones((2, 2)))
    kl = kl_per_dimension(np.zeros((1, 1)), np.exp(np.float32([[-200.0]])))  # underflows to 0
    assert np.isfinite(kl).all() and kl[0] > 50


def test_latent_usage_shows_collapse():
    rng = np.random.default_rng(0)
    n = 500
    mean = np.column_stack([rng.normal(size=n), np.zeros(n), rng.normal(scale=2, size=n)])
    var = np.column_stack([np.full(n, 0.1), np.ones(n), np.full(n, 0.05)])
    usage = latent_usage(mean, var)
    assert usage["criterion"] == "kl"
    assert usage["n_dims"] == 3
    assert usage["n_active"] == 2
    assert usage["active"] == [True, False, True]
    assert usage["kl"][1] == pytest.approx(0.0)
    np.testing.assert_allclose(usage["variance"], mean.var(axis=0))


def test_latent_usage_without_variances():
    z = np.column_stack([np.linspace(-1, 1, 50), np.full(50, 0.2)])
    usage = latent_usage(z)
    assert usage["kl"] is None
    assert usage["criterion"] == "variance"
    assert usage["n_active"] == 1
    import json

    json.dumps(usage)  # JSON-ready
