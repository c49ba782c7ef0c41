"""geneae.allocator: its processes keep freed memory for reuse instead of faulting it in again."""

from __future__ import annotations

import io
import os
import platform
import subprocess
import sys

import pytest

from geneae import allocator

# Three 4 MB arrays made and freed, again and again: with glibc's own limits the 12 MB freed
# at the top of its heap are handed back each time and about 4 MB of it faults in again.
FAULTS_SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from geneae.allocator import keep_freed_memory
    assert keep_freed_memory()
def round_trip():
    arrays = [np.ones(1 << 20, np.float32) for _ in range(3)]
    del arrays
for _ in range(5):
    round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_trip()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def faults_per_round(mode: str, env: dict[str, str] | None = None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_SCRIPT, mode],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return float(out.stdout.strip())


@glibc
def test_freed_memory_is_reused_without_page_faults():
    default = faults_per_round("default")
    kept = faults_per_round("keep")
    assert default > 500  # the pattern does fault under glibc's own limits (~1,000 pages)
    assert kept < 0.05 * default


@pytest.mark.parametrize(
    ("environ", "chose"),
    [
        ({}, False),
        ({"MALLOC_ARENA_MAX": "2"}, False),
        ({"MALLOC_TOP_PAD_": "131072"}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, True),
        ({"GLIBC_TUNABLES": "glibc.cpu.x=1:glibc.malloc.mmap_threshold=9"}, True),
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, True),
        ({"MALLOC_TRIM_THRESHOLD_": "131072"}, True),
    ],
)
def test_a_users_own_thresholds_are_left_alone(environ, chose):
    assert allocator.user_chose_malloc_limits(environ) is chose


@glibc
def test_a_user_threshold_keeps_the_setting_off():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "1"}
    script = "from geneae.allocator import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "False"


def test_the_command_and_the_member_processes_set_it(monkeypatch):
    import geneae.cli as cli
    import geneae.train.member_child as member_child

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("cli"))
    monkeypatch.setattr(cli, "exit_quickly", lambda code: calls.append(("exit", code)))
    monkeypatch.setattr(sys, "argv", ["geneae", "--version"])
    cli.run()
    assert calls[0] == "cli" and calls[-1] == ("exit", 0)

    monkeypatch.setattr(member_child, "keep_freed_memory", lambda: calls.append("member"))
    monkeypatch.setattr(member_child, "_die_with_parent", lambda pid: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no job: the process ends quietly
    assert member_child.main(["1"]) == 0
    assert calls[-1] == "member"


@pytest.mark.parametrize("libc", ["musl", "none"])
def test_other_c_libraries_are_left_alone(monkeypatch, libc):
    class Musl:  # a C library with mallopt but not glibc's version call
        def mallopt(self, *args):  # pragma: no cover - must not be reached
            raise AssertionError("mallopt called outside glibc")

    def cdll(name):
        if libc == "none":
            raise OSError("no C library to open")
        return Musl()

    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setattr(allocator, "user_chose_malloc_limits", lambda: False)
    monkeypatch.setattr(allocator.ctypes, "CDLL", cdll)
    assert allocator.keep_freed_memory() is False
