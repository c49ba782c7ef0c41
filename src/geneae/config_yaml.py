"""Reading YAML configuration files: the document, or one line saying what is wrong.

:func:`load_yaml` reads a file and :func:`yaml_error` describes a syntax error as
``file:line:column``. Used by :mod:`geneae.config` and the ``tune:`` files of studies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from geneae.errors import ConfigError

__all__ = ["load_yaml", "yaml_error"]


def load_yaml(path: Path) -> Any:
    """The YAML document in ``path``; one line naming the file, line and column if invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}); give a YAML file."
        ) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error(path, exc)) from None


def yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """``file:line:column: not valid YAML (what)``, on one line."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    what = " ".join(
        str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None)) if part
    )
    what = " ".join((what or type(exc).__name__).split())
    return f"{where}: not valid YAML ({what}); fix the syntax there."
