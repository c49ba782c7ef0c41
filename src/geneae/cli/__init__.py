"""The ``geneae`` command line: a thin layer over config, model, evaluate and report.

Exit codes: 0 success; 2 bad input or usage (one line on stderr, no traceback); 1 an
unexpected failure (one line; set GENEAE_DEBUG=1 for the traceback). Importing this
package loads neither torch nor scanpy, so ``geneae --help`` starts at once.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

from rich.console import Console
from typer.exceptions import Abort, Exit, TyperException

from geneae.cli import genes as _genes  # noqa: F401 - registers similar-genes
from geneae.cli import tune as _tune  # noqa: F401 - registers tune
from geneae.cli.commands import app
from geneae.errors import GeneaeError

err = Console(stderr=True)

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map errors to exit codes (2 user error, 1 unexpected)."""
    _log_decisions()
    try:
        app(args=argv, standalone_mode=False)
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
        err.print(
            "geneae: interrupted; checkpoints are in the run directory (resume with --resume)"
        )
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the CLI
        if os.environ.get("GENEAE_DEBUG"):
            traceback.print_exc()
        err.print(
            f"geneae: unexpected error ({type(exc).__name__}: {exc}); "
            "set GENEAE_DEBUG=1 for the traceback",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


class _Stdout(logging.Handler):
    """Writes records to whatever ``sys.stdout`` is at the time (not the one at start-up)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stdout, flush=True)


def _log_decisions() -> None:
    """Print what the data decided (geneae.resolve's one-line notes) on stdout.

    Stdout, not stderr: they are part of a run's account, and stderr stays one line when
    something is wrong.
    """
    logger = logging.getLogger("geneae.resolve")
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(logging.Formatter("geneae: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
