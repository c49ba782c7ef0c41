"""Problem 5: ``reconstruct`` returns the data's own units and says what they are.

Before, a Gaussian model's reconstruction came out as z-scores. Now the fitted scaling
and log1p are undone (and library-size normalisation, cell by cell), and the file names
its values. Gene loadings are signed and the report says so.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from reliability_helpers import FAST, counts_table, geneae_cli


def expression_table(path, n_samples=120, n_genes=30, seed=0):
    """Unlogged, non-integer expression (TPM-like) with three groups of samples."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 3, n_samples)
    base = rng.normal(3.0, 1.0, n_genes)
    shift = rng.normal(0.0, 1.0, (3, n_genes))
    values = np.exp(base + shift[groups] + rng.normal(0, 0.3, (n_samples, n_genes)))
    frame = pd.DataFrame(
        values.round(3),
        index=[f"s{i}" for i in range(n_samples)],
        columns=[f"G{j}" for j in range(n_genes)],
    )
    frame.to_csv(path)
    return frame


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "units.yaml"
    settings = {**FAST, "train": {**FAST["train"], "max_epochs": 30}}
    path.write_text(yaml.safe_dump(settings))
    return path


def test_gaussian_model_reconstructs_in_the_input_units(config, tmp_path):
    frame = expression_table(tmp_path / "tpm.csv")
    run = tmp_path / "run"
    assert geneae_cli("train", tmp_path / "tpm.csv", "--out", run, "--config", config).code == 0
    target = tmp_path / "denoised.csv"
    result = geneae_cli("reconstruct", run, tmp_path / "tpm.csv", "--out", target)
    assert result.code == 0, result
    assert "input units (unlogged expression)" in result.out
    denoised = pd.read_csv(target, index_col=0)
    assert denoised.index.name == "values: input units (unlogged expression)"
    assert (denoised.to_numpy() >= 0).all()
    means, observed = denoised.mean().to_numpy(), frame.mean().to_numpy()
    assert np.corrcoef(np.log(means), np.log(observed))[0, 1] > 0.9
    assert 0.5 < means.sum() / observed.sum() < 2.0  # z-scores would be about 0


def test_gaussian_model_on_counts_gives_expected_counts(config, tmp_path):
    table = counts_table()
    table.to_csv(tmp_path / "counts.csv")
    run = tmp_path / "run"
    args = ["--config", config, "--likelihood", "gaussian"]
    assert geneae_cli("train", tmp_path / "counts.csv", "--out", run, *args).code == 0
    target = tmp_path / "denoised.h5ad"
    assert geneae_cli("reconstruct", run, tmp_path / "counts.csv", "--out", target).code == 0
    denoised = ad.read_h5ad(target)
    assert denoised.uns["geneae"]["values"] == "expected counts"
    library = table.drop(columns="cell_type").sum(axis=1).to_numpy()
    totals = np.asarray(denoised.X).sum(axis=1)
    assert np.corrcoef(totals, library)[0, 1] > 0.9
    # A Gaussian of log values gives expm1 of the expected log, which lies below the mean
    # of sparse counts (Jensen): measured 0.48-0.51 of the library here; z-scores put back
    # without the inverse transform would be about 0.
    assert 0.3 < totals.sum() / library.sum() < 2.0


def test_each_space_names_its_values(report_run, cells, tmp_path):
    expected = {
        "values": "expected counts",
        "target": "expected counts",
        "input": "preprocessed model input (normalised to 10000 per cell, log1p",
    }
    for space, words in expected.items():
        target = tmp_path / f"{space}.csv"
        args = ["--out", target, "--space", space]
        assert geneae_cli("reconstruct", report_run, cells, *args).code == 0
        assert pd.read_csv(target, index_col=0).index.name.startswith(f"values: {words}")


def test_unknown_space_is_refused(report_run, cells, tmp_path):
    args = ["--out", tmp_path / "x.csv", "--space", "z"]
    result = geneae_cli("reconstruct", report_run, cells, *args)
    assert result.code == 2 and "--space" in result.error and "'z' is not one of" in result.error


def test_gene_loadings_are_signed_and_the_report_says_so(report_run):
    loadings = ad.read_h5ad(report_run / "results.h5ad").varm["geneae_loadings"]
    assert (loadings > 0).any() and (loadings < 0).any()
    html = (report_run / "report.html").read_text()
    assert "Loadings are signed" in html
    assert "mean |Jacobian|" not in html
