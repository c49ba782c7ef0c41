"""The whole-process speed benchmark records the host's matmul rate around each part."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import benchmarks.wallclock as wallclock
import benchmarks.wallclock_markdown as wallclock_markdown


@pytest.mark.parametrize("native", [True, False])
def test_host_rates_are_matmul_rates_bfloat16_only_where_native(monkeypatch, native) -> None:
    import geneae.precision

    flags = frozenset({"avx512_bf16"}) if native else frozenset()
    monkeypatch.setattr(geneae.precision, "native_bf16_flags", lambda: flags)
    rates = wallclock.host_rates(min_time=0.05, size=128)
    assert set(rates) == {"float32", "bfloat16"} and rates["float32"] > 0
    assert (rates["bfloat16"] > 0) if native else rates["bfloat16"] is None


def test_a_rate_not_measured_reads_as_a_dash() -> None:
    rates = {"busy": {"start": {"float32": 301.4, "bfloat16": None}, "end": None}}
    line = wallclock_markdown.host_rate_lines(rates)[0]
    assert "busy 301 / – before, – after" in line


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
    busy_only = {**later, "idle": later["busy"]}
    table = "\n".join(wallclock_markdown.markdown(busy_only))
    assert "| mouse_bladder | 1.0 | 3.0 | **3.00x** | – | – | 50 / 500 → 51 / 510 |" in table
    text = " ".join(wallclock_markdown.host_rate_lines(again["host_rates"]))
    assert "busy 0 / 0 before, 1 / 10 after" in text
    assert "to-model 50 / 500 before, 51 / 510 after" in text
    assert wallclock_markdown.host_rate_lines(None) == []


def test_per_epoch_records_threads_repeats_and_the_runs_own_clocks(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(wallclock, "default_phase", lambda data: 20)  # no data file is read
    chosen = iter([2, 2, 1, 2])  # geneae's runs in the order they start: 4, 8, 4, 8 epochs
    whole = {"geneae": iter([14.0, 18.0, 15.0, 23.0]), "scvi": iter([13.0, 21.0, 14.0, 22.0])}
    loop = {"geneae": iter([6.0, 8.0, 6.0, 9.0]), "scvi": iter([8.0, 16.0, 9.0, 17.0])}
    evaluation = iter([2.0, 9.0, 3.0, 9.0])  # 2.0 and 3.0 at 4 epochs
    imports = iter([3.5, 4.0, 9.0])

    def fake_time(cmd: list[str], env: dict[str, str]) -> float:
        if cmd[1] == "-c":  # the bare interpreter importing what geneae train imports
            assert "geneae.train.trainer" in cmd[2]
            return next(imports)
        if "--out" in cmd:  # geneae: a finished run writes its metrics
            run = Path(cmd[cmd.index("--out") + 1])
            run.mkdir(parents=True)
            model = {"cpu_threads": next(chosen), "cluster_phase": {"seconds": 1.0}}
            timings = {
                "train_s": next(loop["geneae"]) + 1.0,  # the phase's 1 s left out
                "read_s": 0.5,
                "preprocess_s": 0.25,
                "evaluate_s": next(evaluation),
            }
            metrics = {"model": model, "timings": timings}
            (run / "metrics.json").write_text(json.dumps(metrics))
            return next(whole["geneae"])
        out = Path(cmd[3])  # the scvi-tools script's output folder
        out.mkdir(parents=True)
        (out / "timing.json").write_text(json.dumps({"train_s": next(loop["scvi"])}))
        return next(whole["scvi"])

    monkeypatch.setattr(wallclock, "_time", fake_time)
    out = wallclock.per_epoch(tmp_path / "cells.h5", 4, 2, busy=False)
    g, s = out["geneae"], out["scvi"]
    assert g["threads"] == {"4": [2, 1], "8": [2, 2]}
    # Medians: geneae 14.5 -> 20.5, scvi 13.5 -> 21.5 (whole); 6 -> 8.5, 8.5 -> 16.5 (loop).
    assert g["per_epoch_s"] == 1.5 and s["per_epoch_s"] == 2.0
    assert g["per_epoch_by_repeat_s"] == [1.0, 2.0] and s["per_epoch_by_repeat_s"] == [2.0, 2.0]
    assert out["speedup_by_repeat"] == [2.0, 1.0]
    assert g["loop_per_epoch_s"] == 0.625 and s["loop_per_epoch_s"] == 2.0
    assert out["loop_speedup"] == 3.2 and out["loop_speedup_by_repeat"] == [4.0, 8 / 3]
    note = " ".join(wallclock_markdown.thread_note({"idle": out}))
    assert "idle (4 epochs: 2, 1; 8 epochs: 2, 2)" in note
    spread = " ".join(wallclock_markdown.spread_lines({"idle": out}))
    assert "idle: whole process 2.00x, 1.00x; training loop alone 0.625 against 2.000" in spread
    assert "**3.20x** (4.00x, 2.67x)" in spread
    # The fixed cost (14.5 - 4 x 1.5 = 8.5 s) by part: medians of the 4-epoch runs' own
    # timings, the imports' median, the rest by difference.
    assert g["fixed_s"] == 8.5
    assert g["fixed_parts"] == {
        "start_up_and_imports_s": 4.0,
        "reading_s": 0.75,
        "phase_s": 1.0,
        "evaluation_s": 2.5,
        "rest_s": 0.25,
    }
    fixed = " ".join(wallclock_markdown.fixed_part_lines({"idle": out, "old": {"geneae": {}}}))
    assert (
        "idle: 8.5 s = start-up and imports 4.0, reading and preprocessing 0.8, clustering "
        "phase 1.0, evaluation 2.5, the rest 0.2." in fixed
    )
    assert "old" not in fixed  # a file from before the parts were kept: no line
    # A row whose runs all chose one count needs no note; a run without its file, no facts.
    assert wallclock_markdown.thread_note({"idle": {"geneae": {"threads": {"4": [2, 2]}}}}) == []
    assert wallclock.run_facts("scvi", tmp_path / "absent") == {}


def test_a_variants_repeats_are_shown_beside_its_figure():
    # One disturbed repeat moves a median of three: the reader sees each repeat.
    recorded = Path(__file__).parents[1] / "benchmarks" / "results" / "wallclock.json"
    doc = json.loads(recorded.read_text())
    timed = {"per_epoch_s": 0.527, "per_epoch_by_repeat_s": [0.527, 0.408, 0.303]}
    doc["idle_float32"] = {"geneae": timed, "speedup": 1.02}
    text = "\n".join(wallclock_markdown.markdown(doc))
    assert "same run: 0.527 s per epoch (repeats 0.527, 0.408, 0.303), **1.02x**" in text
    del timed["per_epoch_by_repeat_s"]  # a file from before the repeats were kept
    assert "same run: 0.527 s per epoch, **1.02x**" in "\n".join(wallclock_markdown.markdown(doc))


def test_the_file_names_each_command_whose_measurements_it_holds(tmp_path, monkeypatch):
    # Parts not re-run are kept, so the commands of earlier runs stay listed beside the new.
    monkeypatch.setattr(wallclock, "run_wallclock", lambda **options: {"measured": {}})
    for parts in (["epoch", "busy", "--wallclock-epochs", "32"], ["to-model"], ["to-model"]):
        monkeypatch.setattr(sys, "argv", ["benchmarks", "speed", "--speed-parts", *parts])
        wallclock.write_wallclock(tmp_path)
    doc = json.loads((tmp_path / "wallclock.json").read_text())
    assert doc["commands"] == [
        "python -m benchmarks speed --speed-parts epoch busy --wallclock-epochs 32",
        "python -m benchmarks speed --speed-parts to-model",
    ]


def test_fixed_epoch_runs_pin_the_clustering_phase_to_the_datas_default(tmp_path) -> None:
    # A run given few epochs shortens its phase to them (geneae.resolve): N and 2N epochs
    # would then differ by phase epochs too, and the per-epoch difference would count them.
    from geneae import datasets
    from geneae.resolve import default_cluster_epochs

    data = tmp_path / "d.h5ad"
    datasets.synthetic_counts(n_cells=300, n_genes=40).write_h5ad(data)
    for epochs in ("4", "8"):
        commands = wallclock._commands(data, tmp_path, epochs, True)
        text = (tmp_path / "geneae.yaml").read_text()
        assert f"cluster_epochs: {default_cluster_epochs(300)}" in text, commands
    wallclock._commands(data, tmp_path, "default", True)
    assert "cluster_epochs" not in (tmp_path / "geneae.yaml").read_text()


def test_the_compiled_variant_turns_compile_on_and_is_reported(tmp_path) -> None:
    from geneae import RunConfig

    def config_of(text: str) -> RunConfig:
        path = tmp_path / "geneae.yaml"
        path.write_text(text, encoding="utf-8")
        return RunConfig.from_yaml(path)

    compiled = config_of(wallclock.geneae_config(None, True, compile_step=True))
    assert compiled.train.compile is True and compiled.model.members == 1
    assert config_of(wallclock.geneae_config(None, True)).train.compile is None
    timing = {"per_epoch_s": 0.5, "fixed_s": 3.0, "per_epoch_by_repeat_s": [0.5, 0.4]}
    doc = {
        "idle": {"geneae": timing, "scvi": {"per_epoch_s": 1.6, "fixed_s": 3.0}, "speedup": 3.2},
        "idle_compiled": {
            "geneae": {
                **timing,
                "compile": {
                    "4": [{"compiled_steps": 60, "first_step_s": 8.2}],
                    "8": [{"compiled_steps": 120, "first_step_s": 31.0}],
                },
            },
            "speedup": 3.2,
        },
    }
    doc["idle_default_batch"] = {"geneae": {"loop_per_epoch_s": 0.30}}
    doc["idle_compiled"]["geneae"]["loop_per_epoch_s"] = 0.25
    text = " ".join(wallclock_markdown.compiled_lines(doc))
    assert "0.250 s per epoch compiled against 0.300 eager at the same batch: **1.20x**" in text
    assert "`train.compile: true`" in text and "**3.20x** scvi-tools" in text
    assert "the first, compiling step took 8-31 s" in text and "not compiled" not in text
    doc["idle_compiled"]["geneae"]["compile"]["8"] = [{"compiled_steps": 0, "note": "off: x"}]
    assert "(1 of 2 runs not compiled: off: x)" in " ".join(wallclock_markdown.compiled_lines(doc))
    assert wallclock_markdown.compiled_lines({}) == []
