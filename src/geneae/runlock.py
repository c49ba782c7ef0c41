"""One writer per run directory: the lock file beside it, and whether its holder still runs.

``runs/NAME.lock`` (see :mod:`geneae.rundir`) is held while a run writes: created
atomically (a hard link of a complete file) with the process id, host and start time
inside, and removed when the run ends, however it ends short of ``kill -9``
(:func:`terminate_as_exit` turns SIGTERM into an exit, so the release runs). A second
writer is refused. A lock whose process is gone from this host (the id no longer runs, is
a zombie, or was taken by a later process: :func:`process_alive`) is stale and taken
over. The helper processes of data-parallel training never take it
(:func:`is_helper_process`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geneae.errors import ModelFileError


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` (started at ``start``, if known) still runs on this host.

    A zombie (exited, not yet reaped) counts as gone, and so does a later process that
    took the same id. Also :mod:`geneae.tune.storage`'s check of its workers.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    if state in ("Z", "X"):  # exited, not yet reaped
        return False
    # The same id taken by a later process: the lock's owner is gone.
    return start is None or _start_ticks(pid) in (None, start)


class RunLock:
    """An exclusive lock on a run directory (a file beside it); see the module docstring."""

    def __init__(self, path: Path, out: Path) -> None:
        self.path = path
        self.out = out
        self.held = False
        self._content = ""

    def acquire(self) -> RunLock:
        pid = os.getpid()
        record = {
            "pid": pid,
            "host": socket.gethostname(),
            "start": _start_ticks(pid),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        self._content = json.dumps(record) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            if self._create():
                self.held = True
                return self
            holder = self._holder()
            if holder is None or not _stale(holder):
                raise ModelFileError(self._busy(holder))
            self._break(holder)
        raise ModelFileError(self._busy(self._holder()))

    def check_free(self) -> None:
        """Refuse now, before any work, if a live process holds the lock; clear a stale one."""
        if not self.path.exists():
            return
        holder = self._holder()
        if holder is None or not _stale(holder):
            raise ModelFileError(self._busy(holder))
        self._break(holder)

    def is_held(self) -> bool:
        """Whether a live process holds the lock (nothing is changed, a stale lock kept)."""
        if not self.path.exists():
            return False
        holder = self._holder()
        return holder is None or not _stale(holder)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(OSError):
            if self.path.read_text(encoding="utf-8") == self._content:
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _create(self) -> bool:
        """Create the lock with its content complete (a hard link is atomic), or False."""
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(self._content, encoding="utf-8")
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:  # a file system without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self._content)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _holder(self) -> dict[str, Any] | None:
        """The record of the process holding the lock; None if it cannot be read."""
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"pid": 0, "host": socket.gethostname(), "start": None, "_text": ""}
        except (OSError, ValueError):
            return None
        if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
            return None
        holder["_text"] = json.dumps({k: v for k, v in holder.items() if k != "_text"}) + "\n"
        return holder

    def _break(self, holder: dict[str, Any]) -> None:
        """Move a stale lock aside, putting it back if it turned out not to be the stale one."""
        aside = self.path.with_name(f".{self.path.name}.stale.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            text = aside.read_text(encoding="utf-8")
            record = json.loads(text)
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("pid") != holder.get("pid"):
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # a live lock taken meanwhile: restore it
        aside.unlink(missing_ok=True)

    def _busy(self, holder: dict[str, Any] | None) -> str:
        if holder is None:
            return (
                f"{self.path}: lock file of {self.out} is unreadable; if no geneae run is "
                "writing there, delete the lock file and run again."
            )
        return (
            f"{self.out}: another geneae run is writing it (pid {holder.get('pid')} on "
            f"{holder.get('host')}, since {holder.get('since')}; lock {self.path}); wait for "
            "it to finish or choose another --out (if that process is gone, delete the lock)."
        )


def _stale(holder: dict[str, Any]) -> bool:
    """A lock left by a process of this host that no longer runs."""
    if holder.get("host") != socket.gethostname():
        return False
    return not process_alive(int(holder["pid"]), holder.get("start"))


def is_helper_process() -> bool:
    """Whether this is a helper process of data-parallel training (not rank 0).

    Lightning starts the helpers by running the same command again with ``LOCAL_RANK`` /
    ``NODE_RANK`` set (torchrun sets ``RANK``); they train but never lock or write the run.
    """
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "GLOBAL_RANK"):
        value = os.environ.get(name, "0").strip() or "0"
        if value != "0":
            return True
    return False


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit while a run holds its lock, so ``finally`` blocks run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
