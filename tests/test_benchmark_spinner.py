"""The busy-machine benchmark's spinning process ends with the benchmark, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended: only its exit status is left for its (new) parent to collect.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK")  # utime: field 14 of stat(5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_the_spinner_dies_with_a_killed_benchmark() -> None:
    # Stands in for `python -m benchmarks speed` killed (SIGKILL) during its busy part.
    code = (
        "import sys, time\n"
        "from benchmarks.wallclock import _spinner\n"
        "spinner = _spinner(0)\n"
        "print(spinner.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    bench = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert bench.stdout is not None
    spinner = int(bench.stdout.readline())
    # Spinning (so past setting its death signal, the first thing it does): half a second
    # of CPU, more than a start-up takes.
    deadline = time.monotonic() + 60
    while _cpu_seconds(spinner) < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(spinner) and _cpu_seconds(spinner) >= 0.5
    bench.send_signal(signal.SIGKILL)
    bench.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(spinner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(spinner)
