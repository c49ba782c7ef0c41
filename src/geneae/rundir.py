"""Where a run is written: its paths, its staging directory, and the move into place.

``geneae train ... --out runs/NAME`` uses three paths beside each other:

``runs/NAME.lock``
    Held while a run writes (created atomically; process id, host and start time inside;
    removed when the run ends, however it ends short of ``kill -9``). A second writer is
    refused. A lock whose process is gone (same host) is stale and taken over. The lock
    itself is :class:`geneae.runlock.RunLock`.
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
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
"""The files geneae writes in ``checkpoints/`` (geneae.train.trainer.ResumePoint writes
``last.ckpt``; earlier versions also wrote ``best.ckpt``)."""
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
