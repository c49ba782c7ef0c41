"""benchmarks.gpu: the GPU part's pure pieces (the measurements themselves need a GPU)."""

import json
from pathlib import Path

import pytest

from benchmarks.gpu import relative_gaps, run_gpu
from benchmarks.gpu_markdown import gpu_markdown

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_relative_gaps_against_a_closed_form():
    assert relative_gaps([1.1, 2.0, -3.3], [1.0, 2.0, -3.0]) == pytest.approx([0.1, 0.0, 0.1])


def row(batch, geneae, eager, scvi):
    return {
        "batch_size": batch,
        "geneae_cells_per_s": geneae,
        "geneae-eager_cells_per_s": eager,
        "scvi_cells_per_s": scvi,
    }


def test_markdown_ratios_come_from_the_users_row_and_scvi():
    doc = {
        "updated": "2026-12-04T00:00:00+00:00",
        "versions": {"torch": "2.11.0", "scvi-tools": "1.4.2"},
        "ceilings": {"device_name": "Some GPU", "gflops_8192": 5e4, "tf32_matmul": False},
        "throughput_data": {"name": "synthetic", "n_cells": 1000, "n_genes": 2000},
        "throughput": [row(4096, 900_000, 300_000, 100_000), row(128, 50_000, 10_000, 20_000)],
        "skipped": ["default_runs (asked)"],
        "default_runs": {
            "recommended": {
                "ari": 0.76,
                "nmi": 0.77,
                "fit_s": 30.0,
                "train_s": 25.0,
                "preprocess_s": 1.5,
                "phase_s": 9.0,
            },
            "scvi": {"ari": 0.77, "nmi": 0.78, "fit_s": 35.8, "train_s": 35.7},
        },
    }
    text = "\n".join(gpu_markdown(doc))
    assert "| 128 | 50,000 | 10,000 | 20,000 | **2.5x** |" in text
    assert "| 4096 | 900,000 | 300,000 | 100,000 | **9.0x** |" in text
    assert text.index("| 128 |") < text.index("| 4096 |")  # by batch size
    assert "geneae without the graph" in text and "TF32 off" in text
    assert "skipped: default_runs (asked)" in text
    assert (
        "`recommended` ARI 0.760, NMI 0.770, fit 30.0 s (preprocessing 1.5 s, training 25.0 s; "
        "the members' clustering phases 9.0 s together); `scvi` ARI 0.770, NMI 0.780, fit 35.8 s."
    ) in text


def test_markdown_says_when_not_run_or_without_a_gpu():
    assert "Not run" in "\n".join(gpu_markdown(None))
    assert "Not measured: no CUDA" in "\n".join(gpu_markdown({"note": "no CUDA device"}))


def test_the_committed_results_render():
    doc = json.loads((RESULTS / "gpu.json").read_text())
    text = "\n".join(gpu_markdown(doc))
    assert "**Throughput**" in text and "**The same loss trajectory**" in text
    runs = json.loads((RESULTS / "gpu.json").read_text()).get("earlier") or []
    assert text.count("Earlier the same day") == (len(runs) if isinstance(runs, list) else 1)


def test_without_a_gpu_the_last_results_stay(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "gpu.json").write_text('{"kept": true}')
    assert run_gpu(tmp_path) is None
    assert json.loads((tmp_path / "gpu.json").read_text()) == {"kept": True}
