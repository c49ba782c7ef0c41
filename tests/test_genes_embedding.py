"""Gene embeddings: genes as samples (train --genes-as-samples) and a sample model's
loadings, similar genes by cosine, and the report's gene section."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.neighbors import NearestNeighbors

from geneae import datasets
from geneae.cli import main
from geneae.config import RunConfig
from geneae.errors import ConfigError, DataWarning, InputError
from geneae.evaluate import cosine_neighbours
from geneae.facts import describe
from geneae.genes import read_gene_embedding, similar_genes
from geneae.pp.orientation import align_features, genes_as_rows
from geneae.resolve import resolve
from geneae.resolve_preprocess import min_samples_per_gene


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster on a shared machine
    yield
    torch.set_num_threads(threads)


FAST = {
    "train": {"max_epochs": 30, "quiet": True},
    "evaluate": {"tsne": False, "umap": False},
}


# -- cosine neighbours ----------------------------------------------------------------------
def test_cosine_neighbours_match_scikit_learn():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(300, 6))
    idx, sims = cosine_neighbours(w, 20, block=64)
    ref = NearestNeighbors(n_neighbors=20, metric="cosine", algorithm="brute").fit(w)
    dist, ref_idx = ref.kneighbors(return_distance=True)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, 1.0 - dist, atol=1e-12)
    # a subset of rows gives the same rows of the table
    rows = np.array([5, 0, 299])
    sub_idx, sub_sims = cosine_neighbours(w, 20, rows=rows)
    np.testing.assert_array_equal(sub_idx, idx[rows])
    np.testing.assert_allclose(sub_sims, sims[rows])


def test_cosine_neighbours_put_zero_vectors_last_and_never_list_self():
    w = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.1], [-1.0, 0.0]])
    idx, sims = cosine_neighbours(w, 3)
    assert list(idx[0]) == [2, 3, 1]  # most similar, opposite, then the zero vector
    assert sims[0, 0] == pytest.approx(2 / np.hypot(2, 0.1))
    assert sims[0, 1] == pytest.approx(-1.0) and np.isnan(sims[0, 2])
    assert all(i not in row for i, row in enumerate(idx))
    assert np.isnan(sims[1]).all()  # a zero vector has no defined similarity


# -- the transposition and the decisions of genes as samples --------------------------------
@pytest.fixture(scope="module")
def modules():
    return datasets.gene_modules(n_samples=120, n_modules=4, genes_per_module=30, seed=1)


def test_genes_as_rows_and_feature_alignment(modules):
    pre = modules[:, :10].copy()
    rows = genes_as_rows(pre, label_column="module")
    assert rows.shape == (10, 120)
    np.testing.assert_array_equal(rows.X, pre.X.T)
    assert list(rows.obs_names) == list(pre.var_names)
    assert list(rows.obs["label"].astype(str)) == list(pre.var["module"].astype(str))
    assert list(rows.var_names) == list(pre.obs_names)
    with pytest.raises(InputError, match="var"):
        genes_as_rows(pre, label_column="cell_type")
    # new data: samples in another order, one extra; aligned by name
    shuffled = rows[:, ::-1].copy()
    extra = ad.AnnData(
        np.hstack([shuffled.X, np.ones((10, 1), np.float32)]),
        obs=shuffled.obs,
        var=pd.DataFrame(index=[*shuffled.var_names, "extra_sample"]),
    )
    with pytest.warns(DataWarning, match="1 samples"):
        aligned = align_features(extra, list(rows.var_names))
    np.testing.assert_array_equal(aligned.X, rows.X)
    with pytest.raises(InputError, match="missing"):
        align_features(rows[:, 1:].copy(), list(rows.var_names))


def test_resolve_genes_as_samples(modules):
    facts = describe(modules)
    cfg = resolve(RunConfig().updated({"data.genes_as_samples": True}), facts)
    assert cfg.model.likelihood == "gaussian"
    pp = cfg.preprocess
    assert (pp.preset, pp.source, pp.normalize, pp.log1p) == ("standardize", "counts", True, True)
    assert pp.scale and pp.n_top_genes == 0 and pp.min_counts_per_cell == 0
    assert pp.min_cells_per_gene == min_samples_per_gene(120) == 12
    assert cfg.train.max_epochs == 300  # from the 120 genes, the rows the model trains on
    given = resolve(
        RunConfig().updated({"data.genes_as_samples": True, "preprocess.n_top_genes": 50}), facts
    )
    assert given.preprocess.n_top_genes == 50
    with pytest.raises(ConfigError, match="gaussian"):
        resolve(
            RunConfig().updated({"data.genes_as_samples": True, "model.likelihood": "nb"}), facts
        )
    with pytest.raises(ConfigError, match="covariate"):
        resolve(RunConfig().updated({"data.genes_as_samples": True, "data.covariate": "b"}), facts)
    assert min_samples_per_gene(10) == 3 and min_samples_per_gene(2) == 2


# -- both routes end to end ------------------------------------------------------------------
@pytest.fixture(scope="module")
def module_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("genes") / "modules.h5ad"
    adata = datasets.gene_modules(seed=0)  # 300 samples, 6 modules x 40 genes
    adata.var["description"] = [f"SYM{i}" for i in range(adata.n_vars)]  # e.g. from a GCT
    adata.write_h5ad(path)
    return path


@pytest.fixture(scope="module")
def fast_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "fast.yaml"
    path.write_text(yaml.safe_dump(FAST))
    return path


@pytest.fixture(scope="module")
def gene_run(module_file, fast_yaml, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "genes"
    args = ["train", str(module_file), "--out", str(run), "--config", str(fast_yaml)]
    assert main([*args, "--genes-as-samples", "--labels", "module"]) == 0
    return run


@pytest.fixture(scope="module")
def sample_run(module_file, fast_yaml, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "samples"
    assert main(["train", str(module_file), "--out", str(run), "--config", str(fast_yaml)]) == 0
    return run


def module_precision(embedding, modules, k=20):
    """Mean fraction of each gene's k nearest genes (cosine) in its own module."""
    truth = modules.reindex(embedding.names).to_numpy()
    idx, _ = cosine_neighbours(embedding.vectors, k)
    return float((truth[idx] == truth[:, None]).mean())


