"""Where a run is written: its lock, its staging directory, and the move into place.

``geneae train ... --out runs/NAME`` uses three paths beside each other:

``runs/NAME.lock``
    Held while a run writes (created atomically; process id, host and start time inside;
    removed when the run ends, however it ends short of ``kill -9``). A second writer is
    refused. A lock whose process is gone (same host) is stale and taken over.
``runs/NAME.partial/``
    The run while it is written. A run that fails or is killed leaves it behind for
    ``--resume`` (its checkpoints, configuration and data fingerprint); a new run without
    ``--resume`` discards it.
``runs/NAME/``
    Appears only when the run is complete: one rename of the staging directory, or, when
    ``--overwrite`` writes into a folder that holds an older run or the user's own files,
    a move of geneae's files one by one with ``config.yaml`` last (until it is there the
    folder reads as incomplete and loading refuses it). Files that are not geneae's are
    never moved or deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from geneae.errors import ModelFileError

RESUME_FILES = ("config.yaml", "fingerprint.json")
"""What ``--resume`` reads in a staging directory (config.yaml first: it completes a run)."""
MARKER = ".geneae-partial"
"""First file of a staging directory: a folder is discarded only if it has this file."""

# What --out is before a run: nothing, an empty folder, a geneae run, or the user's folder.
Target = Literal["absent", "empty", "run", "foreign"]


@dataclass(frozen=True)
class RunPaths:
    """The final, staging and lock paths of one run directory."""

    out: Path

    @classmethod
    def of(cls, out: str | os.PathLike[str]) -> RunPaths:
        path = Path(os.path.abspath(out))
        if path.parent == path:
            raise ModelFileError(f"{out}: a run cannot be the root directory; give --out a name.")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ModelFileError(
                        f"{out}: {parent} is a file, not a folder; choose another --out."
                    )
                break
        return cls(path)

    @property
    def staging(self) -> Path:
        return self.out.with_name(self.out.name + ".partial")

    @property
    def lock(self) -> Path:
        return self.out.with_name(self.out.name + ".lock")


def classify(out: Path, run_files: tuple[str, ...]) -> Target:
    """What ``out`` is now: absent, an empty folder, a geneae run, or someone else's folder."""
    if not out.exists():
        return "absent"
    if not out.is_dir():
        raise ModelFileError(
            f"{out}: exists and is a file, not a folder; choose another --out for the run."
        )
    names = {p.name for p in out.iterdir()}
    if not names:
        return "empty"
    return "run" if names & set(run_files) else "foreign"


def check_target(out: Path, run_files: tuple[str, ...], *, overwrite: bool) -> Target:
    """Refuse an ``out`` that holds a run or someone else's files, unless ``overwrite``."""
    target = classify(out, run_files)
    if overwrite:
        _check_replaceable(out, run_files)
        return target
    if target == "run":
        present = sorted({p.name for p in out.iterdir()} & set(run_files))
        raise ModelFileError(
            f"{out}: already holds a run ({', '.join(present[:4])}); pass --overwrite to "
            "replace it, or choose another --out."
        )
    if target == "foreign":
        shown = sorted(p.name for p in out.iterdir())
        more = f", ... ({len(shown) - 3} more)" if len(shown) > 3 else ""
        raise ModelFileError(
            f"{out}: exists and holds files that are not a geneae run ({', '.join(shown[:3])}"
            f"{more}); choose a new or empty --out, or pass --overwrite to write the run "
            "among them (your files are kept)."
        )
    return target


CHECKPOINTS = ("last.ckpt", "best.ckpt")
"""The files geneae writes in ``checkpoints/`` (see geneae.train.trainer)."""
FOLDERS = ("figures", "checkpoints")
"""The folders a run writes (besides its files)."""


def _check_replaceable(out: Path, run_files: tuple[str, ...]) -> None:
    """Refuse a folder where a run's file names a folder of the user's, or the reverse."""
    if not out.is_dir():
        return
    clash = [n for n in run_files if (out / n).is_dir()]
    clash += [n for n in FOLDERS if (out / n).exists() and not (out / n).is_dir()]
    if clash:
        raise ModelFileError(
            f"{out}: holds {', '.join(clash)} of another kind than geneae writes there (a "
            "folder for a file or a file for a folder); move it, or choose another --out."
        )


