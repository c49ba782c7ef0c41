import json

import numpy as np
import pytest
import scipy.sparse as sp

from geneae.evaluate import METRIC_DIRECTIONS, compare_with_pca, pca_embedding


def low_rank(n=200, g=40, rank=3, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 3, size=n)
    centres = rng.normal(scale=4, size=(3, rank))
    scores = centres[groups] + rng.normal(scale=0.3, size=(n, rank))
    x = scores @ rng.normal(size=(rank, g)) + 0.01 * rng.normal(size=(n, g))
    return x, groups, scores


def test_pca_embedding_reconstructs_low_rank():
    x, _, _ = low_rank()
    scores, components, x_hat = pca_embedding(x, 3)
    assert scores.shape == (200, 3) and components.shape == (3, 40)
    assert np.mean((x - x_hat) ** 2) < 1e-3
    np.testing.assert_allclose(components @ components.T, np.eye(3), atol=1e-8)


def test_pca_embedding_sparse_matches_dense():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.3, size=(80, 20)).astype(float)
    s_dense, _, h_dense = pca_embedding(x, 4)
    s_sparse, _, h_sparse = pca_embedding(sp.csr_matrix(x), 4)
    np.testing.assert_allclose(np.abs(s_sparse), np.abs(s_dense), atol=1e-8)
    np.testing.assert_allclose(h_sparse, h_dense, atol=1e-8)


def test_compare_with_pca_same_keys_and_good_pca():
    x, groups, _ = low_rank()
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(200, 3))  # a useless "autoencoder"
    x_hat = np.full_like(x, x.mean())
    labels = np.array(["T", "B", "NK"])[groups]
    result = compare_with_pca(x, latent, x_hat, labels)
    comparison = result.metrics
    assert comparison["n_components"] == 3
    assert comparison["supervised"] is True
    assert set(comparison["geneae"]) == set(comparison["pca"])
    assert set(METRIC_DIRECTIONS) <= set(comparison["pca"])
    pca = comparison["pca"]
    assert pca["mse"] < 1e-3
    assert pca["ari"] > 0.95 and pca["knn_accuracy"] > 0.95
    assert comparison["geneae"]["ari"] < 0.2
    assert result.pca_embedding.shape == (200, 3) and result.pca_reconstruction.shape == x.shape
    assert len(result.clusters["geneae"]) == 200
    json.dumps(comparison)  # the run writes it to metrics.json


def test_compare_without_labels_uses_leiden_count():
    x, _, scores = low_rank(seed=2)
    comparison = compare_with_pca(x, scores, x).metrics
    assert comparison["supervised"] is False
    assert "ari" not in comparison["geneae"] and "knn_accuracy" not in comparison["pca"]
    assert set(comparison["geneae"]) == set(comparison["pca"])
    assert comparison["clustering"]["n_clusters_from"] == "leiden on geneae latent"
    assert comparison["geneae"]["mse"] == 0.0


def test_compare_gmvae_pca_side_uses_kmeans():
    x, groups, scores = low_rank(seed=3)
    comparison = compare_with_pca(
        x, scores, x, groups, cluster_method="gmvae", clusters=groups
    ).metrics
    assert comparison["clustering"]["pca"] == "kmeans"
    assert comparison["geneae"]["ari"] == pytest.approx(1.0)
