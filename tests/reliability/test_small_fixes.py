"""Problem 6: one-line YAML errors, checkpoints gone after success, files follow the umask."""

from __future__ import annotations

import os
import stat

import pytest
from reliability_helpers import geneae_cli, refused


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("model:\n  latent_dim: 4\n hidden: [1\n", ":3:", "YAML"),
        ("train: {max_epochs: 3\n", ":2:", "flow mapping"),
        ("model:\n\tlatent_dim: 4\n", ":2:", "cannot start any token"),
        ("a: b: c\n", ":1:", "mapping values are not allowed"),
    ],
)
def test_invalid_yaml_is_one_line_with_line_and_column(text, where, what, cells, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    line = refused(geneae_cli("train", cells, "--out", tmp_path / "r", "--config", bad), what)
    assert f"bad.yaml{where}" in line


def test_yaml_of_random_bytes_is_refused(cells, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(bytes(range(256)))
    refused(geneae_cli("train", cells, "--out", tmp_path / "r", "--config", bad), "bad.yaml")


def test_checkpoints_are_deleted_after_a_successful_run(cells, fast_yaml, tmp_path):
    run = tmp_path / "run"
    assert geneae_cli("train", cells, "--out", run, "--config", fast_yaml).code == 0
    assert not (run / "checkpoints").exists()


def test_keep_checkpoints_keeps_them(report_run):
    assert (report_run / "checkpoints" / "last.ckpt").is_file()


def test_every_file_follows_the_umask(report_run):
    """Written under umask 027: every file 0640, every folder 0750 (weights were 0600)."""
    files = [p for p in report_run.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"weights.safetensors", "report.html", "last.ckpt", "checksums.sha256"} <= names
    assert any(p.suffix == ".png" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    for path in [report_run, *(p for p in report_run.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o750, path


def test_outputs_follow_the_umask(report_run, cells, tmp_path):
    previous = os.umask(0o022)
    try:
        for name in ("latent.csv", "latent.npy", "latent.h5ad"):
            assert geneae_cli("encode", report_run, cells, "--out", tmp_path / name).code == 0
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    finally:
        os.umask(previous)