# -- the lock ---------------------------------------------------------------------------------
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


# -- staging and publishing ---------------------------------------------------------------------
def is_staging(path: Path) -> bool:
    """Whether ``path`` is a staging directory geneae made (it holds the marker file)."""
    return path.is_dir() and (path / MARKER).is_file()


def new_staging(paths: RunPaths) -> Path:
    """An empty staging directory, replacing one a failed or killed run left behind."""
    staging = paths.staging
    if staging.exists() or staging.is_symlink():
        discard_staging(staging)
    staging.mkdir(parents=True)
    (staging / MARKER).write_text("a geneae run being written; see geneae.rundir\n")
    return staging


def discard_staging(staging: Path) -> None:
    """Delete a staging directory that geneae made; refuse anything else by that name.

    An empty directory is deleted too: a run killed between creating the staging
    directory and writing its marker leaves one, and an empty folder holds nothing to lose.
    """
    if staging.is_dir() and not staging.is_symlink() and not any(staging.iterdir()):
        staging.rmdir()
        return
    if not is_staging(staging):
        raise ModelFileError(
            f"{staging}: exists but is not a run that geneae was writing; geneae writes a "
            "run there before moving it into place. Move or rename it, then run again."
        )
    shutil.rmtree(staging)


def publish(
    staging: Path, out: Path, run_files: tuple[str, ...], *, keep_checkpoints: bool = False
) -> None:
    """Move the finished run in ``staging`` to ``out`` (see the module docstring).

    ``run_files``: the files of a run at its top level, the only names replaced in a folder
    that holds an older run or other files. Until the move is complete ``staging`` stays a
    staging directory (its marker is the last thing to go), so a move cut short is
    finished by ``--resume``. The resume checkpoints are deleted unless
    ``keep_checkpoints``.
    """
    try:
        os.rename(staging, out)  # out absent or an empty folder: one atomic step
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
            raise
        _merge(staging, out, run_files, keep_checkpoints=keep_checkpoints)
        shutil.rmtree(staging)
        if not keep_checkpoints:  # only geneae's checkpoints: the folder may hold others
            for name in CHECKPOINTS:
                (out / "checkpoints" / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (out / "checkpoints").rmdir()  # if empty
        return
    (out / MARKER).unlink(missing_ok=True)
    if not keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # all from staging: ours


def _merge(staging: Path, out: Path, run_files: tuple[str, ...], *, keep_checkpoints: bool) -> None:
    """Replace geneae's files in ``out`` by those of ``staging``; ``config.yaml`` last."""
    # First make the old run incomplete, then take out its files the new run lacks.
    (out / "config.yaml").unlink(missing_ok=True)
    for name in run_files:
        old = out / name
        if old.is_file() and not (staging / name).exists():
            old.unlink()
    moved = [p for p in staging.iterdir() if p.name not in (MARKER, *RESUME_FILES)]
    for entry in sorted(moved, key=lambda p: (p.is_dir(), p.name)):
        if entry.name == "checkpoints" and not keep_checkpoints:
            continue
        target = out / entry.name
        if entry.is_dir():
            _merge_folder(entry, target)
        else:
            os.replace(entry, target)
    # What --resume reads stays in staging until the end: a copy goes over, then the
    # configuration moves, which completes the run.
    for name in RESUME_FILES[1:]:
        if (staging / name).is_file():
            tmp = out / f".{name}.{uuid.uuid4().hex}.tmp"
            shutil.copyfile(staging / name, tmp)
            os.replace(tmp, out / name)
    os.replace(staging / RESUME_FILES[0], out / RESUME_FILES[0])


def _merge_folder(source: Path, target: Path) -> None:
    """Move the files of ``source`` into ``target`` (a folder of geneae's, e.g. figures/)."""
    if target.exists() and not target.is_dir():
        target.unlink()
    target.mkdir(exist_ok=True)
    for entry in source.iterdir():
        if entry.is_dir():
            _merge_folder(entry, target / entry.name)
        else:
            os.replace(entry, target / entry.name)
