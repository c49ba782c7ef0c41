"""Whole-process timings, as a user meets them: `geneae train` vs a scvi-tools script.

Per-epoch cost by difference: each command runs at N and 2N epochs (report off, no early
stopping, the same architecture: NB, 1 x 128, latent 10, batch 128), interleaved
geneae / scvi-tools, ``repeats`` times; per epoch = (median t(2N) - median t(N)) / N, so
start-up, reading, preprocessing and saving cancel. Each repeat's own difference and the
paired speed-up of each repeat are kept (their spread is the machine's noise), and so is a
second estimate from each run's own clock around its training (geneae's metrics.json, the
script's timing.json), start-up left out; each geneae run's CPU threads are recorded, and
its fixed cost is split into parts (:func:`fixed_parts`: imports, reading, the clustering
phase, evaluation, the rest).
``busy=True`` first starts a process
that spins on one core (the last usable one) for the whole measurement: a laptop or a
shared login node. Time to a trained model: both tools' defaults from the file to a saved
model (geneae: `geneae train` with its default epochs, report off; scvi-tools: SCVI()
defaults and its default epochs), once each, on every shared dataset. Per-epoch cost is also
measured for geneae at its own default batch size (scvi-tools' default is the 128 above).

scvi-tools runs in ``$SCVI_PYTHON`` (default: this interpreter), so it may live in a
virtual environment of its own. BENCHMARKS.md's section of the file it writes:
:mod:`benchmarks.wallclock_markdown`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import dataset_path, loadavg, machine_info, now, versions
from geneae.precision import choose_precision

SCVI_SCRIPT = """
import json, os, sys, time
import h5py, numpy as np, anndata as ad, scipy.sparse as sp, scvi
path, out, epochs, same_architecture = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
with h5py.File(path, "r") as f:
    x = sp.csr_matrix(np.asarray(f["X"][()], dtype=np.float32))
a = ad.AnnData(X=x)
scvi.settings.seed = 0
scvi.model.SCVI.setup_anndata(a)
kwargs = dict(n_hidden=128, n_latent=10, gene_likelihood="nb") if same_architecture else {}
model = scvi.model.SCVI(a, **kwargs)
train = dict(batch_size=128, enable_progress_bar=False)
if epochs != "default":
    train.update(max_epochs=int(epochs), early_stopping=False)
t0 = time.perf_counter()
model.train(**train)
train_s = time.perf_counter() - t0
model.save(out, overwrite=True)
with open(os.path.join(out, "timing.json"), "w") as fh:
    json.dump({"train_s": train_s}, fh)
"""

#: The shared datasets timed from file to trained model.
TIME_TO_MODEL_DATASETS = ("pbmc_10x", "worm_neuron", "mouse_bladder", "cite_cbmc")
#: N of the whole-process runs of N and 2N epochs, idle and with one core busy: at 8 idle
#: epochs the start-up's run-to-run noise swamped the difference (a float32 row at 4.25x
#: scvi-tools, 1.74x in a run at 32); the busy runs are slower, so fewer epochs suffice.
WALLCLOCK_EPOCHS = 32
BUSY_EPOCHS = 16


def geneae_config(
    batch_size: int | None,
    one_model: bool = False,
    precision: str = "auto",
    *,
    fixed_epochs: bool = True,
    cluster_epochs: int | None = None,
    compile_step: bool = False,
) -> str:
    """`geneae train --config` text: report off, the batch size given (``None``: geneae's
    default); ``one_model``: one member (the architecture scvi-tools trains; geneae's
    default trains three, see ``model.members``); ``precision``: ``train.precision`` (auto:
    geneae's default); ``fixed_epochs``: early stopping off, so that a run trains exactly
    the epochs asked for (per-epoch timing by difference); off: geneae's default stopping.
    ``cluster_epochs``: the clustering phase's epochs, pinned (None: geneae's default). A run
    given few epochs shortens the phase to them (geneae.resolve), which a difference of
    N and 2N epochs must not see: the harness pins it to the data's default.
    ``compile_step``: ``train.compile: true`` (else geneae's default, off at this size)."""
    batch = "" if batch_size is None else f"  batch_size: {batch_size}\n"
    phase = "" if cluster_epochs is None else f"  cluster_epochs: {cluster_epochs}\n"
    precision_line = "" if precision == "auto" else f"  precision: '{precision}'\n"
    stopping = "  early_stopping: false\n" if fixed_epochs else ""
    stopping += "  compile: true\n" if compile_step else ""
    model = "model:\n  members: 1\n" if one_model else ""
    settings = f"{stopping}{batch}{precision_line}{phase}"
    train = f"train:\n{settings}" if settings else ""
    return f"{model}{train}evaluate:\n  report: false\n"


@functools.cache
def default_phase(data: Path) -> int:
    """The clustering phase's default epochs on ``data`` (geneae.resolve)."""
    from geneae.io import read
    from geneae.resolve import default_cluster_epochs

    return default_cluster_epochs(read(data).n_obs)


def _spinner(cpu: int) -> subprocess.Popen:
    # Dies with the benchmark (Linux PR_SET_PDEATHSIG = 1, SIGKILL = 9), even when the
    # benchmark is killed before it can end the spinner itself.
    code = (
        "import ctypes, os, sys\n"
        "ctypes.CDLL(None).prctl(1, 9)\n"
        "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
        "while True: pass"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(cpu)])


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return elapsed


