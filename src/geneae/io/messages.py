"""One shape for every reader error: which file, what is wrong, how to fix it."""

from __future__ import annotations

import os

from geneae.errors import InputError


def input_error(path: str | os.PathLike[str], problem: str, fix: str) -> InputError:
    """Build the :class:`InputError` a reader raises.

    Parameters
    ----------
    path
        The file (or directory) being read; named first so that a user reading a batch of
        files knows which one to look at.
    problem
        What is wrong, in terms of the file's own lines, columns or keys.
    fix
        What the user can do about it.

    Returns
    -------
    InputError
        Not raised here, so that callers write ``raise input_error(...) from exc`` and keep
        the original exception chained for debugging.
    """
    return InputError(f"Cannot read {os.fspath(path)}: {problem.rstrip('.')}. {fix}")


def nonfinite_values(n: int, first: str) -> tuple[str, str]:
    """The one wording of a matrix with NaN or infinite values: the problem and the fix.

    Said alike by the readers (:mod:`geneae.io.finalize`) and by the checks of the values a
    model is given (:class:`geneae.pp.checks.ValueCheck`: an AnnData from Python, a file
    read on disk). ``first`` says where the first one is.
    """
    return (
        f"{n:,} NaN or infinite value(s), the first {first}",
        "Remove or impute them first (e.g. replace NA by 0 where it means not detected, or "
        "drop those genes or samples).",
    )
