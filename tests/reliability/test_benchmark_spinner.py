"""The busy-machine benchmark's spinning process ends with the benchmark, however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from reliability_helpers import alive, child_env


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK")  # utime: field 14 of stat(5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_the_spinner_dies_with_a_killed_benchmark() -> None:
    # Stands in for `python -m benchmarks speed` killed (SIGKILL) during its busy part.
    code = (
        "import time\n"
        "from benchmarks.wallclock import _spinner\n"
        "print(_spinner(0).pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    bench = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=child_env())
    assert bench.stdout is not None
    spinner = int(bench.stdout.readline())
    # Spinning (so past setting its death signal, the first thing it does): half a second
    # of CPU, more than a start-up takes.
    deadline = time.monotonic() + 60
    while _cpu_seconds(spinner) < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(spinner) and _cpu_seconds(spinner) >= 0.5
    bench.send_signal(signal.SIGKILL)
    bench.wait(timeout=30)
    deadline = time.monotonic() + 30
    while alive(spinner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(spinner)