def host_rates(min_time: float = 0.5, size: int = 2048) -> dict[str, float | None]:
    """GFLOP/s of a ``size``^3 matmul now, in float32 and bfloat16, at torch's threads here.

    This machine's vector throughput moves with its host's load without showing in its own
    load average (one session's bfloat16 rate read 350 where the step benchmark had read
    727): measured beside each part, it says whether two runs' seconds are comparable.
    bfloat16 is None on a CPU that emulates it: geneae trains in float32 there, and one
    2048^3 product takes a minute.
    """
    from benchmarks.speed import matmul_gflops
    from geneae.precision import native_bf16_flags

    def rate(dtype: str) -> float:
        return round(matmul_gflops(size, size, size, "cpu", min_time, dtype), 1)

    return {
        "float32": rate("float32"),
        "bfloat16": rate("bfloat16") if native_bf16_flags() else None,
    }


def _commands(
    data: Path,
    work: Path,
    epochs: str,
    same: bool,
    batch_size: int | None = 128,
    precision: str = "auto",
    compile_step: bool = False,
) -> dict[str, list[str]]:
    config = work / "geneae.yaml"
    fixed = epochs != "default"
    phase = default_phase(data) if fixed else None
    text = geneae_config(
        batch_size,
        same,
        precision,
        fixed_epochs=fixed,
        cluster_epochs=phase,
        compile_step=compile_step,
    )
    config.write_text(text, encoding="utf-8")
    script = work / "scvi_train.py"
    script.write_text(SCVI_SCRIPT, encoding="utf-8")
    run = work / f"run-{time.monotonic_ns()}"
    geneae = [sys.executable, "-m", "geneae", "train", str(data), "--out", str(run / "geneae")]
    geneae += ["--config", str(config), "--quiet"]
    if epochs != "default":
        geneae += ["--epochs", epochs]
    scvi_python = os.environ.get("SCVI_PYTHON", sys.executable)
    scvi = [scvi_python, str(script), str(data), str(run / "scvi"), epochs, "1" if same else "0"]
    return {"geneae": geneae, "scvi": scvi}


def run_folder(tool: str, cmd: list[str]) -> Path:
    """Where a command of :func:`_commands` writes its run (geneae's ``--out``, the script's
    second argument)."""
    return Path(cmd[cmd.index("--out") + 1] if tool == "geneae" else cmd[3])


