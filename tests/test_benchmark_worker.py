"""The harness's worker processes (benchmarks/common.py ``run_worker``)."""

import os
import subprocess
import sys
import tempfile

from benchmarks.common import WORKER_FOLDER, run_worker
from geneae.train.member_folders import folder_prefix


def test_a_worker_folder_a_killed_harness_left_is_removed_by_the_next(tmp_path, monkeypatch):
    """The harness keeps a worker's spec and result in a folder named by its pid; a harness
    killed mid-run leaves it, and the next worker the next harness starts removes it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    ours = folder_prefix(WORKER_FOLDER).removesuffix(f"{os.getpid()}-")
    killed = tmp_path / f"{ours}{ended.pid}-abc"
    killed.mkdir()
    (killed / "spec.json").write_text("{}")
    result, error = run_worker({"task": "none"}, log_path=tmp_path / "w.log", timeout=60)
    assert result is not None and result["status"] == "failed" and "unknown task" in error
    assert not killed.exists()
    assert not list(tmp_path.glob(f"{WORKER_FOLDER}*")), "the worker's own folder stays"
