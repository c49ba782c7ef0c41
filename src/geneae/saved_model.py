"""A saved model is a directory of plain files; this module writes and reads them.

``config.yaml`` (the resolved run configuration), ``weights.safetensors`` (tensors only),
``genes.txt``, ``preprocessor.json``, ``history.csv`` and ``metrics.json``, then
``checksums.sha256`` (the SHA-256 of each, in the format of ``sha256sum``, so
``sha256sum -c checksums.sha256`` checks a copy by hand). No pickle anywhere: reading a
model never executes code from the directory. Every file is written atomically (temporary
name, then rename). Reading checks every file against ``checksums.sha256``, so a damaged,
truncated or edited file is refused before it is parsed; a model saved before checksums
existed (no such file) is read as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from geneae import __version__
from geneae._atomic import atomic_path, write_text
from geneae.config import RunConfig
from geneae.errors import ModelFileError
from geneae.pp import Preprocessor
from geneae.pp.state import read_saved_text
from geneae.rundir import RunPaths
from geneae.runlock import RunLock

MODEL_FILES = (
    "config.yaml",
    "weights.safetensors",
    "genes.txt",
    "preprocessor.json",
    "history.csv",
    "metrics.json",
)
WEIGHTS_FORMAT = "geneae-model-1"
CHECKSUMS = "checksums.sha256"


@dataclass
class SavedModel:
    """The contents of a model directory, validated."""

    config: RunConfig
    preprocessor: Preprocessor
    genes: list[str]
    state: dict[str, torch.Tensor]
    covariate_categories: list[str]
    history: pd.DataFrame
    metrics: dict[str, Any]


def write_model(
    directory: Path,
    *,
    config: RunConfig,
    state: dict[str, torch.Tensor],
    genes: list[str],
    covariate_categories: list[str],
    preprocessor: Preprocessor,
    history: pd.DataFrame,
    metrics: dict[str, Any],
) -> None:
    """Write every file of a model directory (``directory`` is created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = config.to_yaml()
    config_path = directory / "config.yaml"
    # A run writes its resolved configuration before training (resume reads it back);
    # the same text is not written a second time.
    if not config_path.is_file() or config_path.read_text(encoding="utf-8") != text:
        write_text(config_path, text)
    meta = {
        "geneae_version": __version__,
        "format": WEIGHTS_FORMAT,
        "n_genes": str(len(genes)),
        "covariate_categories": json.dumps(covariate_categories),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(directory / "weights.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    write_text(directory / "genes.txt", "\n".join(genes) + "\n")
    preprocessor.save(directory / "preprocessor.json")
    with atomic_path(directory / "history.csv") as tmp:
        history.to_csv(tmp, index=False)
    write_json(directory / "metrics.json", metrics)
    write_checksums(directory)


def write_checksums(directory: Path) -> None:
    """Write ``checksums.sha256`` for the model files (the last file of a saved model)."""
    lines = [f"{file_sha256(directory / name)}  {name}" for name in MODEL_FILES]
    write_text(directory / CHECKSUMS, "\n".join(lines) + "\n")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](\S+)")


def verify_checksums(directory: Path) -> None:
    """Refuse a model whose files differ from ``checksums.sha256`` (absent: nothing to check)."""
    path = directory / CHECKSUMS
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_file():
        raise ModelFileError(f"{path}: not a file; restore the model directory from a copy.")
    listed: dict[str, str] = {}
    for line in read_saved_text(path).splitlines():
        match = _CHECKSUM_LINE.fullmatch(line.strip())
        if match is None or match.group(2) not in MODEL_FILES or match.group(2) in listed:
            raise ModelFileError(
                f"{path}: damaged (line {line[:40]!r}); restore the model directory from a "
                "copy or re-run `geneae train`."
            )
        listed[match.group(2)] = match.group(1)
    missing = [name for name in MODEL_FILES if name not in listed]
    if missing:
        raise ModelFileError(
            f"{path}: damaged (no checksum of {', '.join(missing)}); restore the model "
            "directory from a copy or re-run `geneae train`."
        )
    for name, expected in listed.items():
        if file_sha256(directory / name) != expected:
            raise ModelFileError(
                f"{directory / name}: changed since the model was saved (its SHA-256 differs "
                f"from {CHECKSUMS}); restore it from a copy or re-run `geneae train`."
            )


def _why_incomplete(directory: Path, missing: list[str]) -> str:
    """What a folder without every model file is, and what to do, for the error."""
    paths = RunPaths.of(directory)
    if RunLock(paths.lock, paths.out).is_held():
        return (
            f"a run is training it now ({paths.lock.name} is held); load it once that run "
            "has finished."
        )
    if paths.staging.is_dir():
        return (
            f"its training was interrupted ({paths.staging.name} is beside it); finish it "
            "with the same `geneae train` command and --resume."
        )
    if len(missing) == len(MODEL_FILES):
        return (
            "not a geneae model (none of its files: config.yaml, weights.safetensors, ...); "
            "give the folder `geneae train --out` wrote."
        )
    return (
        f"not a complete geneae model (missing {', '.join(missing)}); restore the folder "
        "from a copy or train again."
    )


def read_model(directory: Path) -> SavedModel:
    """Read and check a model directory written by :func:`write_model`."""
    missing = [f for f in MODEL_FILES if not (directory / f).is_file()]
    paths = RunPaths.of(directory)
    if not directory.is_dir() and not paths.staging.is_dir() and not paths.lock.exists():
        raise ModelFileError(f"{directory}: no such model directory; check the path.")
    if missing:
        raise ModelFileError(f"{directory}: {_why_incomplete(directory, missing)}")
    verify_checksums(directory)
    config = RunConfig.from_yaml(directory / "config.yaml")
    preprocessor = Preprocessor.load(directory / "preprocessor.json")
    genes = read_saved_text(directory / "genes.txt").split()
    try:
        with safe_open(str(directory / "weights.safetensors"), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(
            f"{directory / 'weights.safetensors'}: unreadable weights ({exc})."
        ) from None
    try:
        categories = [str(c) for c in json.loads(meta.get("covariate_categories", "[]"))]
        history_path = directory / "history.csv"
        history = pd.read_csv(history_path) if history_path.stat().st_size > 1 else pd.DataFrame()
        metrics = json.loads(read_saved_text(directory / "metrics.json"))
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise ModelFileError(f"{directory}: a model file is damaged ({exc}).") from None
    if not isinstance(metrics, dict):
        raise ModelFileError(f"{directory / 'metrics.json'}: does not hold a JSON object.")
    _check_consistent(directory, config, preprocessor, genes, meta)
    if config.data.use_raw is None and preprocessor.value_type_ == "standardised":
        # A model of z-scores (saved before the readers took .raw's log values in their
        # place, or of a file without them) reads new data's X as it is, as it read its own.
        config = config.updated({"data.use_raw": False})
    return SavedModel(config, preprocessor, genes, state, categories, history, metrics)


def check_overwrite(directory: Path, *, overwrite: bool) -> None:
    """Refuse to write a model over a saved one unless ``overwrite``.

    Raises
    ------
    ModelFileError
        When ``directory`` already holds weights and ``overwrite`` is False.
    """
    if (directory / "weights.safetensors").exists() and not overwrite:
        raise ModelFileError(
            f"{directory}: already holds a saved model; pass overwrite=True (CLI: "
            "--overwrite) to replace it, or choose another directory."
        )


def saved_module(saved: SavedModel, directory: Path) -> torch.nn.Module:
    """The module of a saved model: built from its configuration, weights loaded, in eval mode.

    Raises
    ------
    ModelFileError
        When the weights do not fit the configuration.
    """
    from geneae.module import build_module

    module = build_module(saved.config.model, len(saved.genes), len(saved.covariate_categories))
    try:
        module.load_state_dict(saved.state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"{directory}: weights do not match config.yaml ({str(exc).splitlines()[0]})."
        ) from None
    return module.eval()


def _check_consistent(
    directory: Path,
    config: RunConfig,
    preprocessor: Preprocessor,
    genes: list[str],
    meta: dict[str, str],
) -> None:
    """The files agree with each other: a resolved config, one gene list, a fitted state."""
    damaged = "the saved model is damaged (re-run `geneae train`)"
    if config.model.likelihood == "auto" or not config.preprocess.is_resolved:
        raise ModelFileError(
            f"{directory / 'config.yaml'}: not the resolved configuration of a trained model; "
            f"{damaged}."
        )
    if not preprocessor.is_fitted:
        raise ModelFileError(f"{directory / 'preprocessor.json'}: not fitted; {damaged}.")
    # A gene model's features are the samples: its preprocessor's genes are its rows.
    features_are_genes = not config.data.genes_as_samples
    mismatch = features_are_genes and genes != preprocessor.genes_
    if not genes or mismatch or meta.get("n_genes") != str(len(genes)):
        raise ModelFileError(
            f"{directory / 'genes.txt'}: {len(genes)} genes, which do not match the "
            f"preprocessor's and the weights'; {damaged}."
        )


def write_json(path: Path, values: dict[str, Any]) -> None:
    """Write ``values`` as indented JSON (numpy scalars and arrays converted), atomically."""
    write_text(path, json.dumps(jsonable(values), indent=2) + "\n")


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars / arrays turned into Python values, for JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if sp.issparse(obj):
        raise TypeError("sparse matrices do not belong in a JSON file")
    return obj
