"""geneae.quick_exit: a finished process ends at once, but as a normal exit would end it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Buffered output, as a terminal's or a pipe's is by default.
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=BUFFERED,
    )


def test_exit_handlers_run_output_is_flushed_and_the_code_kept(tmp_path):
    marker = tmp_path / "handler-ran"
    done = _run(
        f"""
        import atexit, sys
        from pathlib import Path
        from geneae.quick_exit import exit_quickly
        atexit.register(lambda: Path({str(marker)!r}).write_text("yes"))
        print("to stdout", end="")  # no newline: stays in the buffer until flushed
        print("to stderr", end="", file=sys.stderr)
        exit_quickly(3)
        """
    )
    assert done.returncode == 3
    assert done.stdout == "to stdout"
    assert done.stderr == "to stderr"
    assert marker.read_text() == "yes"


def test_a_running_thread_is_waited_for(tmp_path):
    marker = tmp_path / "thread-finished"
    done = _run(
        f"""
        import threading, time
        from pathlib import Path
        from geneae.quick_exit import exit_quickly
        def work():
            time.sleep(0.5)
            Path({str(marker)!r}).write_text("yes")
        threading.Thread(target=work).start()
        exit_quickly(0)
        """
    )
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "yes"


def test_a_reader_that_has_gone_is_no_error():
    # `geneae ... | true`: the reader has gone when the output is flushed at the end.
    writer = (
        "import sys, time; from geneae.quick_exit import exit_quickly; "
        "sys.stdout.write('x' * 100); time.sleep(0.5); exit_quickly(0)"
    )
    shell = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -c "{writer}" | true; echo "${{PIPESTATUS[0]}}"'],
        capture_output=True,
        text=True,
        timeout=60,
        env=BUFFERED,
    )
    assert shell.stdout.strip() == "0", shell.stderr
    assert shell.stderr == ""