def per_epoch(
    data: Path,
    epochs: int,
    repeats: int,
    *,
    busy: bool,
    with_scvi: bool = True,
    batch_size: int | None = 128,
    precision: str = "auto",
    compile_step: bool = False,
) -> dict[str, Any]:
    """Per-epoch seconds of both tools by difference, idle or with one core busy.

    ``batch_size``, ``precision`` and ``compile_step`` (``train.compile: true``) are
    geneae's (``None`` / ``auto`` / False: its defaults); scvi-tools always runs at 128 in
    float32. A compiled run compiles at N and at 2N epochs alike, so the difference is the
    compiled steps' own.
    """
    env = dict(os.environ)
    spinner = _spinner(sorted(os.sched_getaffinity(0))[-1]) if busy else None
    times: dict[str, dict[int, list[float]]] = {"geneae": {}, "scvi": {}}
    facts: dict[str, dict[int, list[dict[str, Any]]]] = {"geneae": {}, "scvi": {}}
    try:
        if spinner is not None:
            time.sleep(1.0)
        with tempfile.TemporaryDirectory(prefix="geneae-wallclock-") as tmp:
            for _ in range(repeats):
                for n in (epochs, 2 * epochs):
                    commands = _commands(
                        data, Path(tmp), str(n), True, batch_size, precision, compile_step
                    )
                    for tool, cmd in commands.items():
                        if tool == "scvi" and not with_scvi:
                            continue
                        seconds = _time(cmd, env)
                        times[tool].setdefault(n, []).append(seconds)
                        said = run_facts(tool, run_folder(tool, cmd))
                        facts[tool].setdefault(n, []).append(said)
                        threads = f", {said.get('threads')} threads" if tool == "geneae" else ""
                        print(
                            f"[wallclock] {tool} {n} epochs busy={busy}: {seconds:.1f} s{threads}",
                            flush=True,
                        )
        # In the same conditions as the runs (the spinner still on for a busy row).
        imports_s = _import_seconds(env)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    out: dict[str, Any] = {
        "busy": busy,
        "epochs": [epochs, 2 * epochs],
        "repeats": repeats,
        "geneae_batch_size": batch_size,
        "geneae_precision": precision,
        "geneae_compile": compile_step,
    }
    for tool, by_n in times.items():
        if not by_n:
            continue
        per_epoch_s, by_repeat = _difference(by_n, epochs)
        out[tool] = {
            "seconds": {str(n): v for n, v in by_n.items()},
            "median_s": {str(n): statistics.median(by_n[n]) for n in (epochs, 2 * epochs)},
            "per_epoch_s": per_epoch_s,
            "fixed_s": statistics.median(by_n[epochs]) - epochs * per_epoch_s,
            # Each repeat's own difference: the repeats' spread is the measurement's noise.
            "per_epoch_by_repeat_s": by_repeat,
        }
        loops = {n: [f.get("train_s") for f in runs] for n, runs in facts[tool].items()}
        if all(v is not None for runs in loops.values() for v in runs):
            out[tool]["train_seconds"] = {str(n): v for n, v in loops.items()}
            loop_s, loop_by_repeat = _difference(loops, epochs)  # type: ignore[arg-type]
            out[tool]["loop_per_epoch_s"] = loop_s
            out[tool]["loop_per_epoch_by_repeat_s"] = loop_by_repeat
    if "geneae" in out:
        out["geneae"]["fixed_parts"] = fixed_parts(
            out["geneae"]["fixed_s"], facts["geneae"][epochs], imports_s
        )
        # The CPU threads each geneae run chose (geneae.threads: the cores idle when it
        # started); runs that chose differently are not repeats of one another.
        out["geneae"]["threads"] = {
            str(n): [f.get("threads") for f in runs] for n, runs in facts["geneae"].items()
        }
        if compile_step:  # how each run's compiled steps went (first step, fallbacks)
            out["geneae"]["compile"] = {
                str(n): [f.get("compile") for f in runs] for n, runs in facts["geneae"].items()
            }
    if "scvi" in out and "geneae" in out:
        g, sc = out["geneae"], out["scvi"]
        out["speedup"] = sc["per_epoch_s"] / g["per_epoch_s"]
        # The two tools' runs of a repeat ran one after the other: paired ratios.
        out["speedup_by_repeat"] = _ratios(sc["per_epoch_by_repeat_s"], g["per_epoch_by_repeat_s"])
        if "loop_per_epoch_s" in g and "loop_per_epoch_s" in sc:
            out["loop_speedup"] = sc["loop_per_epoch_s"] / g["loop_per_epoch_s"]
            out["loop_speedup_by_repeat"] = _ratios(
                sc["loop_per_epoch_by_repeat_s"], g["loop_per_epoch_by_repeat_s"]
            )
    return out


#: What `geneae train` imports before it trains (the CLI, the run, Lightning's trainer).
_IMPORTS = "import geneae.cli, geneae.run, geneae.train.trainer"


def _import_seconds(env: dict[str, str], repeats: int = 3) -> float:
    """Median seconds of a bare interpreter that imports what `geneae train` imports."""
    return statistics.median(_time([sys.executable, "-c", _IMPORTS], env) for _ in range(repeats))


