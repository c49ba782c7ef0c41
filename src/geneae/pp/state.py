"""A :class:`~geneae.pp.Preprocessor`'s saved state: plain JSON, checked when read.

The state is ``{"format", "version", "params", "fitted"}``; ``fitted`` holds the resolved
steps, the kept genes and the per-gene statistics (float64 written as JSON numbers, which
round-trip exactly). Version 1 files are upgraded on reading. Loading never executes code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geneae.config import PreprocessConfig
from geneae.errors import ModelFileError
from geneae.pp.steps import upgrade_v1

if TYPE_CHECKING:
    from geneae.pp.preprocessor import Preprocessor

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "check_format",
    "fitted_state",
    "parse_state",
    "read_saved_text",
    "read_state_text",
    "restore_fitted",
    "saved_params",
]

FORMAT = "geneae.Preprocessor"
FORMAT_VERSION = 2


def fitted_state(pre: Preprocessor) -> dict[str, Any] | None:
    """The fitted part of ``pre``'s state as JSON-ready values (None when not fitted)."""
    if pre.steps_ is None:
        return None
    return {
        "steps": pre.steps_.model_dump(),
        "genes": list(pre.genes_),
        # float64 -> Python float -> JSON repr round-trips exactly.
        "stats": {k: v.tolist() for k, v in pre.stats_.items()},
        "n_input_genes": pre.n_input_genes_,
        "input_genes_sha256": pre.input_genes_sha256_,
        "value_type": pre.value_type_,
    }


def check_format(state: Any) -> int:
    """The format version of a saved state; raises ModelFileError for anything else.

    Parameters
    ----------
    state
        A parsed state (from :func:`parse_state`).

    Returns
    -------
    int
        1 or :data:`FORMAT_VERSION`.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ModelFileError(f"not a saved geneae preprocessor (expected format {FORMAT!r}).")
    version = state.get("version")
    if version not in (1, FORMAT_VERSION):
        raise ModelFileError(
            f"preprocessor format version {version!r} is not supported "
            f"(this geneae reads versions 1 and {FORMAT_VERSION})."
        )
    return int(version)


def saved_params(state: dict[str, Any], version: int) -> dict[str, Any]:
    """The constructor parameters of a saved state, upgraded from version 1."""
    return upgrade_v1(state["params"]) if version == 1 else state["params"]


def restore_fitted(pre: Preprocessor, fitted: dict[str, Any], version: int) -> None:
    """Set ``pre``'s fitted attributes from a saved ``fitted`` state.

    Raises
    ------
    ValueError
        When the statistics do not match the genes (KeyError / TypeError for missing or
        mistyped entries).
    """
    steps = fitted["steps"]
    pre.steps_ = PreprocessConfig(**(upgrade_v1(steps) if version == 1 else steps))
    pre.genes_ = [str(g) for g in fitted["genes"]]
    pre.stats_ = {k: np.asarray(v, dtype=np.float64) for k, v in fitted["stats"].items()}
    pre.n_input_genes_ = int(fitted["n_input_genes"])
    pre.input_genes_sha256_ = str(fitted["input_genes_sha256"])
    pre.value_type_ = fitted.get("value_type")
    for key, values in pre.stats_.items():
        if values.shape != (len(pre.genes_),):
            raise ValueError(f"stats {key!r} has {values.size} values for {len(pre.genes_)} genes")


def parse_state(text: str) -> Any:
    """The JSON value of a saved state; ModelFileError if it is not valid JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"saved preprocessor is not valid JSON ({exc}).") from None


def read_state_text(path: Path) -> str:
    """The text of a saved preprocessor file; ModelFileError if missing or not text."""
    if not path.is_file():
        raise ModelFileError(f"{path}: preprocessor file not found.")
    return read_saved_text(path)


def read_saved_text(path: Path) -> str:
    """The UTF-8 text of a file of a saved model; ModelFileError if it is not text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelFileError(
            f"{path}: not a text file; the saved model is damaged (re-run `geneae train`)."
        ) from None
