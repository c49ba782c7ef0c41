"""The benchmark's PCA peers on values that are not counts (benchmarks/quality.py)."""

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

from benchmarks.quality import N_TOP_GENES, _pca_of_values


def _log_values(n_genes: int, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.lognormal(-1.0, 1.0, size=n_genes), size=(150, n_genes))
    x = np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4)
    return ad.AnnData(X=x.astype(np.float32))


def test_scaled_pca_of_a_whole_genome_log_matrix_takes_scanpy_hvgs_first():
    adata = _log_values(N_TOP_GENES + 300)
    latent, info = _pca_of_values(adata, 10, True, 0, log=None)
    ref = adata.copy()
    sc.pp.highly_variable_genes(ref, flavor="seurat", n_top_genes=N_TOP_GENES, subset=True)
    sc.pp.scale(ref, max_value=10)
    sc.pp.pca(ref, n_comps=10, random_state=0)
    assert info["n_genes_model"] == N_TOP_GENES
    assert "hvg seurat" in info["config"]["pipeline"]
    np.testing.assert_allclose(np.abs(latent), np.abs(ref.obsm["X_pca"]), rtol=1e-4, atol=1e-4)


def test_unscaled_pca_and_pca_of_a_table_of_selected_genes_keep_every_gene():
    _, info = _pca_of_values(_log_values(N_TOP_GENES + 300), 10, False, 0, log=None)
    assert info["n_genes_model"] == N_TOP_GENES + 300 and "hvg" not in info["config"]["pipeline"]
    _, info = _pca_of_values(_log_values(300), 10, True, 0, log=None)
    assert info["n_genes_model"] == 300 and "hvg" not in info["config"]["pipeline"]


def test_subsample_names_parse_and_unknown_names_are_refused():
    import argparse

    from benchmarks.common import dataset_name, subsample_of

    assert subsample_of("mouse_bladder_n1500") == ("mouse_bladder", 1500)
    assert subsample_of("pbmc_10x_n500") == ("pbmc_10x", 500)
    assert subsample_of("bulk_small_n50") is None  # only count sets are subsampled
    assert subsample_of("pbmc_10x") is None
    assert dataset_name("worm_neuron_n2000") == "worm_neuron_n2000"
    assert dataset_name("bulk_tiny") == "bulk_tiny"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown dataset 'nope_n10'"):
        dataset_name("nope_n10")


def test_pca_of_single_cells_in_cpm_takes_scanpy_log_at_1e4():
    from benchmarks.common import CPM_DATASETS, dataset_kind, unlogged

    rng = np.random.default_rng(1)
    counts = rng.poisson(rng.lognormal(-1.0, 1.0, size=300), size=(150, 300)).astype(float)
    counts[counts.sum(1) == 0, 0] = 1.0
    cpm = ad.AnnData(X=(counts / counts.sum(1, keepdims=True) * 1e6).astype(np.float32))
    assert all(dataset_kind(name) == "lognorm" and unlogged(name) == 1e4 for name in CPM_DATASETS)
    latent, info = _pca_of_values(cpm, 10, False, 0, log=1e4)
    ref = ad.AnnData(X=counts)
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    sc.pp.pca(ref, n_comps=10, random_state=0)
    assert info["config"]["pipeline"].startswith("normalize_total 1e4, log1p")
    np.testing.assert_allclose(np.abs(latent), np.abs(ref.obsm["X_pca"]), rtol=1e-3, atol=1e-3)
