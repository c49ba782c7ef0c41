"""Fault injection into the last step: moving a finished run into a folder that has files.

``--overwrite`` into a folder holding an older run and the user's own file moves geneae's
files one by one, ``config.yaml`` last. An I/O error is injected at each of those moves in
turn. Whatever the step, the folder then holds the older run intact, or an incomplete run
that loading refuses (never a mix that loads), the user's file is untouched, and
``--resume`` finishes the move.
"""

from __future__ import annotations

import errno
import os
import shutil

import pandas as pd
import pytest
from reliability_helpers import assert_complete_run, geneae_cli

import geneae.rundir


@pytest.fixture(scope="module")
def old_run(cells, fast_yaml, tmp_path_factory):
    """A folder with the user's notes and an older run (latent_dim 2)."""
    folder = tmp_path_factory.mktemp("old") / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    result = geneae_cli("train", cells, "--out", folder, "--config", fast_yaml, "--overwrite")
    assert result.code == 0, result
    return folder


def moves_into(out, fail_at):
    """os.replace that fails at the ``fail_at``-th move into ``out`` (counted from 0)."""
    real = os.replace
    seen = []

    def replace(src, dst, *args, **kwargs):
        folder = os.path.dirname(os.path.abspath(dst))
        if (folder == str(out) or folder.startswith(f"{out}{os.sep}")) and ".partial" in str(src):
            seen.append(dst)
            if len(seen) - 1 == fail_at:
                raise OSError(errno.EIO, "Input/output error", str(dst))
        return real(src, dst, *args, **kwargs)

    return replace, seen


def test_every_move_of_a_merge_can_fail_and_resume_finishes(
    old_run, cells, fast_yaml, tmp_path, monkeypatch
):
    step = 0
    while True:
        out = tmp_path / f"run{step}"
        shutil.copytree(old_run, out)
        replace, seen = moves_into(out, step)
        monkeypatch.setattr(geneae.rundir.os, "replace", replace)
        args = ["--config", fast_yaml, "--overwrite", "--latent-dim", "3"]
        result = geneae_cli("train", cells, "--out", out, *args)
        monkeypatch.undo()
        if result.code == 0:  # every move done: the step is past the last one
            assert len(seen) <= step
            break
        assert result.code == 1 and "Input/output error" in result.err
        assert (out / "notes.txt").read_text() == "mine"
        load = geneae_cli("encode", out, cells, "--out", tmp_path / f"latent{step}.csv")
        if load.code == 0:  # still the old run, whole
            assert (out / "config.yaml").read_text() == (old_run / "config.yaml").read_text()
            assert pd.read_csv(tmp_path / f"latent{step}.csv", index_col=0).shape[1] == 2
        else:
            assert load.code == 2 and "interrupted" in load.error and "--resume" in load.error
        assert geneae_cli("train", cells, "--out", out, "--resume").code == 0
        assert_complete_run(out)
        assert "latent_dim: 3" in (out / "config.yaml").read_text()
        assert (out / "notes.txt").read_text() == "mine"
        assert not (tmp_path / f"run{step}.partial").exists()
        step += 1
    assert step >= 8  # the merge moved every file of the run, one step each
