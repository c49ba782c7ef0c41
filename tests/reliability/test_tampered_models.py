"""Damaged saved models: every file truncated, emptied, overwritten, flipped, removed.

With ``checksums.sha256`` (every model geneae now saves) any change to a model file is
refused with exit 2 before the file is parsed. Without it (a model saved before checksums
existed) each file's own parser must refuse damage with exit 2: never exit 1, never a
traceback. ``results.h5ad``, the input of ``geneae report``, is damaged the same ways.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from reliability_helpers import geneae_cli

from geneae.saved_model import MODEL_FILES


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(max(1, path.stat().st_size)))


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def append(path: Path) -> None:
    with open(path, "ab") as fh:
        fh.write(b"\n\x00garbage: [\n")


def delete(path: Path) -> None:
    path.unlink()


def make_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE = {
    "truncated": truncate_half,
    "empty": empty,
    "random-bytes": random_bytes,
    "flipped-bit": flip_bit,
    "appended": append,
    "deleted": delete,
    "folder": make_folder,
}


@pytest.fixture
def copy(report_run, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(report_run, target, ignore=shutil.ignore_patterns("checkpoints"))
    return target


def clean_exit(result) -> None:
    assert result.code in (0, 2), result
    assert "Traceback" not in result.err and "unexpected error" not in result.err, result.err
    if result.code == 2:
        assert len(result.err.strip().splitlines()) == 1, result.err


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", [*MODEL_FILES, "checksums.sha256"])
def test_damaged_model_file_is_refused(name, damage, copy, cells, tmp_path):
    DAMAGE[damage](copy / name)
    result = geneae_cli("encode", copy, cells, "--out", tmp_path / "latent.csv")
    clean_exit(result)
    if name == "checksums.sha256" and damage == "deleted":
        assert result.code == 0  # a model saved before checksums: still readable
    else:
        assert result.code == 2, result
        assert not (tmp_path / "latent.csv").exists()


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("name", MODEL_FILES)
def test_damaged_model_file_without_checksums_never_exits_1(name, damage, copy, cells, tmp_path):
    (copy / "checksums.sha256").unlink()
    DAMAGE[damage](copy / name)
    for command in ("encode", "reconstruct"):
        clean_exit(geneae_cli(command, copy, cells, "--out", tmp_path / f"{command}.csv"))


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_results_file_is_refused_by_report(damage, copy):
    DAMAGE[damage](copy / "results.h5ad")
    result = geneae_cli("report", copy)
    clean_exit(result)
    if damage not in ("flipped-bit", "appended"):  # HDF5 may not read those bytes at all
        assert result.code == 2, result


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_fingerprint_does_not_affect_loading(damage, copy, cells, tmp_path):
    DAMAGE[damage](copy / "fingerprint.json")
    assert geneae_cli("encode", copy, cells, "--out", tmp_path / "latent.csv").code == 0
