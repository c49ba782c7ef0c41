import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from geneae.errors import InputError
from geneae.evaluate import reconstruction_errors


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.poisson(1.0, size=(60, 25)).astype(float)
    x_hat = x + rng.normal(scale=0.5, size=x.shape)
    return x, x_hat


def test_matches_numpy_and_scipy(pair):
    x, x_hat = pair
    scores, arrays = reconstruction_errors(x, x_hat, return_arrays=True)
    assert scores["mse"] == pytest.approx(np.mean((x - x_hat) ** 2))
    r_gene = [stats.pearsonr(x[:, j], x_hat[:, j])[0] for j in range(x.shape[1])]
    r_cell = [stats.pearsonr(x[i], x_hat[i])[0] for i in range(x.shape[0])]
    np.testing.assert_allclose(arrays["pearson_gene"], r_gene, rtol=1e-10)
    np.testing.assert_allclose(arrays["pearson_cell"], r_cell, rtol=1e-10)
    assert scores["pearson_gene"] == pytest.approx(np.mean(r_gene))
    assert scores["pearson_cell"] == pytest.approx(np.mean(r_cell))
    np.testing.assert_allclose(arrays["mse_gene"], ((x - x_hat) ** 2).mean(axis=0))
    np.testing.assert_allclose(arrays["mse_cell"], ((x - x_hat) ** 2).mean(axis=1))
    assert all(isinstance(v, float) for v in scores.values())


def test_masked_mse_ignores_zero_entries():
    x = np.array([[0.0, 2.0], [3.0, 0.0]])
    x_hat = np.array([[100.0, 1.0], [1.0, -50.0]])  # huge errors only where x == 0
    scores = reconstruction_errors(x, x_hat)
    assert scores["masked_mse"] == pytest.approx((1.0 + 4.0) / 2)
    assert scores["mse"] == pytest.approx((100.0**2 + 1 + 4 + 50.0**2) / 4)


def test_sparse_input_and_chunking_agree(pair, monkeypatch):
    x, x_hat = pair
    dense_scores = reconstruction_errors(x, x_hat)
    monkeypatch.setattr("geneae.evaluate.reconstruction.CACHE_ROWS", 7)  # several uneven chunks
    sparse_scores = reconstruction_errors(sp.csr_matrix(x), x_hat)
    for key, value in dense_scores.items():
        assert sparse_scores[key] == pytest.approx(value, rel=1e-12)


def test_constant_genes_nan_or_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    x[:, 0] = 5.0  # constant observed gene: no correlation defined -> NaN, left out
    x_hat = x + rng.normal(scale=0.1, size=x.shape)
    x_hat[:, 1] = 0.3  # varying gene reconstructed as a constant -> r = 0
    _, arrays = reconstruction_errors(x, x_hat, return_arrays=True)
    assert np.isnan(arrays["pearson_gene"][0])
    assert arrays["pearson_gene"][1] == 0.0
    assert arrays["pearson_gene"][2] > 0.9


def test_input_not_modified(pair):
    x, x_hat = pair
    x0, h0 = x.copy(), x_hat.copy()
    reconstruction_errors(x, x_hat)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(x_hat, h0)


def test_shape_mismatch_is_input_error(pair):
    x, x_hat = pair
    with pytest.raises(InputError, match="same space"):
        reconstruction_errors(x, x_hat[:, :-1])


def test_several_reconstructions_in_one_pass_equal_each_alone(pair, monkeypatch):
    """Scoring the autoencoder's and PCA's reconstructions together changes nothing."""
    from geneae.evaluate.reconstruction import reconstruction_errors_of

    x, x_hat = pair
    rng = np.random.default_rng(2)
    other = x + rng.normal(scale=2.0, size=x.shape)
    other[:, 3] = 1.5  # a gene reconstructed as a constant
    monkeypatch.setattr("geneae.evaluate.reconstruction.CACHE_ROWS", 11)
    together = reconstruction_errors_of(sp.csr_matrix(x), [x_hat, sp.csr_matrix(other)])
    for (scores, arrays), alone in zip(together, (x_hat, other), strict=True):
        expected_scores, expected_arrays = reconstruction_errors(x, alone, return_arrays=True)
        assert scores == pytest.approx(expected_scores, rel=1e-12)
        for key, values in expected_arrays.items():
            np.testing.assert_allclose(arrays[key], values, rtol=1e-12)
    assert together[1][1]["pearson_gene"][3] == 0.0