def fixed_parts(
    fixed_s: float, runs: list[dict[str, Any]], imports_s: float
) -> dict[str, float | None]:
    """geneae's fixed cost (``fixed_s``) by part: the medians over ``runs`` (the N-epoch
    runs' :func:`run_facts`) of what each run timed itself, the imports as a bare
    interpreter took them (``imports_s``), and the rest by difference (the Trainer's set-up,
    the model's start from the data, saving; and the noise of N x the per-epoch figure)."""

    def median(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    parts: dict[str, float | None] = {
        "start_up_and_imports_s": imports_s,
        "reading_s": median("reading_s"),
        "phase_s": median("phase_s"),
        "evaluation_s": median("evaluation_s"),
    }
    known = [v for v in parts.values() if v is not None]
    parts["rest_s"] = fixed_s - sum(known) if len(known) == len(parts) else None
    return parts


def _difference(by_n: dict[int, list[float]], epochs: int) -> tuple[float, list[float]]:
    """Per-epoch seconds by difference: of the medians, ``(median t(2N) - median t(N)) / N``,
    and of each repeat alone."""
    short, long = by_n[epochs], by_n[2 * epochs]
    median = (statistics.median(long) - statistics.median(short)) / epochs
    return median, [(b - a) / epochs for a, b in zip(short, long, strict=True)]


def _ratios(numerators: list[float], denominators: list[float]) -> list[float | None]:
    return [a / b if b > 0 else None for a, b in zip(numerators, denominators, strict=True)]


def run_facts(tool: str, folder: Path) -> dict[str, Any]:
    """What a finished run in ``folder`` says of itself: its training seconds by its own
    clock (``train_s``: geneae's metrics.json, training without the clustering phase; the
    scvi-tools script's timing.json, ``model.train``) and, for geneae, its CPU threads
    (``threads``). Empty where the run wrote none."""
    path = folder / ("metrics.json" if tool == "geneae" else "timing.json")
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if tool != "geneae":
        return {"train_s": facts.get("train_s")}
    model = facts.get("model") or {}
    timings = facts.get("timings") or {}
    train_s = timings.get("train_s")
    # One member in the per-epoch runs; an ensemble's figure is its members' sum.
    phase_s = (model.get("cluster_phase") or {}).get("seconds", 0.0)
    reading = [timings.get(k) for k in ("read_s", "preprocess_s")]
    return {
        # The clustering phase's seconds are the same work at N and 2N epochs, and vary
        # by seconds run to run: left out, not left to cancel.
        "train_s": None if train_s is None else train_s - phase_s,
        "threads": model.get("cpu_threads"),
        # The parts of the fixed cost that the run times itself (fixed_parts).
        "phase_s": phase_s,
        "reading_s": None if None in reading else sum(reading),  # type: ignore[arg-type]
        "evaluation_s": timings.get("evaluate_s"),
        "compile": model.get("compile"),  # train.compile's summary, where it was on
    }


def time_to_model(data: Path, *, with_scvi: bool = True) -> dict[str, Any]:
    """Seconds from the file to a saved model with each tool's defaults (one run each)."""
    env = dict(os.environ)
    # geneae as its default has it (early stopping on); records before this key trained
    # every member to its full epochs.
    out: dict[str, Any] = {"geneae_stopping": "default"}
    with tempfile.TemporaryDirectory(prefix="geneae-wallclock-") as tmp:
        for tool, cmd in _commands(data, Path(tmp), "default", False, None).items():
            if tool == "scvi" and not with_scvi:
                continue
            out[tool] = _time(cmd, env)
            print(f"[wallclock] {data.name} {tool}: {out[tool]:.1f} s to a model", flush=True)
    if "scvi" in out:
        out["speedup"] = out["scvi"] / out["geneae"]
    return out


def time_to_models(datasets: tuple[str, ...], *, with_scvi: bool = True) -> dict[str, Any]:
    """:func:`time_to_model` for each dataset that is present (dataset -> timings)."""
    out: dict[str, Any] = {}
    for name in datasets:
        path = dataset_path(name)
        if path is not None and path.is_file():
            out[name] = time_to_model(path, with_scvi=with_scvi)
    return out


#: The parts of the whole-process timings (``--speed-parts``; ``step`` is speed.json's).
WALLCLOCK_PARTS = ("epoch", "busy", "to-model")


def run_wallclock(
    dataset: str = "pbmc_10x",
    epochs: int = WALLCLOCK_EPOCHS,
    repeats: int = 3,
    busy_epochs: int = BUSY_EPOCHS,
    *,
    with_scvi: bool = True,
    parts: tuple[str, ...] = WALLCLOCK_PARTS,
    to_model_datasets: tuple[str, ...] = TIME_TO_MODEL_DATASETS,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole-process part of the speed benchmark (idle, busy, time to model).

    Only ``parts`` are measured; the sections of the others are kept from ``previous``
    (the last wallclock.json), each with the date it was measured (``measured``), as are
    the times to a model of datasets not in ``to_model_datasets``.
    """
    data = dataset_path(dataset)
    assert data is not None, "whole-process timings need a file (a shared dataset)"
    doc: dict[str, Any] = dict(previous or {})
    if previous and "measured" not in previous:  # a file from before per-part dates
        first = previous.get("updated")
        doc["measured"] = {
            "epoch": first,
            "busy": first,
            "to-model": previous.get("time_to_model_updated", first),
        }
        doc.pop("time_to_model_updated", None)
    doc.update(
        dataset=dataset,
        updated=now(),
        machine=machine_info(),
        versions=versions(),
        loadavg_start=loadavg(),
    )
    measured: dict[str, str] = dict(doc.get("measured") or {})
    rates: dict[str, dict[str, Any]] = dict(doc.get("host_rates") or {})

    @contextlib.contextmanager
    def bracketed(part: str) -> Iterator[None]:
        # The host's rates before and after a part (the busy part's spinner not running).
        start = host_rates()
        yield
        rates[part] = {"start": start, "end": host_rates()}

    if "epoch" in parts:
        with bracketed("epoch"):
            doc["idle"] = per_epoch(data, epochs, repeats, busy=False, with_scvi=with_scvi)
            own = per_epoch(data, epochs, repeats, busy=False, with_scvi=False, batch_size=None)
            scvi_idle = doc["idle"].get("scvi", {}).get("per_epoch_s")
            if scvi_idle:
                own["speedup"] = scvi_idle / own["geneae"]["per_epoch_s"]
            doc["idle_default_batch"] = own
            # The same with train.compile on (off by default at this size; geneae.resolve).
            compiled = per_epoch(
                data, epochs, repeats, busy=False, with_scvi=False, batch_size=None,
                compile_step=True,
            )  # fmt: skip
            if scvi_idle:
                compiled["speedup"] = scvi_idle / compiled["geneae"]["per_epoch_s"]
            doc["idle_compiled"] = compiled
            doc.pop("idle_float32", None)  # from an earlier run: not of this machine state
            if choose_precision("auto", "cpu")[0] != "32":  # geneae in float32 beside it
                full = per_epoch(data, epochs, repeats, busy=False, with_scvi=False, precision="32")
                if scvi_idle:
                    full["speedup"] = scvi_idle / full["geneae"]["per_epoch_s"]
                doc["idle_float32"] = full
    if "busy" in parts:
        with bracketed("busy"):
            doc["busy"] = per_epoch(data, busy_epochs, repeats, busy=True, with_scvi=with_scvi)
    if "to-model" in parts:
        with bracketed("to-model"):
            # Datasets not timed now keep their earlier timings (each with its date).
            earlier = measured.get("to-model")
            for t in (doc.get("time_to_model") or {}).values():
                t.setdefault("measured", earlier)
            timed = time_to_models(to_model_datasets, with_scvi=with_scvi)
            for t in timed.values():
                t["measured"] = doc["updated"]
            doc["time_to_model"] = {**(doc.get("time_to_model") or {}), **timed}
        # Each dataset keeps the rates of the run that timed it (a later run of other
        # datasets replaces the part's).
        for t in timed.values():
            t["host_rates"] = rates["to-model"]
    doc["host_rates"] = rates
    for part in parts:
        measured[part] = doc["updated"]
    doc["measured"] = measured
    doc["loadavg_end"] = loadavg()
    return doc


def write_wallclock(
    out_dir: Path, parts: tuple[str, ...] = WALLCLOCK_PARTS, **options: Any
) -> dict[str, Any]:
    """Run :func:`run_wallclock` for ``parts`` and write ``wallclock.json`` (the sections
    of the other parts kept from the file as it was)."""
    from benchmarks.common import command_line, read_json, write_json_atomic

    path = out_dir / "wallclock.json"
    previous = read_json(path)
    doc = run_wallclock(parts=parts, previous=previous, **options)
    # Every command whose measurements the file still holds (parts not re-run are kept).
    commands = list((previous or {}).get("commands", []))
    doc["commands"] = commands + [c for c in [command_line()] if c not in commands]
    write_json_atomic(path, doc)
    print(f"wrote {path}", flush=True)
    return doc
