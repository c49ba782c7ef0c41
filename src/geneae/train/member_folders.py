"""The private temporary folders of a run's member processes, and those killed runs left.

A run writes its members' jobs and results (with a copy of the data) to a folder of its
own (:mod:`geneae.train.member_process`); a SIGKILLed run cannot remove it, so the next run
that trains members removes the folders whose run no longer runs (:func:`sweep_folders`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

#: Name of a run's private folder for its members' files: the prefix, the key of the pid
#: namespace it ran in (:func:`pid_namespace`), then its pid.
FOLDER_PREFIX = "geneae-members-"


def pid_namespace() -> str:
    """A short key of where this process's pid means something: its host and PID namespace.

    Runs in containers (or on hosts) that share one temporary folder see each other's
    folders, but a pid names a process only in its own namespace: a folder of another key
    is never taken for a killed run's. The host's own namespace keeps its key across
    reboots; a container's changes with each container.
    """
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):  # Linux: the namespace's inode
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def folder_prefix(base: str = FOLDER_PREFIX) -> str:
    """The prefix of this process's member folders (``tempfile.TemporaryDirectory``).

    ``base``: another kind of process-private folder swept alike (the benchmark harness's).
    """
    return f"{base}{pid_namespace()}-{os.getpid()}-"


def sweep_folders(where: str | Path | None = None, base: str = FOLDER_PREFIX) -> list[Path]:
    """Remove the member folders of runs that were killed (their pid no longer runs).

    A SIGKILLed run cannot remove its folder; the next run that trains members does. Only
    folders of this pid namespace are looked at; one whose pid runs (or was taken by
    another process) is kept. ``base`` as in :func:`folder_prefix`. Returns those removed.
    """
    ours = f"{base}{pid_namespace()}-"
    removed = []
    for folder in Path(where or tempfile.gettempdir()).glob(f"{ours}*-*"):
        pid = folder.name[len(ours) :].split("-", 1)[0]
        if not pid.isdigit() or _runs(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True
