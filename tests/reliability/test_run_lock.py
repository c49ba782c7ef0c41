"""Problem 3: one writer per run directory, and a user's folder is never written into.

The lock (``RUN.lock`` beside ``RUN``) is taken atomically, released however the run
ends (short of kill -9, for which the dead PID makes it stale), and a second writer is
refused with exit 2. ``--out`` naming a folder of the user's own files is refused unless
``--overwrite``, which then replaces geneae's files only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from reliability_helpers import SRC, assert_complete_run, child_env, geneae_cli, refused

import geneae.run
from geneae.runlock import RunLock


def write_lock(path, pid, *, host=None, start=None):
    record = {"pid": pid, "host": host or socket.gethostname(), "start": start, "since": "then"}
    path.write_text(json.dumps(record) + "\n")


@pytest.fixture
def sleeper():
    """A live process that is not geneae (holds a lock in these tests)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def nothing_written(tmp_path, name="run"):
    return not (tmp_path / name).exists() and not (tmp_path / f"{name}.partial").exists()


def test_lock_held_by_a_live_process_refuses_a_second_writer(cells, fast_yaml, tmp_path, sleeper):
    from geneae.runlock import _start_ticks

    lock = tmp_path / "run.lock"
    write_lock(lock, sleeper.pid, start=_start_ticks(sleeper.pid))
    before = lock.read_text()
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "another geneae run is writing it", f"pid {sleeper.pid}")
    assert lock.read_text() == before
    assert nothing_written(tmp_path)


def test_stale_lock_of_a_dead_process_is_taken_over(cells, fast_yaml, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(tmp_path / "run.lock", dead.pid)
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    assert result.code == 0, result
    assert_complete_run(tmp_path / "run")
    assert not (tmp_path / "run.lock").exists()


def test_lock_of_a_reused_pid_is_stale(cells, fast_yaml, tmp_path):
    """Our own PID with another start time: the lock's process is gone, the PID reused."""
    write_lock(tmp_path / "run.lock", os.getpid(), start="1")
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    assert result.code == 0, result


def test_lock_of_another_host_is_respected(cells, fast_yaml, tmp_path):
    write_lock(tmp_path / "run.lock", 1, host="another-machine")
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "another-machine")
    assert nothing_written(tmp_path)


def test_unreadable_lock_is_refused_with_the_fix(cells, fast_yaml, tmp_path):
    (tmp_path / "run.lock").write_bytes(os.urandom(64))
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "run.lock", "delete the lock file")


def test_lock_is_released_when_a_run_fails(cells, fast_yaml, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("a bug in evaluation")

    monkeypatch.setattr(geneae.run, "_evaluate_and_report", fail)
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    assert result.code == 1 and "a bug in evaluation" in result.err
    assert not (tmp_path / "run.lock").exists()
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    # Nothing blocks the next run (it discards the failed one's staging directory).
    assert geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml).code == 0


def test_concurrent_lock_attempts_have_one_winner(tmp_path):
    """Eight processes take the same lock at the same moment: exactly one gets it."""
    go = tmp_path / "go"
    script = (
        "import sys, time, pathlib\n"
        "from geneae.runlock import RunLock\n"
        "from geneae.errors import ModelFileError\n"
        "go = pathlib.Path(sys.argv[1]); out = pathlib.Path(sys.argv[2])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "try:\n"
        "    with RunLock(out.with_name('run.lock'), out): time.sleep(1.0); print('won')\n"
        "except ModelFileError: print('refused')\n"
    )
    env = child_env()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(go), str(tmp_path / "run")],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(8)
    ]
    time.sleep(1.0)
    go.touch()
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["refused"] * 7 + ["won"]
    assert not (tmp_path / "run.lock").exists()
    assert str(SRC) in env["PYTHONPATH"]


def test_lock_api_release_keeps_a_lock_that_is_not_ours(tmp_path):
    lock = RunLock(tmp_path / "run.lock", tmp_path / "run").acquire()
    write_lock(tmp_path / "run.lock", 12345, host="elsewhere")  # someone broke and took it
    lock.release()
    assert (tmp_path / "run.lock").exists()


