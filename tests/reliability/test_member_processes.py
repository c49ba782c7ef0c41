"""A run whose members train side by side, killed: its member processes go with it, and
the run resumes to completion (geneae.train.member_process)."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from reliability_helpers import (
    FAST,
    alive,
    assert_complete_run,
    child_env,
    command,
    counts_table,
    geneae_cli,
    refused,
    start,
)

from geneae.train.member_process import FORKS

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process tree from /proc"
)


def member_processes(parent: int) -> list[int]:
    """The live member processes of process ``parent`` (started first, before their jobs),
    and the copies they forked for their members."""
    found = []
    for pid in _children(parent):
        if b"geneae.train.member_child" in _cmdline(pid) and alive(pid):
            found.append(pid)
            found.extend(copy for copy in _children(pid) if alive(copy))
    return found


def _children(parent: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{parent}/task").glob("*"):
        try:
            found.extend(map(int, (task / "children").read_text().split()))
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_killed_run_takes_its_member_processes_and_resumes(tmp_path) -> None:
    cells = tmp_path / "cells.csv"
    counts_table(n_cells=400, n_genes=40).to_csv(cells)
    settings = {
        **FAST,
        "train": {**FAST["train"], "max_epochs": 40, "batch_size": 16, "num_threads": 2},
        "model": {**FAST["model"], "members": 2},
    }
    config = tmp_path / "members.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    proc = start("train", cells, "--out", out, "--config", config)
    children: list[int] = []
    training = out.with_name(out.name + ".partial") / "checkpoints" / "member1"
    deadline = time.monotonic() + 120
    # Killed once member 1 trains in its process (the process is started before the data
    # are read, and waits for its job until then; on Linux it trains each member in a copy
    # of itself, which must go too). With two threads both members train at once: the
    # process and two copies, one copy once member 0 is done; at least the process and
    # member 1's copy (waiting for exactly two missed the kill when the members finished
    # together).
    copies = 2 if FORKS else 1
    while proc.poll() is None and time.monotonic() < deadline:
        children = member_processes(proc.pid)
        if len(children) >= copies and training.exists():
            break
        time.sleep(0.05)
    assert len(children) >= copies, f"member processes: {children}"
    assert training.exists(), "member 1 did not start training"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in children)
    # Whatever the kill left, the run completes on --resume, or (killed before its first
    # resume point) --resume refuses cleanly and a new run takes its place.
    resumed = geneae_cli("train", cells, "--out", out, "--resume")
    if resumed.code != 0:
        refused(resumed)
        fresh = geneae_cli("train", cells, "--out", out, "--config", config)
        assert fresh.code == 0, fresh
    assert_complete_run(out)
    assert not out.with_name(out.name + ".lock").exists()


def test_the_first_members_progress_shows_on_the_runs_terminal(tmp_path) -> None:
    # On Linux every member trains in a copy of the member process; member 0's copy draws
    # the progress bar on the run's terminal, as the run's own process would.
    cells = tmp_path / "cells.csv"
    counts_table(n_cells=200, n_genes=30).to_csv(cells)
    settings = {
        **FAST,
        "train": {**FAST["train"], "max_epochs": 3, "num_threads": 2, "quiet": False},
        "model": {**FAST["model"], "members": 2},
    }
    config = tmp_path / "members.yaml"
    config.write_text(yaml.safe_dump(settings))
    leader, follower = pty.openpty()
    env = {**child_env(), "COLUMNS": "120"}
    env.pop("CI", None)  # CI=true switches the bar off
    args = ["train", cells, "--out", tmp_path / "run", "--config", config]
    proc = subprocess.Popen(command(*args), env=env, stdout=follower, stderr=follower)
    os.close(follower)
    shown = bytearray()
    with contextlib.suppress(OSError):  # EIO once every writer has closed the terminal
        while chunk := os.read(leader, 65536):
            shown += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0, shown.decode(errors="replace")[-2000:]
    assert b"Epoch 2/2" in shown
