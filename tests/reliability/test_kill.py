"""Fault injection: ``geneae train`` killed with SIGKILL (or SIGTERM) at every stage.

A real ``python -m geneae train`` subprocess on tiny data is killed while it preprocesses,
trains, evaluates, renders the report and saves (each found by waiting for the line or
file that stage produces, then a delay from a seeded RNG), and at seeded random times.
Afterwards the run directory must be complete and loadable, or absent with an interrupted
run that ``--resume`` completes (or, killed before there was anything to resume, that
``--resume`` refuses cleanly and a new run replaces): never half-valid, never a lock or
staging directory that blocks the next run.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from reliability_helpers import FAST, assert_complete_run, geneae_cli, refused, start

EPOCHS = 10
SEED = 20240615


def settings(folder: Path, *, report: bool) -> Path:
    """Long enough to be caught in each stage: 10 epochs of 8 small batches."""
    values = {
        **FAST,
        "train": {**FAST["train"], "max_epochs": EPOCHS, "batch_size": 16},
        "evaluate": {**FAST["evaluate"], "report": report},
    }
    path = folder / f"kill_report_{report}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def kill_yaml(tmp_path_factory) -> Path:
    return settings(tmp_path_factory.mktemp("kill"), report=False)


@pytest.fixture(scope="module")
def report_yaml(tmp_path_factory) -> Path:
    """With the report (only the kill during the report needs it: it takes seconds)."""
    return settings(tmp_path_factory.mktemp("kill"), report=True)


class Watched:
    """A running ``geneae train`` whose stdout lines are collected as they come."""

    def __init__(self, *args: object, **popen: object) -> None:
        self.proc = start(*args, **popen)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, ready: Callable[[], bool], timeout: float = 240) -> bool:
        """Poll ``ready`` until it holds (True) or the process ends first (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            if self.proc.poll() is not None:
                return ready()
            time.sleep(0.005)
        raise AssertionError("the stage never came")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=120)
        self._reader.join(timeout=10)
        self.proc.stderr.close()
        return code


def history_rows(path: Path) -> int:
    try:
        return len(pd.read_csv(path))
    except Exception:  # noqa: BLE001 - absent or being replaced: not there yet
        return 0


def stage_ready(stage: str, watched: Watched, staging: Path) -> Callable[[], bool]:
    """What shows that ``stage`` has begun."""
    return {
        "preprocessing": lambda: any("preprocessing preset" in line for line in watched.lines),
        "training": lambda: (staging / "checkpoints" / "last.ckpt").is_file(),
        "evaluation": lambda: history_rows(staging / "history.csv") >= EPOCHS,
        "report": lambda: (staging / "results.h5ad").is_file(),
        "saving": lambda: (staging / "weights.safetensors").is_file(),
    }[stage]


def check_recovery(cells: Path, out: Path, kill_yaml: Path) -> str:
    """The state a kill left is recoverable; return which recovery was taken.

    The recovery runs in this process (the kill needed a subprocess; this does not).
    """
    staging = out.with_name(out.name + ".partial")
    resumable = (staging / "fingerprint.json").is_file()
    if out.exists():
        assert_complete_run(out)  # a run directory is never half-valid
        assert not staging.exists()
        refused(geneae_cli("train", cells, "--out", out, "--resume"), "nothing to resume")
        # Killed in the last instant, after the run moved into place: the resume
        # checkpoints may still be in it (harmless: the run is complete and loads).
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        how = "complete"
    else:
        resumed = geneae_cli("train", cells, "--out", out, "--resume")
        if resumable:
            assert resumed.code == 0, resumed
            how = "resumed"
        else:
            refused(resumed)
            fresh = geneae_cli("train", cells, "--out", out, "--config", kill_yaml)
            assert fresh.code == 0, fresh
            how = "restarted"
        assert_complete_run(out)
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(EPOCHS))
    assert not staging.exists()
    assert not out.with_name(out.name + ".lock").exists()
    assert not (out / "checkpoints").exists()
    return how


@pytest.mark.parametrize("stage", ["preprocessing", "training", "evaluation", "report", "saving"])
def test_kill_at_each_stage(stage, cells, kill_yaml, report_yaml, tmp_path):
    rng = random.Random(f"{SEED}-{stage}")
    out = tmp_path / "run"
    if stage == "report":
        kill_yaml = report_yaml
    watched = Watched("train", cells, "--out", out, "--config", kill_yaml)
    reached = watched.wait_for(stage_ready(stage, watched, out.with_name("run.partial")))
    if reached and stage in ("training", "report"):
        time.sleep(rng.uniform(0.0, 0.5))
    code = watched.kill()
    assert code in (-signal.SIGKILL, 0), code
    how = check_recovery(cells, out, kill_yaml)
    if stage in ("training", "evaluation", "report"):
        assert how == "resumed"
    print(f"killed at {stage}: {how}")


@pytest.mark.parametrize("draw", range(2))
def test_kill_at_random_times(draw, cells, kill_yaml, tmp_path):
    delay = random.Random(SEED + draw).uniform(3.0, 12.0)
    out = tmp_path / "run"
    watched = Watched("train", cells, "--out", out, "--config", kill_yaml)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and watched.proc.poll() is None:
        time.sleep(0.01)
    watched.kill()
    print(f"killed after {delay:.1f} s: {check_recovery(cells, out, kill_yaml)}")


def test_sigterm_releases_the_lock_and_resume_completes(cells, kill_yaml, tmp_path):
    out = tmp_path / "run"
    watched = Watched("train", cells, "--out", out, "--config", kill_yaml)
    watched.wait_for(stage_ready("training", watched, out.with_name("run.partial")))
    code = watched.kill(signal.SIGTERM)
    if code == 0:  # finished before the signal landed
        assert_complete_run(out)
        return
    assert code == 128 + signal.SIGTERM
    assert not out.with_name("run.lock").exists()
    assert check_recovery(cells, out, kill_yaml) == "resumed"


@pytest.mark.parametrize("members", [1, 2])
def test_ctrl_c_in_training_exits_130_and_resume_completes(members, cells, kill_yaml, tmp_path):
    # Ctrl-C reaches the whole process group (member processes included); Lightning's own
    # answer to it was exit code 1, without a word.
    config = yaml.safe_load(kill_yaml.read_text())
    config["model"]["members"] = members
    path = tmp_path / "ctrl_c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    watched = Watched("train", cells, "--out", out, "--config", path, start_new_session=True)
    watched.wait_for(stage_ready("training", watched, out.with_name("run.partial")))
    if watched.proc.poll() is None:
        os.killpg(watched.proc.pid, signal.SIGINT)
    code = watched.proc.wait(timeout=120)
    err = watched.proc.stderr.read()
    watched.proc.stderr.close()
    if code == 0:  # finished before the signal landed
        assert_complete_run(out)
        return
    assert code == 130, (code, err)
    assert "interrupted" in err and "--resume" in err
    assert not out.with_name("run.lock").exists()
    assert check_recovery(cells, out, path) == "resumed"