def test_folder_of_user_files_is_refused_without_overwrite(cells, fast_yaml, tmp_path):
    mine = tmp_path / "mine"
    (mine / "figures").mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    (mine / "figures" / "my_plot.png").write_bytes(b"png")
    (mine / "checkpoints").mkdir()
    (mine / "checkpoints" / "my_model.pt").write_bytes(b"weights")
    mine_before = sorted(p.name for p in mine.rglob("*"))
    refused(geneae_cli("train", cells, "--out", mine, "--config", fast_yaml), "not a geneae run")
    assert sorted(p.name for p in mine.rglob("*")) == mine_before
    result = geneae_cli("train", cells, "--out", mine, "--config", fast_yaml, "--overwrite")
    assert result.code == 0, result
    assert (mine / "notes.txt").read_text() == "mine"
    assert (mine / "figures" / "my_plot.png").read_bytes() == b"png"
    assert (mine / "checkpoints" / "my_model.pt").read_bytes() == b"weights"
    assert not (mine / "checkpoints" / "last.ckpt").exists()
    assert_complete_run(mine)


def test_empty_folder_is_used(cells, fast_yaml, tmp_path):
    (tmp_path / "empty").mkdir()
    assert geneae_cli("train", cells, "--out", tmp_path / "empty", "--config", fast_yaml).code == 0
    assert_complete_run(tmp_path / "empty")


def test_out_that_is_a_file_is_refused(cells, fast_yaml, tmp_path):
    (tmp_path / "file").write_text("mine")
    refused(geneae_cli("train", cells, "--out", tmp_path / "file", "--config", fast_yaml), "file")
    refused(geneae_cli("train", cells, "--out", tmp_path / "file" / "run"), "is a file")
    assert (tmp_path / "file").read_text() == "mine"


def test_staging_name_taken_by_a_user_folder_is_refused(cells, fast_yaml, tmp_path):
    theirs = tmp_path / "run.partial"
    theirs.mkdir()
    (theirs / "data.csv").write_text("precious")
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "run.partial", "not a run that geneae was writing")
    assert (theirs / "data.csv").read_text() == "precious"
    assert not (tmp_path / "run.lock").exists()


@pytest.mark.parametrize("clash", ["figures-file", "report-folder"])
def test_overwrite_never_replaces_a_user_file_of_another_kind(clash, cells, fast_yaml, tmp_path):
    """A file named figures (or a folder named report.html) is the user's: refused, kept."""
    mine = tmp_path / "mine"
    mine.mkdir()
    if clash == "figures-file":
        (mine / "figures").write_text("my notes about figures")
    else:
        (mine / "report.html").mkdir()
        (mine / "report.html" / "index.html").write_text("mine")
    result = geneae_cli("train", cells, "--out", mine, "--config", fast_yaml, "--overwrite")
    refused(result, "of another kind")
    assert sorted(p.name for p in mine.iterdir()) == [
        "figures" if "figures" in clash else "report.html"
    ]
    assert not (tmp_path / "mine.partial").exists()


def test_stale_lock_beside_a_finished_run_is_cleared(cells, fast_yaml, tmp_path):
    """Killed after the move into place, before the lock went: the next train clears it."""
    out = tmp_path / "run"
    assert geneae_cli("train", cells, "--out", out, "--config", fast_yaml).code == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(tmp_path / "run.lock", dead.pid)
    refused(geneae_cli("train", cells, "--out", out, "--resume"), "nothing to resume")
    assert not (tmp_path / "run.lock").exists()
    assert_complete_run(out)


def test_an_empty_staging_folder_left_by_a_kill_does_not_block_the_next_run(
    cells, fast_yaml, tmp_path
):
    # A kill between creating RUN.partial and writing its marker leaves it empty (found by
    # the kill-at-each-stage test on a loaded machine): nothing in it can be lost.
    (tmp_path / "run.partial").mkdir()
    assert geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml).code == 0
    assert_complete_run(tmp_path / "run")
    # A staging folder with anything else in it is still refused, as before.
    other = tmp_path / "other.partial"
    other.mkdir()
    (other / "mine.txt").write_text("a user's file")
    refused(geneae_cli("train", cells, "--out", tmp_path / "other", "--config", fast_yaml))
    assert (other / "mine.txt").read_text() == "a user's file"


def test_overwriting_a_run_drops_its_figures_this_run_did_not_draw(cells, fast_yaml, tmp_path):
    run = tmp_path / "run"
    assert geneae_cli("train", cells, "--out", run, "--config", fast_yaml).code == 0
    assert not (run / "figures").exists()  # the report is off in this configuration
    # An earlier rendering's figure, and a figure of the user's, in the run's folder.
    (run / "figures").mkdir()
    (run / "figures" / "metrics_bars.png").write_bytes(b"png")
    (run / "figures" / "my_plot.png").write_bytes(b"mine")
    result = geneae_cli("train", cells, "--out", run, "--config", fast_yaml, "--overwrite")
    assert result.code == 0, result
    assert not (run / "figures" / "metrics_bars.png").exists()
    assert (run / "figures" / "my_plot.png").read_bytes() == b"mine"
    assert_complete_run(run)
