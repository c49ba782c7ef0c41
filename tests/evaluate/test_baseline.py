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


def test_cells_without_a_label_are_clustered_but_not_scored():
    """Missing labels (None, NaN, blank) are left out of the label metrics only: the
    scores equal sklearn's on the labelled cells with the clusters made among all cells."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from geneae.evaluate import knn_accuracy

    x, groups, scores = low_rank(n=240)
    labels = np.array([f"type{g}" for g in groups], dtype=object)
    missing = np.random.default_rng(2).choice(240, size=40, replace=False)
    labels[missing[:20]] = None
    labels[missing[20:30]] = np.nan
    labels[missing[30:]] = "  "
    latent = scores + np.random.default_rng(3).normal(scale=2.0, size=scores.shape)
    result = compare_with_pca(x, latent, x, labels, seed=0, stability_repeats=0)
    metrics, clusters = result.metrics, result.clusters["geneae"]
    labelled = np.ones(240, bool)
    labelled[missing] = False
    assert metrics["n_cells"] == 240 and metrics["n_labelled"] == 200
    assert len(clusters) == 240  # every cell is clustered
    assert metrics["clustering"]["n_clusters"] == 3  # the classes of the labelled cells
    truth = labels[labelled].astype(str)
    side = metrics["geneae"]
    assert side["ari"] == pytest.approx(adjusted_rand_score(truth, clusters[labelled]))
    assert side["nmi"] == pytest.approx(normalized_mutual_info_score(truth, clusters[labelled]))
    assert side["knn_accuracy"] == pytest.approx(knn_accuracy(latent[labelled], truth))
    assert side["n_clusters"] == len(np.unique(clusters))


def test_labels_all_missing_score_as_without_labels():
    x, _, scores = low_rank()
    result = compare_with_pca(x, scores, x, [None] * 200, seed=0, stability_repeats=0)
    assert result.metrics["supervised"] is False and result.metrics["n_labelled"] == 0
    assert "ari" not in result.metrics["geneae"]
