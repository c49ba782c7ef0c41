import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from geneae import tl
from geneae.errors import InputError


def blank(n, g=5):
    """An empty results AnnData of n cells x g genes (X absent, as in results.h5ad)."""
    return anndata.AnnData(
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )


def clusters(n=300, k=5, dims=80, scale=8.0, seed=0):
    """Well-separated Gaussian clusters in ``dims`` dimensions, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    centres = rng.normal(scale=scale, size=(k, dims))
    return centres[labels] + rng.normal(size=(n, dims)), labels


def knn_accuracy(coords, labels):
    return cross_val_score(KNeighborsClassifier(10), coords, labels, cv=5).mean()


@pytest.fixture(scope="module")
def mapped():
    """Two clustered spaces (one wide, one narrow and sparse) mapped by every method."""
    wide, labels = clusters(n=300, dims=80)
    narrow = sp.csr_matrix(np.maximum(wide[:, :12], 0))
    results = blank(300)
    tl.maps(results, {"wide": wide, "narrow": narrow}, max_cells=240, seed=3, workers=2)
    return results, wide, narrow, labels


def test_maps_slots_shapes_and_nan_outside_the_subsample(mapped):
    results, *_ = mapped
    plotted = results.obs["plotted"].to_numpy()
    assert plotted.dtype == bool and plotted.sum() == 240
    keys = {f"map_{m}_{s}" for m in ("pca", "tsne", "umap") for s in ("wide", "narrow")}
    assert set(results.obsm) == keys
    for key in keys:
        xy = results.obsm[key]
        assert xy.shape == (300, 2) and xy.dtype == np.float32
        assert np.isfinite(xy[plotted]).all()
        assert np.isnan(xy[~plotted]).all()
    info = results.uns["geneae"]["maps"]
    assert info["methods"] == ["pca", "tsne", "umap"]
    assert info["spaces"] == ["wide", "narrow"]
    assert info["seed"] == 3 and info["n_plotted"] == 240 and info["seconds"] > 0


def test_maps_deterministic_for_a_seed(mapped):
    results, wide, narrow, _ = mapped
    again = blank(300)
    # One space at a time gives the very maps the threads gave (fixture: one per core).
    tl.maps(again, {"wide": wide, "narrow": narrow}, max_cells=240, seed=3, workers=1)
    np.testing.assert_array_equal(again.obs["plotted"], results.obs["plotted"])
    for key in results.obsm:
        np.testing.assert_array_equal(again.obsm[key], results.obsm[key])
    other = blank(300)
    tl.maps(other, {"wide": wide}, methods=("pca",), max_cells=240, seed=4)
    assert not np.array_equal(other.obs["plotted"], results.obs["plotted"])


@pytest.mark.parametrize("method", ["tsne", "umap"])
@pytest.mark.parametrize("space", ["wide", "narrow"])
def test_maps_preserve_well_separated_clusters(mapped, method, space):
    results, _, _, labels = mapped
    plotted = results.obs["plotted"].to_numpy()
    coords = results.obsm[f"map_{method}_{space}"][plotted]
    assert knn_accuracy(coords, labels[plotted]) >= 0.9


def test_pca_map_reuses_the_shared_pca(mapped):
    # The PCA map of a wide space is the first two columns of the 50 components that t-SNE
    # and UMAP use: the same as a 2-component PCA of the plotted cells.
    results, wide, _, _ = mapped
    plotted = results.obs["plotted"].to_numpy()
    alone = tl.embed_2d(wide[plotted], "pca", seed=3)
    np.testing.assert_allclose(results.obsm["map_pca_wide"][plotted], alone, rtol=1e-4, atol=1e-3)


def test_maps_replace_earlier_maps_and_keep_other_slots():
    x, _ = clusters(n=60, dims=6)
    results = blank(60)
    results.obsm["X_geneae"] = x[:, :3]
    tl.maps(results, {"a": x, "b": x[:, :3]}, methods=("pca",), seed=0)
    assert results.obs["plotted"].all()  # fewer cells than max_cells: all plotted
    tl.maps(results, {"a": x}, methods=("pca",), seed=0)
    assert set(results.obsm) == {"X_geneae", "map_pca_a"}


def test_spaces_mapped_side_by_side_use_one_blas_thread_each(monkeypatch):
    # scikit-learn's neighbour search limits BLAS to one thread inside its OpenMP loop, but
    # a second mapping thread can undo that limit; with one BLAS thread throughout there is
    # nothing to undo (no OpenBLAS run threaded inside an OpenMP loop)
    from threadpoolctl import threadpool_info

    import geneae.tl._maps as maps_module

    seen = []
    compute = maps_module._coordinates

    def recording(*args, **kwargs):
        seen.append([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"])
        return compute(*args, **kwargs)

    monkeypatch.setattr(maps_module, "_coordinates", recording)
    x, _ = clusters(n=60, dims=6)
    tl.maps(blank(60), {"a": x, "b": x[:, :3]}, methods=("pca",), seed=0, workers=2)
    assert len(seen) == 2 and all(threads and set(threads) == {1} for threads in seen)


def test_neighbour_maps_only_for_the_spaces_asked():
    x, labels = clusters(n=80, dims=20)
    results = blank(80)
    spaces = {"input": x, "latent": x[:, :5]}
    tl.maps(results, spaces, methods=("pca", "umap"), neighbour_spaces=["latent"], seed=1)
    assert set(results.obsm) == {"map_pca_input", "map_pca_latent", "map_umap_latent"}
    assert list(results.uns["geneae"]["maps"]["neighbour_spaces"]) == ["latent"]
    assert knn_accuracy(results.obsm["map_umap_latent"], labels) >= 0.9
    # The input's PCA map is the one it gets when all spaces are mapped.
    everything = blank(80)
    tl.maps(everything, spaces, methods=("pca", "umap"), seed=1)
    assert list(everything.uns["geneae"]["maps"]["neighbour_spaces"]) == ["input", "latent"]
    np.testing.assert_allclose(
        results.obsm["map_pca_input"], everything.obsm["map_pca_input"], rtol=1e-4, atol=1e-3
    )
    with pytest.raises(InputError, match=r"neighbour_spaces \['genes'\]"):
        tl.maps(blank(80), spaces, neighbour_spaces=["genes"])


def test_umap_compilations_are_kept_on_disk():
    # After a UMAP, numba's cache folder holds an index for each of umap-learn's compiled
    # functions, which spares the next process their 8-10 s compilation.
    import importlib
    from pathlib import Path

    from geneae.tl._umap import COMPILED, _cache_compilation, umap_layout

    xy = umap_layout(np.random.default_rng(0).normal(size=(40, 5)), 0)
    assert xy.shape == (40, 2) and np.isfinite(xy).all()
    assert len(_cache_compilation()) == len(COMPILED)  # every function found in this umap
    for module, name in COMPILED:
        dispatcher = getattr(importlib.import_module(module), name)
        stem = f"{module.rsplit('.', 1)[1]}.{dispatcher.py_func.__name__}"
        assert list(Path(dispatcher._cache.cache_path).glob(f"{stem}-*.nbi")), stem


def test_umap_without_a_writable_cache_folder_still_maps(monkeypatch):
    # numba raises RuntimeError when it finds no folder to cache in (read-only package and
    # home): the functions are then compiled in the process, and the map is the same.
    import importlib

    from geneae.tl import _umap

    def refuse(self):
        raise RuntimeError("cannot cache function: no locator available")

    for module, name in _umap.COMPILED:
        dispatcher = getattr(importlib.import_module(module), name)
        monkeypatch.setattr(type(dispatcher), "enable_caching", refuse)
    _umap._cache_compilation.cache_clear()  # the refusing run is this test's, not remembered
    try:
        x, labels = clusters(n=60, dims=5)
        xy = _umap.umap_layout(x, 0)
        assert _umap._cache_compilation() == ()
    finally:
        _umap._cache_compilation.cache_clear()
    assert xy.shape == (60, 2) and knn_accuracy(xy, labels) >= 0.9


def test_maps_bad_input():
    x, _ = clusters(n=40, dims=6)
    results = blank(40)
    with pytest.raises(InputError, match="unknown map method"):
        tl.maps(results, {"a": x}, methods=("mds",))
    with pytest.raises(InputError, match="rows"):
        tl.maps(results, {"a": x[:30]})
    with pytest.raises(InputError, match="at least one space"):
        tl.maps(results, {})
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        tl.maps(results, {"a": bad}, methods=("pca",))
    with pytest.raises(InputError, match="max_cells"):
        tl.maps(results, {"a": x}, max_cells=0)
    assert "plotted" not in results.obs and not results.obsm  # nothing half-written


def test_embed_2d_seeded_sparse_and_small():
    x, _ = clusters(n=150, dims=60)
    x = np.maximum(x, 0)
    a = tl.embed_2d(sp.csr_matrix(x), "tsne", seed=3)
    assert a.shape == (150, 2)
    np.testing.assert_array_equal(a, tl.embed_2d(sp.csr_matrix(x), "tsne", seed=3))
    # The PCA map is the same however the matrix is stored.
    np.testing.assert_allclose(tl.embed_2d(sp.csr_matrix(x)), tl.embed_2d(x), atol=1e-8)
    # Below 10 cells t-SNE falls back to PCA; one feature is drawn against zero.
    np.testing.assert_allclose(tl.embed_2d(x[:8], "tsne"), tl.embed_2d(x[:8], "pca"))
    one = tl.embed_2d(x[:, :1], "pca")
    assert one.shape == (150, 2) and np.allclose(one[:, 1], 0)
    with pytest.raises(InputError):
        tl.embed_2d(x[:2])


def test_histograms_counts_every_value():
    rng = np.random.default_rng(0)
    counts = rng.poisson(0.7, size=(50, 30)).astype(float)
    x = np.log1p(counts)
    results = blank(50, 30)
    tl.histograms(results, raw=sp.csr_matrix(counts), input=x, bins=20)
    stored = results.uns["geneae"]["histograms"]
    assert set(stored) == {"raw", "input"}
    for name, matrix in (("raw", counts), ("input", x)):
        h = stored[name]
        assert h["counts"].dtype == np.int64 and h["edges"].dtype == np.float64
        assert h["edges"].shape == (len(h["counts"]) + 1,)
        assert h["n_total"] == matrix.size == h["counts"].sum()  # implicit zeros included
        assert h["n_zero"] == int((matrix == 0).sum())
    # integer data: bins of whole numbers centred on the integers
    raw = stored["raw"]
    assert np.allclose(np.diff(raw["edges"]), np.round(np.diff(raw["edges"])))
    assert raw["counts"][0] == (counts == 0).sum()
    tl.histograms(results, input=x)
    assert set(results.uns["geneae"]["histograms"]) == {"input"}
    with pytest.raises(InputError, match="rows"):
        tl.histograms(results, input=x[:10])


def test_profiles_most_variable_genes_of_seeded_cells():
    rng = np.random.default_rng(1)
    x = rng.gamma(1.0, size=(40, 25)) * np.linspace(0.1, 3, 25)
    x_hat = x + rng.normal(scale=0.1, size=x.shape)
    results = blank(40, 25)
    tl.profiles(results, input=sp.csr_matrix(x), reconstruction=x_hat, n_genes=10, seed=2)
    p = results.uns["geneae"]["profiles"]
    rows = [int(c[1:]) for c in p["cells"]]
    cols = [int(g[1:]) for g in p["genes"]]
    assert len(rows) == 4 and rows == sorted(rows)
    assert cols == list(np.argsort(-x.var(axis=0), kind="stable")[:10])
    assert p["observed"].shape == p["reconstructed"].shape == (4, 10)
    assert p["observed"].dtype == np.float32
    np.testing.assert_allclose(p["observed"], x[np.ix_(rows, cols)], rtol=1e-6)
    np.testing.assert_allclose(p["reconstructed"], x_hat[np.ix_(rows, cols)], rtol=1e-6)
    np.testing.assert_allclose(p["r"], [np.corrcoef(x[r], x_hat[r])[0, 1] for r in rows])
    again = blank(40, 25)
    tl.profiles(again, input=x, reconstruction=x_hat, n_genes=10, seed=2)
    np.testing.assert_array_equal(again.uns["geneae"]["profiles"]["cells"], p["cells"])
    with pytest.raises(InputError, match="columns"):
        tl.profiles(results, input=x[:, :20], reconstruction=x_hat[:, :20])


def test_results_round_trip_through_h5ad(tmp_path, results_factory):
    results, _ = results_factory(n=80, g=30, max_cells=60)
    path = tmp_path / "results.h5ad"
    results.write_h5ad(path)
    back = anndata.read_h5ad(path)
    assert back.X is None
    assert back.obs["plotted"].dtype == bool and back.obs["plotted"].sum() == 60
    g = back.uns["geneae"]
    assert set(g) >= {"config", "metrics", "history", "maps", "histograms", "profiles"}
    assert list(g["maps"]["methods"]) == ["pca"]
    assert int(g["histograms"]["input"]["n_total"]) == 80 * 30
    assert g["profiles"]["observed"].shape == (4, 30)
    np.testing.assert_array_equal(back.obsm["map_pca_geneae"], results.obsm["map_pca_geneae"])


def test_cluster_stability_round_trip_through_h5ad(tmp_path):
    from geneae.evaluate import compare_with_pca

    z, labels = clusters(n=120, k=3, dims=6)
    compared = compare_with_pca(z, z[:, :3], z, labels, stability_repeats=5)
    results = blank(120)
    tl.cluster_stability(results, compared)
    results.write_h5ad(tmp_path / "results.h5ad")
    back = anndata.read_h5ad(tmp_path / "results.h5ad")
    slot = back.uns["geneae"]["stability"]
    assert slot["repeats"] == 5 and slot["fraction"] == pytest.approx(0.67)
    for side in ("geneae", "pca"):
        found = compared.stability[side]
        one = slot[side]
        assert one["method"] == "kmeans"
        np.testing.assert_array_equal(one["clusters"], ["0", "1", "2"])
        np.testing.assert_array_equal(one["sizes"], np.bincount(compared.clusters[side]))
        np.testing.assert_allclose(one["per_cluster"], found.per_cluster)
        np.testing.assert_allclose(one["co_clustering"], found.co_clustering)
        assert one["co_clustering"].shape == (3, 3) and one["ari"].shape == (5,)
        assert one["n_found"].dtype == np.int64 and one["mean"] == pytest.approx(found.mean)
        assert one["seconds"] >= 0
        stored = back.obs[f"{side}_stability"].to_numpy()
        assert stored.dtype == np.float32
        np.testing.assert_allclose(stored, found.per_cell, rtol=1e-6)


def test_cluster_stability_checks_cells_and_skips_nothing_measured():
    from geneae.evaluate import compare_with_pca

    z, labels = clusters(n=60, k=2, dims=4)
    with pytest.raises(InputError, match="60 cells"):
        tl.cluster_stability(blank(50), compare_with_pca(z, z, z, labels, stability_repeats=2))
    results = blank(60)
    tl.cluster_stability(results, compare_with_pca(z, z, z, labels, stability_repeats=0))
    assert "geneae" not in results.uns and "geneae_stability" not in results.obs
