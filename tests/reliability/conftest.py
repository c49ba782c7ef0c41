"""Fixtures of the reliability suite: tiny data and a trivial training configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from reliability_helpers import FAST, counts_table


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """``cells.csv`` (120 cells, cell_type column), ``labels.txt`` for it, ``fast.yaml``."""
    folder = tmp_path_factory.mktemp("reliability_data")
    frame = counts_table()
    frame.to_csv(folder / "cells.csv")
    (folder / "labels.txt").write_text("\n".join(frame["cell_type"]) + "\n")
    (folder / "fast.yaml").write_text(yaml.safe_dump(FAST))
    with_report = {**FAST, "evaluate": {**FAST["evaluate"], "report": True}}
    (folder / "fast_report.yaml").write_text(yaml.safe_dump(with_report))
    return folder


@pytest.fixture(scope="session")
def cells(data_dir) -> Path:
    return data_dir / "cells.csv"


@pytest.fixture(scope="session")
def fast_yaml(data_dir) -> Path:
    return data_dir / "fast.yaml"


@pytest.fixture(scope="session")
def report_run(data_dir, tmp_path_factory) -> Path:
    """A run with its report and kept checkpoints, written under umask 027."""
    from reliability_helpers import geneae_cli

    run = tmp_path_factory.mktemp("report_run") / "run"
    previous = os.umask(0o027)
    try:
        args = ["--config", data_dir / "fast_report.yaml", "--keep-checkpoints"]
        result = geneae_cli("train", data_dir / "cells.csv", "--out", run, *args)
    finally:
        os.umask(previous)
    assert result.code == 0, result
    return run
