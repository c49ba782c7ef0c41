"""Data-parallel ``geneae train`` (two CPU processes): the helper neither locks nor writes."""

from __future__ import annotations

import pytest
import yaml
from reliability_helpers import FAST, assert_complete_run, cli


@pytest.mark.slow
def test_two_process_run_is_written_once_and_completely(cells, tmp_path):
    settings = {
        **FAST,
        "train": {**FAST["train"], "accelerator": "cpu", "devices": 2, "strategy": "ddp"},
    }
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    # gloo's TCP rendezvous on a loaded machine occasionally drops a connection at start-up;
    # one retry separates that from a real failure (which fails both times).
    for _attempt in range(2):
        result = cli("train", cells, "--out", out, "--config", config, "--overwrite")
        if result.code == 0:
            break
    assert result.code == 0, result
    assert_complete_run(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.yaml", "run"]
