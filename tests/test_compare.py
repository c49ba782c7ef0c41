"""``geneae compare``'s table: the reconstruction MSE over all entries and non-zero entries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import yaml

from geneae import GeneAE, datasets
from geneae.cli import main
from geneae.compare import table_row

FAST = {
    "train": {"max_epochs": 3, "batch_size": 32, "quiet": True},
    "model": {"hidden": [16], "members": 1},
    "preprocess": {"n_top_genes": 0},
    "evaluate": {"tsne": False, "umap": False, "max_plot_cells": 100},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dense(x: object) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def squared_errors(x: np.ndarray, x_hat: np.ndarray) -> tuple[float, float]:
    """Mean squared error over every entry and over the entries where ``x`` is non-zero."""
    err = (x - x_hat) ** 2
    return float(err.mean()), float(err[x != 0].mean())


def pca_reconstruction(x: np.ndarray, d: int) -> np.ndarray:
    """The rank-``d`` reconstruction of ``x`` from an SVD of the centred matrix."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    return (x - mean) @ vt[:d].T @ vt[:d] + mean


def test_table_row_names_both_reconstruction_errors() -> None:
    side = {"ari": 0.5, "mse": 0.2, "masked_mse": 0.9, "pearson_gene": 0.1}
    metrics = {
        "comparison": {"geneae": side, "pca": {**side, "mse": 0.3, "masked_mse": 1.1}},
        "model": {"epochs_trained": 7},
        "timings": {"train_s": 1.5},
    }
    row = table_row("latent_dim=2", {"model.latent_dim": 2}, metrics)
    assert row == {
        "run": "latent_dim=2",
        "latent_dim": 2,
        "ari": 0.5,
        "pca_ari": 0.5,
        "mse_all_entries": 0.2,
        "pca_mse_all_entries": 0.3,
        "mse_nonzero_entries": 0.9,
        "pca_mse_nonzero_entries": 1.1,
        "epochs": 7,
        "train_s": 1.5,
    }


def test_compare_reconstruction_errors_match_numpy(tmp_path, capsys) -> None:
    adata = datasets.lognorm_clusters(n_cells=150, n_genes=40, n_clusters=3, seed=3)
    adata = adata[:, adata.X.getnnz(axis=0) > 0].copy()  # genes seen in no cell would warn
    data = tmp_path / "lognorm.h5ad"
    adata.write_h5ad(data)
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump(FAST))
    out = tmp_path / "cmp"
    args = ["compare", str(data), "--out", str(out), "--grid", "latent_dim=2,3"]
    args += ["--preset", "masked-ae", "--config", str(config)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "MSE, all entries" in printed and "MSE, non-zero entries" in printed

    table = pd.read_csv(out / "comparison.csv").set_index("latent_dim")
    assert "mse" not in table and "masked_mse" not in table  # the old, unclear names
    for d in (2, 3):
        row = table.loc[d]
        model = GeneAE.load(out / row["run"])
        x = dense(model.preprocess(adata).data.X)
        np.testing.assert_array_equal(x, dense(adata[:, model.genes].X))  # X as it is
        x_hat = np.asarray(model.reconstruct(adata, space="input"), dtype=np.float64)
        all_entries, nonzero = squared_errors(x, x_hat)
        assert row["mse_all_entries"] == pytest.approx(all_entries, rel=1e-5)
        assert row["mse_nonzero_entries"] == pytest.approx(nonzero, rel=1e-5)
        pca_all, pca_nonzero = squared_errors(x, pca_reconstruction(x, d))
        assert row["pca_mse_all_entries"] == pytest.approx(pca_all, rel=1e-4)
        assert row["pca_mse_nonzero_entries"] == pytest.approx(pca_nonzero, rel=1e-4)
        # The two differ: most entries are zeros, which the all-entries mean counts too.
        assert row["mse_nonzero_entries"] != pytest.approx(row["mse_all_entries"], rel=0.05)


def test_compare_refuses_to_replace_files_before_training(tmp_path, capsys) -> None:
    # A comparison's files (an earlier grid's, or the user's under those names) and the
    # settings' run folders are replaced only with --overwrite; checked before any training.
    from geneae.compare import check_outputs

    adata = datasets.lognorm_clusters(n_cells=60, n_genes=20, n_clusters=3, seed=3)
    data = tmp_path / "lognorm.h5ad"
    adata.write_h5ad(data)
    out = tmp_path / "cmp"
    out.mkdir()
    mine = out / "comparison.md"
    mine.write_text("my notes\n")
    args = ["compare", str(data), "--out", str(out), "--grid", "latent_dim=2,3"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "comparison.md" in err and "--overwrite" in err
    assert mine.read_text() == "my notes\n"
    assert sorted(p.name for p in out.iterdir()) == ["comparison.md"]  # nothing trained

    mine.unlink()
    (out / "latent_dim=3").mkdir()  # the second setting's folder holds the user's files
    (out / "latent_dim=3" / "notes.txt").write_text("mine\n")
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "latent_dim=3" in err and "not a geneae run" in err
    assert sorted(p.name for p in out.iterdir()) == ["latent_dim=3"]

    check_outputs(out, ["latent_dim=2", "latent_dim=3"], overwrite=True)  # allowed