@pytest.mark.parametrize("route", ["gene_run", "sample_run"])
def test_genes_of_a_module_are_nearest_neighbours(route, module_file, request):
    run = request.getfixturevalue(route)
    modules = ad.read_h5ad(module_file).var["module"].astype(str)
    embedding = read_gene_embedding(run)
    assert embedding.source == ("latent" if route == "gene_run" else "loadings")
    assert len(embedding.names) == 240 and set(embedding.names) == set(modules.index)
    precision = module_precision(embedding, modules)
    print(f"{route}: module precision of the 20 nearest genes = {precision:.3f}")
    assert precision >= 0.9
    # the neighbours are those of scikit-learn's cosine search on the stored vectors
    ref = NearestNeighbors(n_neighbors=20, metric="cosine", algorithm="brute")
    ref_idx = ref.fit(embedding.vectors).kneighbors(return_distance=False)
    idx, _ = cosine_neighbours(embedding.vectors, 20)
    assert (idx == ref_idx).mean() > 0.99  # float ties aside


def test_gene_model_run_files(gene_run):
    config = yaml.safe_load((gene_run / "config.yaml").read_text())
    assert config["data"]["genes_as_samples"] is True
    assert config["model"]["likelihood"] == "gaussian"
    results = ad.read_h5ad(gene_run / "results.h5ad")
    assert results.n_obs == 240 and results.n_vars == 300  # genes x samples
    assert set(results.obs["label"].astype(str)) == {f"module_{m}" for m in range(6)}
    metrics = (gene_run / "metrics.json").read_text()
    assert '"genes_as_samples": true' in metrics
    html = (gene_run / "report.html").read_text()
    assert "Gene embedding" in html and "its features are the samples" in html
    slot = results.uns["geneae"]["genes"]
    assert slot["source"] == "latent" and slot["map"].shape == (240, 2)
    assert slot["neighbours"].shape == (12, 10) and slot["top"].shape == (12,)


def test_similar_genes_cli_and_api_agree(gene_run, module_file, tmp_path, capsys):
    table = similar_genes(gene_run, "gene_0003", n=20)
    assert list(table.columns) == ["gene", "symbol", "similarity"] and len(table) == 20
    assert list(table.symbol) == [f"SYM{int(g.split('_')[1])}" for g in table.gene]
    pd.testing.assert_frame_equal(similar_genes(gene_run, "SYM3", n=20), table)  # by symbol
    assert "gene_0003" not in set(table.gene)
    assert table.similarity.is_monotonic_decreasing
    modules = ad.read_h5ad(module_file).var["module"].astype(str)
    assert (modules[table.gene] == modules["gene_0003"]).mean() >= 0.9
    out = tmp_path / "similar.csv"
    capsys.readouterr()
    code = main(["similar-genes", str(gene_run), "gene_0003", "-n", "20", "--out", str(out)])
    assert code == 0
    assert "gene_0003" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out), table, check_exact=False, rtol=1e-5)
    assert main(["similar-genes", str(gene_run), "gene_3"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_api_from_a_model_matches_the_run(sample_run, module_file):
    from geneae.model import GeneAE

    model = GeneAE.load(sample_run)
    data = ad.read_h5ad(module_file)
    from_model = similar_genes(model, "gene_0010", n=10, data=data)
    from_run = similar_genes(sample_run, "gene_0010", n=10)
    assert list(from_model.gene) == list(from_run.gene)
    with pytest.raises(InputError, match="data"):
        similar_genes(model, "gene_0010")


def test_encode_a_gene_model_writes_one_row_per_gene(gene_run, module_file, tmp_path):
    out = tmp_path / "genes.csv"
    assert main(["encode", str(gene_run), str(module_file), "--out", str(out)]) == 0
    table = pd.read_csv(out, index_col=0)
    assert table.shape == (240, 10)
    results = ad.read_h5ad(gene_run / "results.h5ad")
    np.testing.assert_allclose(
        table.loc[results.obs_names].to_numpy(), results.obsm["X_geneae"], rtol=1e-4, atol=1e-5
    )


def test_labels_file_is_refused_for_genes(module_file, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(["a"] * 300))
    args = ["train", str(module_file), "--out", str(tmp_path / "r"), "--genes-as-samples"]
    assert main([*args, "--labels-file", str(labels)]) == 2
    assert "var" in capsys.readouterr().err
