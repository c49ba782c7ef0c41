"""The ``geneae`` command line: a thin layer over config, model, evaluate and report.

Exit codes: 0 success; 2 bad input or usage, or a limit of the machine the user can lift
(disk full, file too large, no permission, out of memory): one line on stderr, no
traceback; 130 interrupted (Ctrl-C); 1 an unexpected failure, i.e. a bug (one line; set
GENEAE_DEBUG=1 for the traceback). Importing this package loads neither torch nor scanpy,
so ``geneae --help`` starts at once.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import traceback
import warnings
from typing import NoReturn

from rich.console import Console
from typer.exceptions import Abort, Exit, TyperException

from geneae.allocator import keep_freed_memory
from geneae.cli import genes as _genes  # noqa: F401 - registers similar-genes
from geneae.cli import tune as _tune  # noqa: F401 - registers tune
from geneae.cli.commands import app
from geneae.errors import GeneaeError, GeneaeWarning
from geneae.quick_exit import exit_quickly

err = Console(stderr=True)

__all__ = ["app", "main", "run"]


def run() -> NoReturn:
    """The ``geneae`` script and ``python -m geneae``: :func:`main`, then a quick exit.

    The process ends without the interpreter's teardown (:mod:`geneae.quick_exit`), and
    keeps the memory it frees for reuse (:mod:`geneae.allocator`).
    """
    keep_freed_memory()
    exit_quickly(main())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map errors to exit codes (2 user error, 1 unexpected)."""
    _log_decisions()
    _one_line_warnings()
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C inside a command into this return value
            raise KeyboardInterrupt
    except GeneaeError as exc:  # InputError, ConfigError, ModelFileError
        err.print(f"geneae: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except Exit as exc:
        return int(exc.exit_code or 0)
    except Abort:
        err.print("geneae: aborted", markup=False)
        return 1
    except TyperException as exc:  # usage errors: unknown flag, bad value, missing argument
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":
            Console().print(message, markup=False, highlight=False)
        else:
            err.print(f"geneae: error: {message}", markup=False, highlight=False, soft_wrap=True)
        return int(getattr(exc, "exit_code", 2) or 2)
    except KeyboardInterrupt:
        err.print(f"geneae: interrupted{_how_to_continue(argv)}", markup=False, soft_wrap=True)
        return 130
    except SystemExit as exc:
        if exc.code == 128 + signal.SIGTERM:  # see geneae.runlock.terminate_as_exit
            err.print(f"geneae: terminated{_how_to_continue(argv)}", markup=False, soft_wrap=True)
        raise
    except (OSError, MemoryError) as exc:
        message = resource_message(exc)
        if message is None:
            return _unexpected(exc)
        err.print(f"geneae: error: {message}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the CLI
        if type(exc).__name__ == "OutOfMemoryError":  # torch's, without importing torch
            err.print(
                f"geneae: error: {_OUT_OF_MEMORY}", markup=False, highlight=False, soft_wrap=True
            )
            return 2
        return _unexpected(exc)
    return 0


def _how_to_continue(argv: list[str] | None) -> str:
    """How the interrupted command continues, for the line that says it was interrupted."""
    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command == "train":
        return "; an interrupted `geneae train` continues with the same command and --resume"
    if command == "tune":
        return "; run the same `geneae tune` command again to continue the study"
    return ""


_OUT_OF_MEMORY = (
    "out of memory; use a smaller --batch-size, fewer genes (preprocess.n_top_genes), a "
    "smaller train.memory_budget_gb, or a machine with more memory"
)
# Errors of the machine, not of geneae: the user can lift them (free space, permissions).
RESOURCE_ERRORS = {
    errno.ENOSPC: "no space left on the device; free some space",
    errno.EDQUOT: "disk quota exceeded; free some space or raise the quota",
    errno.EFBIG: "file too large for this file system or the process's file-size limit",
    errno.EACCES: "permission denied; check the folder's permissions",
    errno.EPERM: "operation not permitted; check the folder's permissions",
    errno.EROFS: "read-only file system; choose a writable --out",
    errno.ENAMETOOLONG: "file name too long; choose a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n)",
    errno.ENFILE: "too many open files in the system",
    errno.EISDIR: "is a folder where a file was expected; check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
}


def resource_message(exc: BaseException) -> str | None:
    """One line for an error of the machine (disk full, permissions, memory), else None."""
    if isinstance(exc, MemoryError):
        return _OUT_OF_MEMORY
    what = RESOURCE_ERRORS.get(getattr(exc, "errno", None) or -1)
    if what is None:
        return None
    where = getattr(exc, "filename", None)
    then = " (an interrupted `geneae train` continues with --resume)"
    return f"{where}: {what}{then}" if where else f"{what}{then}"


def _unexpected(exc: BaseException) -> int:
    if os.environ.get("GENEAE_DEBUG"):
        traceback.print_exception(exc)
    err.print(
        f"geneae: unexpected error ({type(exc).__name__}: {exc}); "
        "set GENEAE_DEBUG=1 for the traceback",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return 1


def _one_line_warnings() -> None:
    """Show geneae's own warnings as one line each (``geneae: warning: ...``) on stderr."""
    if getattr(warnings.showwarning, "_geneae", False):
        return
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, GeneaeWarning):
            err.print(f"geneae: warning: {message}", markup=False, highlight=False, soft_wrap=True)
        else:
            original(message, category, filename, lineno, file, line)

    show._geneae = True  # type: ignore[attr-defined]
    warnings.showwarning = show


class _Stdout(logging.Handler):
    """Writes records to whatever ``sys.stdout`` is at the time (not the one at start-up).

    Each line once per command: a store is opened on disk to size it before it is read in
    memory, and both readers say where they found the counts.
    """

    said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if line in _Stdout.said:
            return
        _Stdout.said.add(line)
        print(line, file=sys.stdout, flush=True)


def _log_decisions() -> None:
    """Print what the data decided (geneae.resolve's one-line notes) on stdout.

    Stdout, not stderr: they are part of a run's account, and stderr stays one line when
    something is wrong.
    """
    # geneae.ondisk: the out-of-core route and what it holds in memory; geneae.io.finalize,
    # geneae.io.raw, geneae.io.backed and geneae.io.logged_counts (files read in memory / on
    # disk): where the counts or values were found when not in X; geneae.io.genes_file:
    # genes named from an annotation table;
    # geneae.io.tables: a table's columns that annotate samples rather than measure genes;
    # geneae.io.labels_file: labels matched by names as R writes them;
    # geneae.pp.selection: how many genes the preprocessing kept.
    loggers = (
        "resolve",
        "ondisk",
        "io.finalize",
        "io.raw",
        "io.backed",
        "io.logged_counts",
        "io.genes_file",
        "io.tables",
        "io.labels_file",
        "pp.selection",
    )
    _Stdout.said.clear()
    for name in (f"geneae.{short}" for short in loggers):
        logger = logging.getLogger(name)
        if not any(isinstance(h, _Stdout) for h in logger.handlers):
            handler = _Stdout()
            handler.setFormatter(logging.Formatter("geneae: %(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    # What a run does to earlier files (e.g. discarding an interrupted run): one line.
    run_logger = logging.getLogger("geneae.run")
    if not any(isinstance(h, _Stderr) for h in run_logger.handlers):
        handler = _Stderr()
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("geneae: warning: %(message)s"))
        run_logger.addHandler(handler)


class _Stderr(logging.Handler):
    """Writes records to whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr, flush=True)
