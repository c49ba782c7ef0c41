"""Concurrency: two writers of one run directory, and readers while a run is replaced."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import yaml
from reliability_helpers import FAST, assert_complete_run, geneae_cli, start


@pytest.fixture(scope="module")
def slow_yaml(tmp_path_factory):
    """Training that lasts a few seconds, so that a second writer meets the first."""
    values = {**FAST, "train": {**FAST["train"], "max_epochs": 25, "batch_size": 16}}
    path = tmp_path_factory.mktemp("slow") / "slow.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_two_writers_started_together_one_wins(cells, fast_yaml, tmp_path):
    """Both race for the lock: one run is written, the other refused with exit 2."""
    out = tmp_path / "run"
    procs = [start("train", cells, "--out", out, "--config", fast_yaml) for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "Traceback" not in loser
    assert "another geneae run is writing it" in loser or "already holds a run" in loser
    assert_complete_run(out)
    assert not (tmp_path / "run.lock").exists() and not (tmp_path / "run.partial").exists()


def test_second_writer_is_refused_while_the_first_runs(cells, slow_yaml, tmp_path):
    out = tmp_path / "run"
    first = start("train", cells, "--out", out, "--config", slow_yaml)
    lock = tmp_path / "run.lock"
    while not lock.exists():
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    for flags in (["--overwrite"], ["--resume"]):
        second = geneae_cli("train", cells, "--out", out, "--config", slow_yaml, *flags)
        assert second.code == 2, second
        assert f"pid {first.pid}" in second.error
    assert first.wait(timeout=300) == 0, first.communicate()
    assert_complete_run(out)


def test_readers_during_an_overwrite_see_a_whole_run_or_none(cells, fast_yaml, slow_yaml, tmp_path):
    """encode in a loop while --overwrite replaces the run among the user's files."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert geneae_cli("train", cells, "--out", out, "--config", fast_yaml, "--overwrite").code == 0
    writer = start("train", cells, "--out", out, "--config", slow_yaml, "--overwrite")
    codes = []
    while writer.poll() is None:
        result = geneae_cli("encode", out, cells, "--out", tmp_path / "latent.csv", "--overwrite")
        assert result.code in (0, 2), result
        if result.code == 0:
            assert pd.read_csv(tmp_path / "latent.csv", index_col=0).shape == (120, 2)
        else:
            assert "Traceback" not in result.err
        codes.append(result.code)
        time.sleep(0.2)  # leave the writer some of the CPU
    assert writer.wait() == 0, writer.communicate()
    assert codes and 0 in codes
    assert (out / "notes.txt").read_text() == "mine"
    assert_complete_run(out)
    history = pd.read_csv(out / "history.csv")
    assert np.array_equal(history["epoch"], np.arange(25))


def test_reader_of_a_run_still_being_written_is_refused(cells, slow_yaml, tmp_path):
    out = tmp_path / "run"
    writer = start("train", cells, "--out", out, "--config", slow_yaml)
    while not (tmp_path / "run.partial" / "checkpoints").exists():
        assert writer.poll() is None, writer.communicate()
        time.sleep(0.01)
    result = geneae_cli("encode", out, cells, "--out", tmp_path / "latent.csv")
    assert result.code == 2 and "a run is training it now" in result.error
    assert writer.wait(timeout=300) == 0
