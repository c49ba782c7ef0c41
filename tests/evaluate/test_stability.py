"""Cluster stability: co-clustering over repeated clusterings, against references."""

import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from geneae.config import EvaluateConfig
from geneae.errors import InputError
from geneae.evaluate import (
    Repeat,
    cluster,
    cluster_stability,
    co_clustering,
    compare_with_pca,
    leiden,
    leiden_resolution,
    nearest_neighbours,
    repeat_clustering,
)
from geneae.evaluate import stability as stability_module


def brute_force(written, repeats):
    """Per cell, per cluster pair: co-clustered / co-drawn counts, pair by pair."""
    written = np.asarray(written)
    n = len(written)
    classes = np.unique(written)
    k = len(classes)
    where = {c: i for i, c in enumerate(classes)}
    together = np.zeros((k, k))
    drawn = np.zeros((k, k))
    cell_t, cell_d = np.zeros(n), np.zeros(n)
    for rep in repeats:
        label = dict(zip(rep.rows.tolist(), rep.codes.tolist(), strict=True))
        for i, j in itertools.permutations(range(n), 2):
            if i not in label or j not in label:
                continue
            a, b = where[written[i]], where[written[j]]
            same = label[i] == label[j]
            drawn[a, b] += 1
            together[a, b] += same
            if a == b:
                cell_d[i] += 1
                cell_t[i] += same
    with np.errstate(invalid="ignore"):
        return together / drawn, cell_t / cell_d


def test_hand_computed_toy_case():
    # Cells 0, 1 in cluster "a"; 2, 3 in "b". Repeat 1 draws all and agrees; repeat 2 leaves
    # out cell 3 and puts cells 1 and 2 together.
    written = np.array(["a", "a", "b", "b"])
    repeats = [
        Repeat(np.array([0, 1, 2, 3]), np.array([5, 5, 7, 7])),
        Repeat(np.array([0, 1, 2]), np.array([0, 1, 1])),
    ]
    found = co_clustering(written, repeats)
    # a-a: pair (0,1) drawn twice, together once -> 1/2. b-b: pair (2,3) drawn once,
    # together once -> 1. a-b: pairs drawn (0,2),(0,3),(1,2),(1,3) in repeat 1, (0,2),(1,2)
    # in repeat 2 -> 6 draws, together only (1,2) in repeat 2 -> 1/6.
    np.testing.assert_allclose(found.co_clustering, [[1 / 2, 1 / 6], [1 / 6, 1.0]])
    np.testing.assert_allclose(found.per_cluster, [1 / 2, 1.0])
    # Cell 0: with 1 twice, together once; cell 2: with 3 once (together); cell 3 likewise.
    np.testing.assert_allclose(found.per_cell, [1 / 2, 1 / 2, 1.0, 1.0])
    np.testing.assert_array_equal(found.clusters, ["a", "b"])
    np.testing.assert_array_equal(found.sizes, [2, 2])
    np.testing.assert_array_equal(found.n_found, [2, 2])
    assert found.ari[0] == pytest.approx(1.0)
    assert found.ari[1] == pytest.approx(adjusted_rand_score([0, 0, 1], [0, 1, 1]))
    assert found.mean == pytest.approx(0.75)


def test_matches_brute_force_on_random_repeats():
    rng = np.random.default_rng(4)
    n = 15
    written = rng.integers(0, 4, size=n)
    repeats = []
    for _ in range(6):
        rows = np.sort(rng.choice(n, size=rng.integers(5, n + 1), replace=False))
        repeats.append(Repeat(rows, rng.integers(0, 3, size=len(rows)) * 10))
    found = co_clustering(written, repeats)
    matrix, per_cell = brute_force(written, repeats)
    np.testing.assert_allclose(found.co_clustering, matrix)
    np.testing.assert_allclose(found.per_cell, per_cell)
    np.testing.assert_allclose(found.per_cluster, np.diag(matrix))
    np.testing.assert_allclose(found.co_clustering, found.co_clustering.T)


def test_singleton_cluster_and_undrawn_pairs_are_nan():
    written = np.array([0, 0, 1])
    found = co_clustering(written, [Repeat(np.array([0, 1]), np.array([0, 0]))])
    assert np.isnan(found.per_cell[2])  # alone in its cluster
    assert np.isnan(found.per_cluster[1]) and np.isnan(found.co_clustering[0, 1])
    assert found.per_cluster[0] == 1.0 and found.mean == 1.0


@pytest.mark.parametrize("method", ["kmeans", "leiden"])
def test_well_separated_blobs_are_stable(blobs, method):
    z, labels = blobs
    written = cluster(z, method=method, n_clusters=4, seed=0)
    found, seconds = cluster_stability(z, written, method=method, n_clusters=4, seed=0)
    assert seconds >= 0
    assert found.mean == pytest.approx(1.0)
    np.testing.assert_allclose(found.per_cluster, 1.0)
    np.testing.assert_allclose(found.co_clustering, np.eye(4))
    np.testing.assert_allclose(found.ari, 1.0)
    assert len(found.ari) == stability_module.REPEATS


