"""Tests of geneae.datasets: determinism, shapes, labels, value types, bundled real data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import KNeighborsRegressor

from geneae import datasets
from geneae.errors import ConfigError
from geneae.facts import describe
from geneae.matrix_values import is_count_matrix, value_type

SMALL = {
    "bulk_conditions": {"n_samples": 60, "n_genes": 200, "n_informative": 30},
    "polynomial_toy": {"n_samples": 200},
    "synthetic_counts": {"n_cells": 300, "n_genes": 100, "n_clusters": 3},
    "lognorm_clusters": {"n_cells": 300, "n_genes": 200, "n_clusters": 3},
}


def lognorm_pca_kmeans_ari(adata, n_clusters: int) -> float:
    x = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    logged = np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)
    z = PCA(20, random_state=0).fit_transform(logged)
    pred = KMeans(n_clusters, n_init=4, random_state=0).fit_predict(z)
    return adjusted_rand_score(adata.obs["label"], pred)


# -- every generator ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL))
def test_generators_are_seeded(name: str) -> None:
    make = getattr(datasets, name)
    a, b, c = make(**SMALL[name], seed=3), make(**SMALL[name], seed=3), make(**SMALL[name], seed=4)
    dense = [x.X.toarray() if sp.issparse(x.X) else x.X for x in (a, b, c)]
    np.testing.assert_array_equal(dense[0], dense[1])
    assert a.obs["label"].equals(b.obs["label"])
    assert not np.array_equal(dense[0], dense[2])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_generators_label_every_sample(name: str) -> None:
    adata = getattr(datasets, name)(**SMALL[name])
    assert adata.obs["label"].dtype == "category"
    assert adata.obs["label"].notna().all()
    assert adata.obs_names.is_unique and adata.var_names.is_unique
    assert np.all(np.isfinite(adata.X.data if sp.issparse(adata.X) else adata.X))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("bulk_conditions", {"n_samples": 0}),
        ("bulk_conditions", {"n_informative": 5000}),
        ("polynomial_toy", {"noise": -0.1}),
        ("synthetic_counts", {"n_clusters": 0}),
        ("synthetic_counts", {"zero_inflation": 1.0}),
        ("synthetic_counts", {"n_cells": 2.5}),
        ("lognorm_clusters", {"n_clusters": 0}),
        ("lognorm_clusters", {"n_genes": 2, "n_clusters": 3}),
    ],
)
def test_bad_arguments_raise_config_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        getattr(datasets, name)(**kwargs)


# -- bulk_conditions ----------------------------------------------------------------------
def test_bulk_conditions_shape_values_and_informative_genes() -> None:
    adata = datasets.bulk_conditions()
    assert adata.shape == (300, 2000) and adata.X.dtype == np.float32
    assert list(adata.obs["label"].cat.categories) == ["A", "B", "C"]
    assert adata.obs["label"].value_counts().tolist() == [100, 100, 100]
    assert adata.X.min() >= 0 and value_type(adata.X) == "log-normalised"
    informative = adata.var["informative"].to_numpy()
    assert informative.sum() == 100
    means = np.stack([adata.X[adata.obs["label"] == c].mean(axis=0) for c in "ABC"])
    spread = means.max(axis=0) - means.min(axis=0)
    assert np.median(spread[informative]) > 5 * np.median(spread[~informative])


# -- polynomial_toy -----------------------------------------------------------------------
def test_polynomial_toy_is_a_curved_two_dimensional_surface() -> None:
    adata = datasets.polynomial_toy()
    assert adata.shape == (1000, 9) and list(adata.var_names)[:5] == ["x", "y", "x2", "xy", "y2"]
    np.testing.assert_allclose(adata.X.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(adata.X.std(axis=0), 1, atol=1e-4)
    assert adata.obs["label"].nunique() == 4
    pca_residual = 1 - PCA(2).fit(adata.X).explained_variance_ratio_.sum()
    truth = adata.obsm["X_true"]  # a nonlinear map of the 2-D points explains almost all
    knn = KNeighborsRegressor(10).fit(truth, adata.X)
    nonlinear_residual = ((adata.X - knn.predict(truth)) ** 2).mean()
    assert pca_residual > 0.2 and nonlinear_residual < 0.05


# -- synthetic_counts ---------------------------------------------------------------------
def test_synthetic_counts_are_sparse_integer_counts() -> None:
    adata = datasets.synthetic_counts()
    assert adata.shape == (2000, 500)
    assert sp.isspmatrix_csr(adata.X) and is_count_matrix(adata.X)
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert adata.obs["label"].nunique() == 5 and list(adata.obs["batch"].cat.categories) == [
        "batch_0"
    ]
    zeros = 1 - adata.X.nnz / np.prod(adata.shape)
    assert 0.4 < zeros < 0.9
    libraries = np.asarray(adata.X.sum(axis=1)).ravel()
    assert np.percentile(libraries, 95) > 2 * np.percentile(libraries, 5)  # varying depth
    assert (adata.var["marker_of"] != "").sum() > 0


def test_synthetic_counts_clusters_are_recoverable_but_not_trivially() -> None:
    adata = datasets.synthetic_counts()
    assert lognorm_pca_kmeans_ari(adata, 5) > 0.9
    raw = PCA(20, random_state=0).fit_transform(adata.X.toarray())  # no normalisation
    pred = KMeans(5, n_init=4, random_state=0).fit_predict(raw)
    assert adjusted_rand_score(adata.obs["label"], pred) < 0.5


def test_synthetic_counts_options() -> None:
    adata = datasets.synthetic_counts(n_cells=400, n_genes=80, n_batches=3, sparse=False)
    assert isinstance(adata.X, np.ndarray) and is_count_matrix(adata.X)
    assert adata.obs["batch"].nunique() == 3
    few = datasets.synthetic_counts(n_cells=400, n_genes=80, zero_inflation=0.0)
    many = datasets.synthetic_counts(n_cells=400, n_genes=80, zero_inflation=0.5)
    assert many.X.nnz < 0.7 * few.X.nnz


# -- lognorm_clusters ---------------------------------------------------------------------
def test_lognorm_clusters_is_log_normalised_single_cell_data() -> None:
    adata = datasets.lognorm_clusters(n_cells=600, n_genes=400, n_clusters=3, seed=1)
    assert adata.shape == (600, 400)
    assert sp.issparse(adata.X) and adata.X.format == "csr" and adata.X.dtype == np.float32
    assert not adata.layers  # no counts kept: X is all there is
    facts = describe(adata)
    assert facts.value_type == "log-normalised" and not facts.has_counts
    x = adata.X.toarray().astype(np.float64)
    # Each cell was scaled to 10,000 counts before log1p; float32 storage keeps ~7 digits.
    np.testing.assert_allclose(np.expm1(x).sum(axis=1), 1e4, rtol=1e-4)
    assert 0.7 < 1 - adata.X.nnz / x.size < 0.95  # sparse as single-cell data are
    totals = adata.obs["total_counts"].to_numpy()
    assert np.all(totals >= 1) and totals.max() / totals.min() > 5  # libraries vary
    # The smallest non-zero value of a cell is one count out of its library.
    smallest = np.array([row[row > 0].min() for row in x])
    np.testing.assert_allclose(smallest, np.log1p(1e4 / totals), rtol=1e-4)
    assert list(adata.obs["label"].cat.categories) == ["type_0", "type_1", "type_2"]
    assert adata.obs["label"].value_counts().min() > 150


def test_lognorm_clusters_types_are_marked_by_gene_blocks() -> None:
    adata = datasets.lognorm_clusters(n_cells=600, n_genes=400, n_clusters=3, seed=2)
    x = adata.X.toarray()
    labels = adata.obs["label"].to_numpy()
    marker_of = adata.var["marker_of"].to_numpy()
    for kind in ("type_0", "type_1", "type_2"):
        block = marker_of == kind
        assert block.sum() == 40  # a tenth of the genes
        inside = x[labels == kind][:, block].mean()
        outside = x[labels != kind][:, block].mean()
        assert inside > outside + 0.5
    z = PCA(10, random_state=0).fit_transform(x)
    pred = KMeans(3, n_init=4, random_state=0).fit_predict(z)
    assert adjusted_rand_score(labels, pred) > 0.95


def test_lognorm_clusters_gives_an_empty_cell_one_count(monkeypatch) -> None:
    from geneae.datasets import lognorm as module

    monkeypatch.setattr(module, "MEDIAN_LIBRARY", 0.5)  # most cells would have no count
    adata = datasets.lognorm_clusters(n_cells=200, n_genes=50, n_clusters=3, sparse=False)
    assert adata.obs["total_counts"].min() == 1
    assert (adata.obs["total_counts"] == 1).sum() > 50
    np.testing.assert_allclose(np.expm1(adata.X.astype(np.float64)).sum(axis=1), 1e4, rtol=1e-4)


# -- real data ----------------------------------------------------------------------------
def test_pbmc_10x_bundled_counts() -> None:
    adata = datasets.pbmc_10x()
    assert adata.shape == (2100, 2000)
    assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
    assert is_count_matrix(adata.X) and adata.X.max() == 773
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert list(adata.obs["label"].cat.categories) == [str(k) for k in range(1, 9)]
    sizes = adata.obs["label"].value_counts().sort_index().tolist()
    assert sizes == [637, 338, 308, 226, 219, 160, 146, 66]
    assert adata.obs_names[0] == "cell_0000" and adata.var_names[-1] == "gene_1999"


def test_bundled_file_is_small() -> None:
    import importlib.resources

    path = importlib.resources.files("geneae.datasets") / datasets.PBMC_10X_FILE
    assert len(path.read_bytes()) < 2 * 1024 * 1024


def test_pbmc_10x_matches_the_source_h5_exactly(shared_file) -> None:
    import h5py

    source = shared_file("pbmc_10x/10X_PBMC_select_2100_top2000.h5")
    with h5py.File(source, "r") as f:
        x, y = f["X"][()], f["Y"][()]
    adata = datasets.pbmc_10x()
    np.testing.assert_array_equal(adata.X.toarray(), x)
    np.testing.assert_array_equal(adata.obs["label"].astype(int).to_numpy(), y.astype(int))


def test_pbmc68k_reduced_from_the_installed_scanpy() -> None:
    adata = datasets.pbmc68k_reduced()
    assert adata.shape == (700, 765)
    assert adata.obs["label"].dtype == "category" and adata.obs["label"].nunique() == 10
    assert adata.obs["label"].equals(adata.obs["bulk_labels"].astype("category"))
