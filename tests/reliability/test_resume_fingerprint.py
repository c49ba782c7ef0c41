"""Problem 2: ``--resume`` checks the data and the settings against the interrupted run.

An interrupted run is made once (interrupted as Ctrl-C would, at evaluation, after its
checkpoints exist) and copied for each test.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from reliability_helpers import assert_complete_run, geneae_cli, refused

import geneae.run

# The tests copy an interrupted run to a new folder; Lightning notes the moved checkpoints.
pytestmark = pytest.mark.filterwarnings("ignore:The dirpath has changed")


@pytest.fixture(scope="module")
def interrupted(cells, fast_yaml, tmp_path_factory):
    """The staging directory of a run interrupted (KeyboardInterrupt) after training."""
    root = tmp_path_factory.mktemp("interrupted")
    patch = pytest.MonkeyPatch()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    patch.setattr(geneae.run, "_evaluate_and_report", interrupt)
    try:
        result = geneae_cli("train", cells, "--out", root / "run", "--config", fast_yaml)
    finally:
        patch.undo()
    assert result.code == 130, result
    assert "--resume" in result.err
    staging = root / "run.partial"
    assert (staging / "checkpoints" / "last.ckpt").is_file()
    assert not (root / "run").exists() and not (root / "run.lock").exists()
    return staging


@pytest.fixture
def run(interrupted, tmp_path):
    """A fresh copy of the interrupted run: its --out (absent) beside its staging copy."""
    shutil.copytree(interrupted, tmp_path / "run.partial")
    return tmp_path / "run"


def test_resume_with_the_same_data_completes(run, cells, fast_yaml):
    assert geneae_cli("train", cells, "--out", run, "--resume").code == 0
    assert_complete_run(run)
    assert len(pd.read_csv(run / "history.csv")) == 2
    assert not (run.parent / "run.partial").exists()


def test_resume_may_repeat_the_settings(run, cells, fast_yaml):
    result = geneae_cli("train", cells, "--out", run, "--resume", "--config", fast_yaml)
    assert result.code == 0, result
    assert_complete_run(run)


def test_resume_with_other_data_is_refused(run, cells, tmp_path):
    table = pd.read_csv(cells, index_col=0)
    variants = {
        "fewer": table.iloc[:100],
        "renamed": table.rename(columns={"gene_0003": "gene_x"}),
        "values": table.assign(gene_0000=table["gene_0000"] + 1),
        "cells": table.rename(index={table.index[0]: "someone_else"}),
    }
    expected = {
        "fewer": "100 x 30 instead of 120 x 30",
        "renamed": "other gene names",
        "values": "other values",
        "cells": "other cell names",
    }
    for name, frame in variants.items():
        path = tmp_path / f"{name}.csv"
        frame.to_csv(path)
        refused(geneae_cli("train", path, "--out", run, "--resume"), expected[name], str(path))
    assert (run.parent / "run.partial" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--epochs", "5"], "train.max_epochs = 5"),
        (["--latent-dim", "3"], "model.latent_dim = 3"),
        (["--likelihood", "poisson"], "model.likelihood = 'poisson'"),
        (["--preset", "deep-ae"], "preset = 'deep-ae'"),
    ],
)
def test_resume_with_other_settings_is_refused(run, cells, flags, named):
    refused(geneae_cli("train", cells, "--out", run, "--resume", *flags), named)


def test_resume_may_change_how_the_run_is_carried_out(run, cells, fast_yaml, tmp_path):
    # Threads, the device, the progress bar and the checkpoints' interval say how a run is
    # carried out, not what it learns: continue on another machine, or without the bar.
    settings = yaml.safe_load(fast_yaml.read_text())
    settings["train"]["checkpoint_interval_s"] = 30
    path = tmp_path / "how.yaml"
    path.write_text(yaml.safe_dump(settings))
    flags = ["--threads", "1", "--device", "cpu", "--config", path]
    result = geneae_cli("train", cells, "--out", run, "--resume", *flags)
    assert result.code == 0, result
    assert_complete_run(run)
    saved = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert saved["num_threads"] == 1 and saved["accelerator"] == "cpu"
    assert saved["checkpoint_interval_s"] == 30


def test_resume_names_only_the_settings_that_may_not_change(run, cells):
    result = geneae_cli(
        "train", cells, "--out", run, "--resume", "--threads", "1", "--latent-dim", "3"
    )
    message = refused(result, "model.latent_dim = 3")
    assert "num_threads" not in message


def test_resume_with_another_yaml_is_refused(run, cells, fast_yaml, tmp_path):
    other = yaml.safe_load(fast_yaml.read_text())
    other["model"]["hidden"] = [8]
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(other))
    refused(geneae_cli("train", cells, "--out", run, "--resume", "--config", path), "hidden")


def test_edited_config_of_the_interrupted_run_is_refused(run, cells):
    config = run.parent / "run.partial" / "config.yaml"
    config.write_text(config.read_text().replace("latent_dim: 2", "latent_dim: 3"))
    refused(geneae_cli("train", cells, "--out", run, "--resume"), "changed since")


def test_damaged_fingerprint_is_refused(run, cells):
    (run.parent / "run.partial" / "fingerprint.json").write_text("{not json")
    refused(geneae_cli("train", cells, "--out", run, "--resume"), "fingerprint.json")


def test_fingerprint_is_kept_in_the_finished_run(run, cells):
    assert geneae_cli("train", cells, "--out", run, "--resume").code == 0
    record = json.loads((run / "fingerprint.json").read_text())
    assert record["data"]["n_obs"] == 120 and record["data"]["n_vars"] == 30


def test_nothing_to_resume(cells, fast_yaml, tmp_path):
    refused(geneae_cli("train", cells, "--out", tmp_path / "new", "--resume"), "nothing to resume")
    done = tmp_path / "done"
    assert geneae_cli("train", cells, "--out", done, "--config", fast_yaml).code == 0
    refused(geneae_cli("train", cells, "--out", done, "--resume"), "complete")


def test_new_run_without_resume_discards_the_interrupted_one(run, cells, fast_yaml):
    result = geneae_cli("train", cells, "--out", run, "--config", fast_yaml)
    assert result.code == 0, result
    assert "geneae: warning: discarding the interrupted run" in result.err
    assert_complete_run(run)
    assert not (run.parent / "run.partial").exists()


def test_fingerprint_reads_a_sample_of_rows_the_same_from_memory_or_disk(tmp_path):
    import anndata as ad
    import numpy as np

    from geneae import datasets
    from geneae.fingerprint import SAMPLE_ROWS, data_fingerprint, sample_rows

    rows = sample_rows(10**7)
    assert len(rows) == SAMPLE_ROWS and rows[0] == 0 and rows[-1] == 10**7 - 1
    adata = datasets.synthetic_counts(n_cells=3000, n_genes=20, n_clusters=3, seed=0)
    adata.write_h5ad(tmp_path / "a.h5ad")
    backed = ad.read_h5ad(tmp_path / "a.h5ad", backed="r")
    assert data_fingerprint(backed) == data_fingerprint(adata)
    sampled = int(sample_rows(3000)[1])
    changed = adata.copy()
    changed.X[sampled] = changed.X[sampled] * 2
    assert data_fingerprint(changed)["values_sha256"] != data_fingerprint(adata)["values_sha256"]
    unsampled = int(np.setdiff1d(np.arange(3000), sample_rows(3000))[0])
    changed = adata.copy()
    changed.X[unsampled] = changed.X[unsampled] * 2  # the documented blind spot
    assert data_fingerprint(changed)["values_sha256"] == data_fingerprint(adata)["values_sha256"]
