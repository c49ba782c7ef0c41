"""Problem 4: bad data and devices are refused before anything is written.

A table too small to train on, a device that is not there, a damaged preprocessor file:
exit 2 with one line, and no run directory, staging directory or lock left behind. A run
that fails later leaves only its staging directory, which blocks nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from reliability_helpers import FAST, assert_complete_run, child_env, geneae_cli, refused

from geneae.model import GeneAE


def table(path, n_cells, n_genes, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.poisson(5, size=(n_cells, n_genes)) + 1,
        index=[f"c{i}" for i in range(n_cells)],
        columns=[f"G{j}" for j in range(n_genes)],
    )
    frame.to_csv(path)
    return path


def leaves_nothing(tmp_path):
    """Nothing in ``tmp_path`` but the test's own inputs (its tables and settings)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.suffix not in (".csv", ".yaml")) == []


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ((1, 30), "at least 2 training cells"),
        ((2, 30), "at least 2 training cells"),
        ((50, 1), "fewer genes than latent_dim=2"),
        ((2, 1), "training cells"),
    ],
    ids=["one-cell", "two-cells", "one-gene", "one-by-one"],
)
def test_too_small_tables_are_refused_before_writing(shape, fragment, fast_yaml, tmp_path):
    data = table(tmp_path / "small.csv", *shape)
    result = geneae_cli("train", data, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, fragment, "small.csv")
    assert leaves_nothing(tmp_path)


def test_an_ensemble_wider_than_the_data_is_refused_with_fixes_that_fit(fast_yaml, tmp_path):
    # 3 members x latent_dim 4 = 12 dimensions, on 8 cells: each latent alone would fit.
    data = table(tmp_path / "eight.csv", 8, 30)
    settings = yaml.safe_load(fast_yaml.read_text())
    settings["model"].update(members=3, latent_dim=4)
    config = tmp_path / "three.yaml"
    config.write_text(yaml.safe_dump(settings))
    result = geneae_cli("train", data, "--out", tmp_path / "run", "--config", config)
    refused(result, "fewer cells than the 12 dimensions of 3 members x latent_dim 4", "eight.csv")
    assert "--latent-dim 2 or less, or --members 1 with --latent-dim 8 or less" in result.err
    assert leaves_nothing(tmp_path)
    settings["model"].update(latent_dim=2)  # the fix the message gives trains
    config.write_text(yaml.safe_dump(settings))
    result = geneae_cli("train", data, "--out", tmp_path / "run", "--config", config)
    assert result.code == 0, result


@pytest.mark.parametrize(("n_samples", "members"), [(24, 2), (12, 1)])
def test_a_small_cohort_trains_as_many_members_as_it_holds(n_samples, members, fast_yaml, tmp_path):
    # Members left to the default: three latents of 10 side by side need 30 samples.
    data = table(tmp_path / "cohort.csv", n_samples, 30)
    settings = yaml.safe_load(fast_yaml.read_text())
    del settings["model"]["members"]
    settings["model"]["latent_dim"] = 10
    config = tmp_path / "default_members.yaml"
    config.write_text(yaml.safe_dump(settings))
    result = geneae_cli("train", data, "--out", tmp_path / "run", "--config", config)
    assert result.code == 0, result
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["model"]["members"] == members


def test_three_cells_train(fast_yaml, tmp_path):
    data = table(tmp_path / "three.csv", 3, 30)
    result = geneae_cli("train", data, "--out", tmp_path / "run", "--config", fast_yaml)
    assert result.code == 0, result


def test_batch_of_one_with_batch_norm_is_refused(cells, fast_yaml, tmp_path):
    args = ["--config", fast_yaml, "--batch-size", "1"]
    refused(geneae_cli("train", cells, "--out", tmp_path / "run", *args), "--batch-size 1")
    assert leaves_nothing(tmp_path)