def test_a_blob_split_arbitrarily_is_unstable():
    # Three round blobs asked for four clusters: KMeans halves the wide one along a
    # direction that depends on the seed and the cells drawn, so those halves are unstable.
    z, y = make_blobs(
        n_samples=[400, 100, 100],
        centers=[[0, 0], [40, 0], [0, 40]],
        cluster_std=[3.0, 0.5, 0.5],
        random_state=0,
    )
    written = cluster(z, method="kmeans", n_clusters=4, seed=0)
    found, _ = cluster_stability(z, written, method="kmeans", n_clusters=4, seed=0)
    split = [c for c in range(4) if len(np.unique(y[written == c])) == 1]
    halves = [c for c in split if np.sum(y == y[written == c][0]) > np.sum(written == c)]
    whole = [c for c in range(4) if c not in halves]
    assert len(halves) == 2 and len(whole) == 2
    assert np.all(found.per_cluster[whole] > 0.99)
    assert np.all(found.per_cluster[halves] < 0.9)
    # The halves were often clustered together (merged), the whole blobs never with them.
    assert found.co_clustering[halves[0], halves[1]] > 0.1
    assert found.co_clustering[whole[0], halves[0]] == 0.0
    cells = np.isin(written, halves)
    assert found.per_cell[cells].mean() < found.per_cell[~cells].mean() - 0.1


def test_repeats_are_seeded_and_draw_the_fraction(blobs):
    z, _ = blobs
    first = repeat_clustering(z, method="kmeans", n_clusters=4, seed=3, repeats=5, fraction=0.5)
    again = repeat_clustering(z, method="kmeans", n_clusters=4, seed=3, repeats=5, fraction=0.5)
    other = repeat_clustering(z, method="kmeans", n_clusters=4, seed=4, repeats=5, fraction=0.5)
    assert len(first) == 5
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.codes, b.codes)
        assert len(a.rows) == 120 and np.all(np.diff(a.rows) > 0)
    assert not all(np.array_equal(a.rows, b.rows) for a, b in zip(first, other, strict=True))
    # Each KMeans repeat is KMeans on the cells it drew (blobs: any seed, same clusters).
    rep = first[0]
    reference = KMeans(4, n_init=10, random_state=0).fit_predict(z[rep.rows])
    assert adjusted_rand_score(reference, rep.codes) == pytest.approx(1.0)


def test_repeats_refuse_bad_settings(blobs):
    z, _ = blobs
    with pytest.raises(InputError, match="GMVAE"):
        repeat_clustering(z, method="gmvae", n_clusters=4)
    with pytest.raises(InputError, match="fraction"):
        repeat_clustering(z, method="kmeans", n_clusters=4, fraction=0.0)
    with pytest.raises(InputError, match="repeats"):
        repeat_clustering(z, method="kmeans", n_clusters=4, repeats=0)


def test_leiden_on_rows_uses_the_subgraph(blobs):
    z, labels = blobs
    nbrs = nearest_neighbours(z, 15)
    np.testing.assert_array_equal(
        leiden(z, seed=1, neighbours=nbrs, rows=np.arange(len(z))),
        leiden(z, seed=1, neighbours=nbrs),
    )
    rows = np.flatnonzero(np.isin(labels, ["alpha", "beta"]))
    found = leiden(z, n_clusters=2, seed=0, neighbours=nbrs, rows=rows)
    assert len(found) == len(rows)
    assert adjusted_rand_score(labels[rows], found) == pytest.approx(1.0)
    with pytest.raises(InputError, match="sorted"):
        leiden(z, neighbours=nbrs, rows=rows[::-1])
    with pytest.raises(InputError, match="rows"):
        cluster(z, clusters=labels, rows=rows)


def test_leiden_resolution_reproduces_the_search(blobs):
    z, _ = blobs
    z = z + np.random.default_rng(0).normal(scale=3.0, size=z.shape)  # a real search
    nbrs = nearest_neighbours(z, 15)
    for k in (3, 6):
        resolution = leiden_resolution(z, k, seed=2, neighbours=nbrs)
        np.testing.assert_array_equal(
            leiden(z, resolution=resolution, seed=2, neighbours=nbrs),
            leiden(z, n_clusters=k, seed=2, neighbours=nbrs),
        )


def test_compare_with_pca_measures_both_sides(blobs):
    z, labels = blobs
    x = np.hstack([z, np.random.default_rng(0).normal(scale=0.1, size=(len(z), 3))])
    result = compare_with_pca(x, z, x, labels, stability_repeats=4)
    assert set(result.stability) == {"geneae", "pca"}
    for side in ("geneae", "pca"):
        assert result.metrics[side]["cluster_stability"] == pytest.approx(1.0)
        assert len(result.stability[side].ari) == 4
    settings = result.metrics["stability"]
    assert settings["repeats"] == 4 and settings["fraction"] == stability_module.FRACTION
    assert set(settings["seconds"]) == {"geneae", "pca"}
    off = compare_with_pca(x, z, x, labels, stability_repeats=0)
    assert off.stability == {} and "cluster_stability" not in off.metrics["geneae"]
    mixture = compare_with_pca(
        x, z, x, labels, cluster_method="gmvae", clusters=labels, stability_repeats=2
    )
    assert set(mixture.stability) == {"pca"}  # a GMVAE's own clusters are not repeated
    assert "cluster_stability" not in mixture.metrics["geneae"]


def test_config_defaults_are_the_module_defaults():
    cfg = EvaluateConfig()
    assert cfg.stability_repeats == stability_module.REPEATS
    assert cfg.stability_fraction == stability_module.FRACTION
