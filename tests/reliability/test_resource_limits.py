"""Limits of the machine: file-size limit, disk full, no permission, out of memory.

Each ends with exit 2 and one line saying what to do, the run directory untouched and
the lock released; where training had finished, ``--resume`` completes the run once the
limit is lifted. The file-size limit is real (``RLIMIT_FSIZE`` on a subprocess); disk
full, permissions and memory are raised where geneae writes or computes.
"""

from __future__ import annotations

import errno
import resource
import signal

import pandas as pd
import yaml
from reliability_helpers import FAST, assert_complete_run, cli, geneae_cli, refused

import geneae.run
import geneae.runlock
from geneae.model import GeneAE


def limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    return apply


def test_file_size_limit_then_resume(cells, data_dir, tmp_path):
    """report.html (about 1 MB) cannot be written under a 400 kB limit."""
    out = tmp_path / "run"
    config = data_dir / "fast_report.yaml"
    result = cli(
        "train", cells, "--out", out, "--config", config, preexec_fn=limit_file_size(400_000)
    )
    refused(result, "file too large", "--resume")
    assert not out.exists() and not (tmp_path / "run.lock").exists()
    assert (tmp_path / "run.partial" / "checkpoints" / "last.ckpt").is_file()
    assert geneae_cli("train", cells, "--out", out, "--resume").code == 0
    assert_complete_run(out)


def test_disk_full_while_writing_results_then_resume(cells, fast_yaml, tmp_path, monkeypatch):
    def full(adata, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(geneae.run, "write_h5ad", full)
    out = tmp_path / "run"
    line = refused(geneae_cli("train", cells, "--out", out, "--config", fast_yaml), "no space left")
    assert "results.h5ad" in line
    assert not out.exists() and not (tmp_path / "run.lock").exists()
    monkeypatch.undo()
    assert geneae_cli("train", cells, "--out", out, "--resume").code == 0
    assert_complete_run(out)


def test_no_permission_to_create_the_lock(cells, fast_yaml, tmp_path, monkeypatch):
    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(geneae.runlock.os, "link", denied)
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "permission denied", "run.lock")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_out_of_memory_in_preprocessing(cells, fast_yaml, tmp_path, monkeypatch):
    def no_memory(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(GeneAE, "preprocess_for_training", no_memory)
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "out of memory", "--batch-size")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_device_out_of_memory_in_training(cells, fast_yaml, tmp_path, monkeypatch):
    import torch

    def no_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(GeneAE, "train", no_memory)
    result = geneae_cli("train", cells, "--out", tmp_path / "run", "--config", fast_yaml)
    refused(result, "out of memory")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.lock").exists()


def test_long_out_name_is_refused(cells, fast_yaml, tmp_path):
    """One name component over the 255-byte limit of common file systems."""
    result = geneae_cli("train", cells, "--out", tmp_path / ("x" * 300), "--config", fast_yaml)
    refused(result, "file name too long")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_encode_output_on_a_full_disk_leaves_no_partial_file(tmp_path, monkeypatch, cells):
    run = tmp_path / "run"
    settings = tmp_path / "fast.yaml"
    settings.write_text(yaml.safe_dump(FAST))
    assert geneae_cli("train", cells, "--out", run, "--config", settings).code == 0

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    refused(geneae_cli("encode", run, cells, "--out", tmp_path / "latent.csv"), "no space left")
    assert not (tmp_path / "latent.csv").exists()
    assert not list(tmp_path.glob(".latent.csv.*"))
