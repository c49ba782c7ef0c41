"""Problem 1: labels are for evaluation only; encode / reconstruct never need them.

A model trained with ``--labels cell_type`` or ``--labels-file`` encodes and reconstructs
new files that have no such column, or another number of cells; a relative labels path
is never stored, so the run works from any directory; ``evaluate`` takes labels
explicitly (and needs none).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from reliability_helpers import counts_table, geneae_cli, refused


@pytest.fixture(scope="module")
def new_file(tmp_path_factory):
    """50 new cells, no label column (another length than the 120 training cells)."""
    path = tmp_path_factory.mktemp("new") / "new.csv"
    counts_table(n_cells=50, seed=1).drop(columns="cell_type").to_csv(path)
    return path


@pytest.fixture(scope="module")
def column_run(cells, fast_yaml, tmp_path_factory):
    run = tmp_path_factory.mktemp("column") / "run"
    args = ["--config", fast_yaml, "--labels", "cell_type"]
    result = geneae_cli("train", cells, "--out", run, *args)
    assert result.code == 0, result
    return run


@pytest.fixture(scope="module")
def file_run(cells, fast_yaml, data_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("file") / "run"
    args = ["--labels-file", data_dir / "labels.txt"]
    result = geneae_cli("train", cells, "--out", run, "--config", fast_yaml, *args)
    assert result.code == 0, result
    return run


@pytest.mark.parametrize("which", ["column_run", "file_run"])
def test_encode_and_reconstruct_new_data_without_labels(which, new_file, tmp_path, request):
    run = request.getfixturevalue(which)
    latent = tmp_path / "latent.csv"
    assert geneae_cli("encode", run, new_file, "--out", latent).code == 0
    assert pd.read_csv(latent, index_col=0).shape == (50, 2)
    denoised = tmp_path / "denoised.csv"
    assert geneae_cli("reconstruct", run, new_file, "--out", denoised).code == 0
    assert pd.read_csv(denoised, index_col=0).shape == (50, 30)


def test_label_column_is_taken_out_of_new_data_that_has_it(column_run, cells, tmp_path):
    latent = tmp_path / "latent.csv"
    assert geneae_cli("encode", column_run, cells, "--out", latent).code == 0
    assert pd.read_csv(latent, index_col=0).shape == (120, 2)


def test_labels_file_is_not_stored_in_the_config(file_run):
    saved = yaml.safe_load((file_run / "config.yaml").read_text())
    assert saved["data"]["label_column"] is None
    metrics = json.loads((file_run / "metrics.json").read_text())
    assert set(metrics["data"]["labels"]) == {"cluster_0", "cluster_1", "cluster_2"}


def test_relative_labels_path_works_from_another_directory(
    cells, fast_yaml, data_dir, new_file, tmp_path, monkeypatch
):
    """``--labels labels.txt`` (a file, relative) is a labels file: config.yaml keeps no path."""
    monkeypatch.chdir(data_dir)
    run = tmp_path / "run"
    args = ["--config", fast_yaml, "--labels", "labels.txt"]
    result = geneae_cli("train", cells, "--out", run, *args)
    assert result.code == 0, result
    assert "labels.txt" not in (run / "config.yaml").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert geneae_cli("encode", run, new_file, "--out", "latent.csv").code == 0
    assert geneae_cli("evaluate", run, new_file, "--out", "eval.json").code == 0


def test_evaluate_needs_no_labels_and_takes_them_explicitly(column_run, new_file, tmp_path):
    result = geneae_cli("evaluate", column_run, new_file, "--out", tmp_path / "none.json")
    assert result.code == 0, result
    labelled = tmp_path / "labelled.csv"
    table = counts_table(n_cells=60, seed=2)
    table.rename(columns={"cell_type": "truth"}).to_csv(labelled)
    target = tmp_path / "with.json"
    result = geneae_cli("evaluate", column_run, labelled, "--labels", "truth", "--out", target)
    assert result.code == 0, result
    metrics = json.loads(target.read_text())
    assert np.isfinite(metrics["comparison"]["geneae"]["ari"])


def test_explicit_labels_that_are_missing_are_an_error(column_run, new_file, tmp_path):
    refused(geneae_cli("evaluate", column_run, new_file, "--labels", "truth"), "'truth'")
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    refused(geneae_cli("evaluate", column_run, new_file, "--labels-file", short), "2 lines")


@pytest.mark.filterwarnings("always::geneae.errors.DataWarning")  # the CLI prints it
def test_cells_without_a_label_are_scored_out_and_said_so(data_dir, tmp_path):
    """Blank labels are not a class of their own: one warning line, the label metrics on
    the labelled cells, the report drawing the others as '(missing)'."""
    import anndata as ad

    from geneae.pl._style import categories
    from geneae.report.results import load_results

    table = counts_table()
    table.loc[table.index[:15], "cell_type"] = np.nan
    data = tmp_path / "partly.csv"
    table.to_csv(data)
    run = tmp_path / "run"
    args = ["--config", data_dir / "fast_report.yaml", "--labels", "cell_type"]
    result = geneae_cli("train", data, "--out", run, *args)
    assert result.code == 0, result
    assert "15 of 120 cells have no label" in result.err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["comparison"]["n_labelled"] == 105
    assert metrics["data"]["unlabelled"] == 15 and "nan" not in metrics["data"]["labels"]
    assert metrics["comparison"]["clustering"]["n_clusters"] == table["cell_type"].nunique()
    obs = ad.read_h5ad(run / "results.h5ad").obs
    assert obs["label"].isna().sum() == 15
    names, codes = categories(load_results(run).labels)  # as the report's figures draw them
    assert names[-1] == "(missing)" and (codes == len(names) - 1).sum() == 15
    assert (run / "report.html").is_file()
