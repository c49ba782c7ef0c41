"""Ending a process whose work is done without the interpreter's teardown.

A process that has imported torch (and Lightning, scikit-learn, scanpy) spends most of a
second of CPU tearing its modules and their native libraries down after its last line:
0.7 s for ``geneae train`` and 1.0 s for a member process on the project's 2-core machine,
each on the critical path of a run (the run waits for its member process to end). Nothing
of that teardown is needed once the exit handlers have run and the output is flushed.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_quickly(code: int) -> NoReturn:
    """End the process with ``code``: exit handlers, flushed output, then no teardown.

    The exit handlers (logging's, temporary folders', a coverage tool's) run as at a normal
    exit. Where another thread still runs, the process exits normally instead, which waits
    for it.
    """
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # CPython's own call at a normal exit (not public API)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that has gone (`| head`), a closed stream
            pass
    os._exit(code)
