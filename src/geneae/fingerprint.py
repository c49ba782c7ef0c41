"""What a run was trained on: a fingerprint of its data and of its configuration.

A run writes ``fingerprint.json`` into its directory before training. ``--resume``
compares the data it is given and the settings given with it against that file, and
refuses a mismatch (training on with other data or other settings would silently make a
model of neither).

The data fingerprint holds the shape, a SHA-256 of the cell names and of the gene names
(in order), the number of stored values, and a SHA-256 of the values of up to
:data:`SAMPLE_ROWS` rows spread evenly over the matrix (always the first and the last).
Its cost does not grow with the number of cells (milliseconds on millions of cells), so it
is no slow full pass over large data; the price is that a change confined to cells outside
the sample, keeping the shape, every name and the number of stored values, goes unnoticed.
No pickle, no code: the file is plain JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import scipy.sparse as sp

from geneae._atomic import write_text
from geneae.config import RunConfig
from geneae.errors import ModelFileError
from geneae.io.backed import BackedData, OnDiskMatrix

FILE = "fingerprint.json"
FORMAT = "geneae-fingerprint-1"
SAMPLE_ROWS = 1024


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _names_sha256(names: Any) -> str:
    return sha256_text("\n".join(str(n) for n in names))


def sample_rows(n_obs: int, n: int = SAMPLE_ROWS) -> np.ndarray:
    """Up to ``n`` row indices spread evenly over ``n_obs`` rows, first and last included."""
    if n_obs <= n:
        return np.arange(n_obs)
    return np.unique(np.linspace(0, n_obs - 1, n).round().astype(np.int64))


def _matrix_digest(x: Any, rows: np.ndarray) -> tuple[str, int]:
    """(SHA-256 of the sampled rows' values and positions, number of stored values)."""
    digest = hashlib.sha256()
    block = x[rows]  # in memory or backed by a file: only these rows are read
    if sp.issparse(block):
        block = sp.csr_matrix(block)
        block.sum_duplicates()  # a canonical form: sorted indices, no duplicates
        digest.update(np.asarray(block.indptr, dtype=np.int64).tobytes())
        digest.update(np.asarray(block.indices, dtype=np.int64).tobytes())
        digest.update(np.asarray(block.data, dtype=np.float64).tobytes())
        return digest.hexdigest(), _stored_values(x)
    digest.update(np.ascontiguousarray(np.asarray(block), dtype=np.float64).tobytes())
    return digest.hexdigest(), int(np.prod(np.shape(x)))


def _stored_values(x: Any) -> int:
    """Number of stored values of a sparse matrix, in memory or backed by an HDF5 file."""
    stored = getattr(x, "nnz", None)
    if stored is None and hasattr(x, "group"):  # anndata's backed sparse dataset
        stored = x.group["data"].shape[0]
    return int(stored) if stored is not None else -1


def data_fingerprint(adata: ad.AnnData, layer: str | None = None) -> dict[str, Any]:
    """The fingerprint of the matrix a run trains on (``X``, or ``layer``), and its names."""
    x = adata.X if layer is None or layer not in adata.layers else adata.layers[layer]
    counts = adata.layers["counts"] if "counts" in adata.layers and layer != "counts" else None
    return _fingerprint(x, counts, adata.obs_names, adata.var_names)


def backed_fingerprint(data: BackedData) -> dict[str, Any]:
    """:func:`data_fingerprint` of a store left on disk (the same record as in memory)."""
    return _fingerprint(_Rows(data.x), _Rows(data.counts), data.obs.index, data.var.index)


class _Rows:
    """A matrix on disk seen as ``x[rows]`` (sorted rows) and ``nnz``, for the digest."""

    def __init__(self, matrix: OnDiskMatrix | None) -> None:
        self.matrix = matrix

    def __getitem__(self, rows: np.ndarray) -> Any:
        assert self.matrix is not None
        blocks = [self.matrix.rows(int(r), int(r) + 1) for r in rows]
        return sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.vstack(blocks)

    @property
    def nnz(self) -> int:
        assert self.matrix is not None
        return self.matrix.stored(0, self.matrix.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        assert self.matrix is not None
        return self.matrix.shape


def _fingerprint(x: Any, counts: Any, obs_names: Any, var_names: Any) -> dict[str, Any]:
    rows = sample_rows(len(obs_names))
    values, stored = _matrix_digest(x, rows) if x is not None else ("", 0)
    result = {
        "n_obs": len(obs_names),
        "n_vars": len(var_names),
        "obs_names_sha256": _names_sha256(obs_names),
        "var_names_sha256": _names_sha256(var_names),
        "stored_values": stored,
        "sample_rows": len(rows),
        "values_sha256": values,
    }
    if counts is not None and not (isinstance(counts, _Rows) and counts.matrix is None):
        result["counts_sha256"], _ = _matrix_digest(counts, rows)
    return result


def write_fingerprint(directory: Path, data: dict[str, Any], config_text: str) -> None:
    """Write ``fingerprint.json``: the data's fingerprint and the SHA-256 of config.yaml."""
    record = {"format": FORMAT, "data": data, "config_sha256": sha256_text(config_text)}
    write_text(directory / FILE, json.dumps(record, indent=1) + "\n")


def read_fingerprint(directory: Path) -> dict[str, Any]:
    """The record of :func:`write_fingerprint`; ModelFileError if missing or damaged."""
    path = directory / FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(
            f"{path}: missing, so the interrupted run cannot be checked; start again without "
            "--resume."
        ) from None
    except (OSError, ValueError):
        raise ModelFileError(
            f"{path}: damaged, so the interrupted run cannot be checked; start again without "
            "--resume."
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a geneae fingerprint; start again without --resume.")
    if not isinstance(record.get("data"), dict):
        raise ModelFileError(f"{path}: damaged (no data section); start again without --resume.")
    return record


def data_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two data fingerprints, in words (empty: the same data)."""
    if (saved.get("n_obs"), saved.get("n_vars")) != (now["n_obs"], now["n_vars"]):
        return [
            f"{now['n_obs']} x {now['n_vars']} instead of {saved.get('n_obs')} x "
            f"{saved.get('n_vars')} cells x genes"
        ]
    words = {
        "var_names_sha256": "other gene names",
        "obs_names_sha256": "other cell names",
        "stored_values": "another number of stored values",
        "values_sha256": "other values",
        "counts_sha256": "other raw counts",
    }
    return [word for key, word in words.items() if saved.get(key) != now.get(key)]


def check_config_text(directory: Path, record: dict[str, Any]) -> str:
    """config.yaml of an interrupted run, checked against the fingerprint taken with it."""
    path = directory / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ModelFileError(
            f"{path}: missing or unreadable, so the interrupted run cannot be resumed; start "
            "again without --resume."
        ) from None
    if sha256_text(text) != record.get("config_sha256"):
        raise ModelFileError(
            f"{path}: changed since the interrupted run started; a resumed run must continue "
            "with the settings it began with. Start again without --resume."
        )
    return text


#: Settings of how a run is carried out, not of what it learns: ``--resume`` takes them as
#: given (the progress bar off, other threads, another machine), where any other setting
#: that differs from the interrupted run's is refused.
RESUME_MAY_CHANGE = frozenset(
    {
        "train.quiet",
        "train.num_threads",
        "train.accelerator",
        "train.devices",
        "train.checkpoint_interval_s",
        "train.members_side_by_side",
    }
)


def settings_differences(saved: RunConfig, given: dict[str, Any]) -> list[str]:
    """The settings given with ``--resume`` (dotted key -> value) that differ from ``saved``.

    A value is compared after validation (``--lr 1e-3`` equals ``0.001``); ``auto`` and
    ``None`` are left to the data and so agree with whatever they resolved to. Settings in
    :data:`RESUME_MAY_CHANGE` are not compared.
    """
    values = saved.model_dump(mode="json")
    found = []
    for key, value in given.items():
        if value is None or value == "auto" or key in RESUME_MAY_CHANGE:
            continue
        section, _, name = key.partition(".")
        if not name:
            current = values.get(section)
            if value != current:
                found.append(f"{key} = {value!r} (the run has {current!r})")
            continue
        normalised = saved.updated({key: value}, source="--resume").model_dump(mode="json")
        if name not in normalised[section]:  # a retired key, dropped when read
            continue
        if normalised[section][name] != values[section][name]:
            found.append(f"{key} = {value!r} (the run has {values[section][name]!r})")
    return found
