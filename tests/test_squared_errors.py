"""geneae.squared_errors: the squared-error losses against scikit-learn, their reductions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_squared_error

from geneae.squared_errors import masked_mse, mse


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def t64(a: np.ndarray | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def sparse_pair(rng: np.random.Generator, n: int = 50, g: int = 30):
    x = rng.poisson(0.7, (n, g)).astype(np.float64) * rng.normal(1, 0.2, (n, g))
    x_hat = x + rng.normal(0, 1, (n, g))
    return x, x_hat


def test_masked_mse_mean_is_mse_on_nonzero_entries(rng):
    x, x_hat = sparse_pair(rng)
    nz = x != 0
    assert 0 < nz.mean() < 1
    expected = mean_squared_error(x[nz], x_hat[nz])
    assert masked_mse(t64(x), t64(x_hat), "mean").item() == pytest.approx(expected, rel=1e-12)


def test_masked_mse_reductions(rng):
    x, x_hat = sparse_pair(rng)
    nz = x != 0
    per_element = np.where(nz, (x_hat - x) ** 2, 0.0)
    np.testing.assert_allclose(masked_mse(t64(x), t64(x_hat)).numpy(), per_element)
    np.testing.assert_allclose(
        masked_mse(t64(x), t64(x_hat), "sum_per_sample").numpy(), per_element.sum(axis=1)
    )
    assert masked_mse(t64(x), t64(x_hat), "sum_per_sample").shape == (x.shape[0],)


def test_masked_mse_ignores_reconstruction_at_zeros(rng):
    x, x_hat = sparse_pair(rng)
    zero = x == 0
    changed = x_hat.copy()
    changed[zero] = rng.normal(0, 1e6, int(zero.sum()))
    for reduction in ("none", "mean", "sum_per_sample"):
        torch.testing.assert_close(
            masked_mse(t64(x), t64(x_hat), reduction), masked_mse(t64(x), t64(changed), reduction)
        )


def test_masked_mse_gradient_is_exactly_zero_at_zeros(rng):
    x, x_hat = sparse_pair(rng)
    x_hat[x == 0] = np.inf  # even a non-finite reconstruction there must not leak
    x_hat_t = t64(x_hat).requires_grad_()
    (grad,) = torch.autograd.grad(masked_mse(t64(x), x_hat_t, "mean"), [x_hat_t])
    assert (grad[t64(x) == 0] == 0).all()
    assert torch.isfinite(grad).all()
    assert (grad[t64(x) != 0] != 0).any()


def test_masked_mse_all_zero_batch_is_zero_not_nan():
    x = torch.zeros(3, 4)
    assert masked_mse(x, torch.ones(3, 4), "mean").item() == 0.0


def test_masked_mse_broadcasts_reconstruction():
    x = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    out = masked_mse(x, torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))


def test_mse_reductions(rng):
    x, x_hat = sparse_pair(rng)
    assert mse(t64(x), t64(x_hat), "mean").item() == pytest.approx(
        mean_squared_error(x, x_hat), rel=1e-12
    )
    np.testing.assert_allclose(
        mse(t64(x), t64(x_hat), "sum_per_sample").numpy(), ((x_hat - x) ** 2).sum(axis=1)
    )


def test_unknown_reduction_is_rejected():
    with pytest.raises(ValueError, match="reduction"):
        masked_mse(torch.ones(2), torch.ones(2), "sum")  # type: ignore[arg-type]
