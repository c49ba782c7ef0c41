"""The whole-process speed benchmark records the host's matmul rate around each part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import benchmarks.wallclock as wallclock


def test_host_rates_are_matmul_rates_in_both_precisions() -> None:
    rates = wallclock.host_rates(min_time=0.05)
    assert set(rates) == {"float32", "bfloat16"}
    assert all(v > 0 for v in rates.values())


def test_each_part_is_bracketed_by_host_rates_and_reported(monkeypatch, tmp_path) -> None:
    events: list[str] = []
    probe = iter(range(100))

    def fake_rates() -> dict[str, float]:
        i = float(next(probe))
        events.append(f"rates {i:.0f}")
        return {"float32": i, "bfloat16": 10 * i}

    def fake_per_epoch(data: Any, epochs: int, repeats: int, *, busy: bool, **kw: Any) -> Any:
        events.append("busy" if busy else "idle")
        timing = {"per_epoch_s": 0.5, "fixed_s": 3.0}
        return {
            "busy": busy,
            "epochs": [epochs, 2 * epochs],
            "repeats": repeats,
            "geneae": timing,
            "scvi": timing,
            "speedup": 1.0,
        }

    def fake_to_models(datasets: tuple[str, ...], **kw: Any) -> dict[str, Any]:
        events.append("to-model")
        return {name: {"geneae": 1.0, "scvi": 3.0, "speedup": 3.0} for name in datasets}

    data = tmp_path / "cells.h5"
    data.write_bytes(b"")
    monkeypatch.setattr(wallclock, "dataset_path", lambda name: data)
    monkeypatch.setattr(wallclock, "host_rates", fake_rates)
    monkeypatch.setattr(wallclock, "per_epoch", fake_per_epoch)
    monkeypatch.setattr(wallclock, "time_to_models", fake_to_models)
    doc = wallclock.run_wallclock(
        parts=("busy", "to-model"), to_model_datasets=("mouse_bladder",), previous=None
    )
    # The busy part's spinner lives inside per_epoch: the rates are taken outside it.
    assert events == ["rates 0", "busy", "rates 1", "rates 2", "to-model", "rates 3"]
    assert doc["host_rates"] == {
        "busy": {
            "start": {"float32": 0.0, "bfloat16": 0.0},
            "end": {"float32": 1.0, "bfloat16": 10.0},
        },
        "to-model": {
            "start": {"float32": 2.0, "bfloat16": 20.0},
            "end": {"float32": 3.0, "bfloat16": 30.0},
        },
    }
    # A later run of one part keeps the other part's rates, and replaces its own.
    events.clear()
    probe = iter(range(50, 100))
    again = wallclock.run_wallclock(
        parts=("to-model",), to_model_datasets=("mouse_bladder",), previous=doc
    )
    assert again["host_rates"]["busy"] == doc["host_rates"]["busy"]
    assert again["host_rates"]["to-model"]["start"] == {"float32": 50.0, "bfloat16": 500.0}
    # Each timed dataset keeps the rates of the run that timed it.
    assert doc["time_to_model"]["mouse_bladder"]["host_rates"] == doc["host_rates"]["to-model"]
    assert again["time_to_model"]["mouse_bladder"]["host_rates"]["start"]["float32"] == 50.0
    later = wallclock.run_wallclock(
        parts=("to-model",), to_model_datasets=("worm_neuron",), previous=again
    )
    ttm = later["time_to_model"]
    assert ttm["mouse_bladder"]["host_rates"] == again["host_rates"]["to-model"]
    assert ttm["worm_neuron"]["host_rates"] == later["host_rates"]["to-model"]
    table = "\n".join(wallclock.markdown({**later, "idle": later["busy"]}))  # a busy-only file
    assert "| mouse_bladder | 1.0 | 3.0 | **3.00x** | – | – | 50 / 500 → 51 / 510 |" in table
    text = " ".join(wallclock.host_rate_lines(again["host_rates"]))
    assert "busy 0 / 0 before, 1 / 10 after" in text
    assert "to-model 50 / 500 before, 51 / 510 after" in text
    assert wallclock.host_rate_lines(None) == []


def test_per_epoch_records_the_threads_each_geneae_run_chose(monkeypatch, tmp_path) -> None:
    chosen = iter([2, 2, 1, 2])  # the runs in the order they start: 4, 8, 4, 8 epochs

    def fake_time(cmd: list[str], env: dict[str, str]) -> float:
        if "--out" in cmd:  # geneae: a finished run writes its metrics
            run = Path(cmd[cmd.index("--out") + 1])
            run.mkdir(parents=True)
            threads = next(chosen)
            (run / "metrics.json").write_text(json.dumps({"model": {"cpu_threads": threads}}))
            return 10.0 + int(cmd[cmd.index("--epochs") + 1])
        return 5.0 + 2 * int(cmd[-2])  # scvi-tools: epochs are its second-last argument

    monkeypatch.setattr(wallclock, "_time", fake_time)
    out = wallclock.per_epoch(tmp_path / "cells.h5", 4, 2, busy=False)
    assert out["geneae"]["threads"] == {"4": [2, 1], "8": [2, 2]}
    assert out["geneae"]["per_epoch_s"] == 1.0 and out["scvi"]["per_epoch_s"] == 2.0
    note = " ".join(wallclock.thread_note({"idle": out}))
    assert "idle (4 epochs: 2, 1; 8 epochs: 2, 2)" in note
    # A row whose runs all chose one count needs no note; a run without metrics is None.
    assert wallclock.thread_note({"idle": {"geneae": {"threads": {"4": [2, 2]}}}}) == []
    assert wallclock.run_threads(tmp_path / "absent") is None