def test_device_that_is_not_there_is_refused(cells, fast_yaml, tmp_path):
    missing = "mps" if torch.cuda.is_available() else "cuda"  # never both on one machine
    args = ["--config", fast_yaml, "--device", missing]
    result = geneae_cli("train", cells, "--out", tmp_path / "run", *args)
    refused(result, f"--device (train.accelerator) '{missing}'")
    assert leaves_nothing(tmp_path)


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("train: {devices: 0}", "train.devices 0"),
        ("train: {strategy: warp-drive}", "warp-drive"),
        ("evaluate: {n_clusters: 500}", "n_clusters"),
    ],
)
def test_bad_hardware_and_evaluation_settings(yaml_text, fragment, cells, fast_yaml, tmp_path):
    merged = tmp_path / "merged.yaml"
    base = yaml.safe_load(fast_yaml.read_text())
    extra = yaml.safe_load(yaml_text)
    for section, values in extra.items():
        base.setdefault(section, {}).update(values)
    merged.write_text(yaml.safe_dump(base))
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", merged)
    refused(result, fragment)
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


@pytest.fixture(scope="module")
def trained(cells, fast_yaml, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    assert geneae_cli("train", cells, "--out", run, "--config", fast_yaml).code == 0
    return run


@pytest.mark.parametrize("checksums", [True, False], ids=["checked", "legacy"])
def test_random_bytes_preprocessor_is_refused(trained, cells, tmp_path, checksums):
    copy = tmp_path / "model"
    shutil.copytree(trained, copy)
    (copy / "preprocessor.json").write_bytes(os.urandom(2048))
    if not checksums:  # a model saved before checksums: the parser must refuse it itself
        (copy / "checksums.sha256").unlink()
    result = geneae_cli("encode", copy, cells, "--out", tmp_path / "latent.csv")
    refused(result, "preprocessor.json")
    assert not (tmp_path / "latent.csv").exists()


def test_failed_run_leaves_nothing_that_blocks_the_next(cells, fast_yaml, tmp_path, monkeypatch):
    def fail(self, *args, **kwargs):
        raise RuntimeError("training diverged")

    monkeypatch.setattr(GeneAE, "train", fail)
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    assert result.code == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.lock").exists()
    monkeypatch.undo()
    assert geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml).code == 0
    assert_complete_run(tmp_path / "run")
    assert not (tmp_path / "run.partial").exists()


def test_all_zero_table_says_the_data_are_empty(fast_yaml, tmp_path):
    zeros = tmp_path / "zeros.csv"
    pd.DataFrame(np.zeros((40, 20), dtype=int), columns=[f"G{j}" for j in range(20)]).to_csv(zeros)
    line = refused(geneae_cli("train", zeros, "--out", tmp_path / "run", "--config", fast_yaml))
    assert "every value is 0" in line and "zeros.csv" in line
    assert "lower" not in line
    assert leaves_nothing(tmp_path)


def test_settings_lightning_cannot_refuse_are_not_checked_by_importing_it(in_fresh_interpreter):
    # One device of the CPU, at every precision geneae offers, is taken by Lightning; asking
    # would import it (seconds) in a run whose members train in processes of their own.
    code = (
        "import sys\n"
        "from geneae.config import TrainConfig\n"
        "from geneae.preflight import check_hardware\n"
        "for precision in ('auto', '32', 'bf16-mixed', '16-mixed'):\n"
        "    check_hardware(TrainConfig(accelerator='cpu', precision=precision))\n"
        "assert 'lightning' not in sys.modules\n"
        "check_hardware(TrainConfig(accelerator='cpu', devices=2))\n"
        "assert 'lightning' in sys.modules\n"
    )
    in_fresh_interpreter(code)


def test_a_run_without_its_report_imports_neither_lightning_nor_matplotlib_itself(cells, tmp_path):
    # Its members train in a process of their own (geneae.train.member_process) and its
    # report is off: the run's own process needs neither (seconds of start-up between them).
    # Two threads given: the threads a run takes by default follow the machine's load, and
    # one thread trains the members one after the other, the first in the run's process.
    settings = {
        **FAST,
        "model": {**FAST["model"], "members": 2},
        "train": {**FAST["train"], "num_threads": 2},
    }
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    args = ["-X", "importtime", "-m", "geneae", "train", str(cells), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, *args, "--config", str(config)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "geneae.run" in imported  # the listing is the run's own process's
    assert not {"lightning", "matplotlib"} & imported
    assert (out / "config.yaml").is_file() and not (out / "figures").exists()
