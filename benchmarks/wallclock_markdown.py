"""BENCHMARKS.md's section of wallclock.json: the tables and lines of the whole-process timings.

The timings themselves are :mod:`benchmarks.wallclock`'s; this module only reads what they
wrote (and quality.json's ARI, quoted beside the times to a model).
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.wallclock import TIME_TO_MODEL_DATASETS


def thread_note(doc: dict[str, Any]) -> list[str]:
    """A line naming the rows whose geneae runs chose different thread counts (else none)."""
    mixed = []
    for key, label in (
        ("idle", "idle"),
        ("busy", "one core busy"),
        ("idle_default_batch", "default batch"),
        ("idle_compiled", "compiled"),
        ("idle_float32", "float32"),
    ):
        by_n = ((doc.get(key) or {}).get("geneae") or {}).get("threads") or {}
        counts = sorted({t for runs in by_n.values() for t in runs if t is not None})
        if len(counts) > 1:
            per = "; ".join(f"{n} epochs: {', '.join(map(str, runs))}" for n, runs in by_n.items())
            mixed.append(f"{label} ({per})")
    if not mixed:
        return []
    return [
        "Runs of one row chose different CPU thread counts (geneae.threads counts the cores "
        f"idle when a run starts), so its medians mix two settings: {'; '.join(mixed)}.",
        "",
    ]


def _repeats(timed: dict[str, Any]) -> str:
    """`` (repeats a, b, c)``: a variant's per-epoch seconds repeat by repeat, where kept."""
    values = timed.get("per_epoch_by_repeat_s")
    return f" (repeats {', '.join(f'{v:.3f}' for v in values)})" if values else ""


def spread_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Each row's speed-up repeat by repeat, and the training loops' own (where recorded)."""

    def listed(values: list[float | None]) -> str:
        return ", ".join("–" if v is None else f"{v:.2f}x" for v in values)

    parts = []
    for label, part in rows.items():
        if not part.get("speedup_by_repeat"):
            continue  # a file from before the repeats were kept
        text = f"{label}: whole process {listed(part['speedup_by_repeat'])}"
        if part.get("loop_speedup") is not None:
            g, sc = part["geneae"], part["scvi"]
            text += (
                f"; training loop alone {g['loop_per_epoch_s']:.3f} against "
                f"{sc['loop_per_epoch_s']:.3f} s per epoch, **{part['loop_speedup']:.2f}x** "
                f"({listed(part['loop_speedup_by_repeat'])})"
            )
        parts.append(text)
    if not parts:
        return []
    return [
        "Speed-up of each repeat alone (its two tools' runs ran one after the other; the "
        "spread is this machine's noise), and of the training loops as each run timed "
        "them itself (geneae's metrics.json `train_s` less its clustering phase, the "
        "script's clock around `model.train`: start-up, reading, evaluation and saving "
        f"left out): {'; '.join(parts)}.",
        "",
    ]


#: fixed_parts' keys, in the order and words of BENCHMARKS.md.
_FIXED_PART_NAMES = (
    ("start_up_and_imports_s", "start-up and imports"),
    ("reading_s", "reading and preprocessing"),
    ("phase_s", "clustering phase"),
    ("evaluation_s", "evaluation"),
    ("rest_s", "the rest"),
)


def fixed_part_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """geneae's fixed cost by part for each row that recorded its parts (else none)."""
    parts = []
    for label, part in rows.items():
        g = part.get("geneae") or {}
        split = g.get("fixed_parts")
        if not split:
            continue  # a file from before the parts were kept
        named = ", ".join(
            f"{name} {split[key]:.1f}"
            for key, name in _FIXED_PART_NAMES
            if split.get(key) is not None
        )
        parts.append(f"{label}: {g['fixed_s']:.1f} s = {named}")
    if not parts:
        return []
    return [
        "geneae's fixed cost by part (seconds; each run's own timings from its metrics.json, "
        "median over the N-epoch runs; start-up and imports: a bare interpreter importing "
        "what `geneae train` imports, median of 3, in the row's conditions; the rest by "
        "difference: the trainer's set-up, the model's start from the data, saving, and "
        f"the noise of N x the per-epoch figure): {'; '.join(parts)}.",
        "",
    ]


def mean_ari(quality: dict[str, Any] | None, dataset: str, method: str) -> float | None:
    """Mean ARI (KMeans) of ``method`` on ``dataset`` over the seeds in ``quality.json``."""
    scores = [
        r["ari"]
        for r in (quality or {}).get("records", [])
        if r.get("dataset") == dataset and r.get("method") == method and "ari" in r
    ]
    return statistics.mean(scores) if scores else None


def host_rate_lines(rates: dict[str, Any] | None) -> list[str]:
    """One sentence: the 2048^3 matmul rate before and after each part (:func:`host_rates`)."""
    if not rates:
        return []

    parts = "; ".join(
        f"{part} {_rate_pair(r.get('start'))} before, {_rate_pair(r.get('end'))} after"
        for part, r in rates.items()
    )
    return [
        "The host's state during these runs: a 2048^3 matmul (float32 / bfloat16 GFLOP/s, "
        f"the benchmark's threads), {parts}. This machine's vector throughput moves with "
        "its host's load without showing in its load average; parts whose rates differ "
        "ran on a different machine, in effect.",
        "",
    ]


def _rate_span(rates: dict[str, Any] | None) -> str:
    """``"f32 / bf16 -> f32 / bf16"``: a run's host rates before and after, or "–"."""
    if not rates:
        return "–"
    return " → ".join(_rate_pair(rates.get(when)) for when in ("start", "end"))


def _rate_pair(rates: dict[str, float | None] | None) -> str:
    """``"f32 / bf16"`` GFLOP/s, each "–" where not measured (bfloat16 on a CPU emulating it)."""
    if not rates:
        return "–"
    return " / ".join(
        "–" if rates.get(dtype) is None else f"{rates[dtype]:.0f}"
        for dtype in ("float32", "bfloat16")
    )


def compiled_lines(doc: dict[str, Any]) -> list[str]:
    """The line of the compiled variant (``idle_compiled``) against scvi-tools, where run."""
    compiled = doc.get("idle_compiled", {})
    if not (compiled.get("geneae") and compiled.get("speedup")):
        return []
    runs = [c or {} for by_n in (compiled["geneae"].get("compile") or {}).values() for c in by_n]
    first = [c.get("first_step_s") for c in runs]
    eager = [c["note"] for c in runs if c.get("note")]
    took = ""
    if first and all(v is not None for v in first):
        low, high = f"{min(first):.0f}", f"{max(first):.0f}"
        took = f"; the first, compiling step took {low if low == high else f'{low}-{high}'} s"
    fell_back = f" ({len(eager)} of {len(runs)} runs not compiled: {eager[0]})" if eager else ""
    loops = ""
    eager_loop = (doc.get("idle_default_batch") or {}).get("geneae", {}).get("loop_per_epoch_s")
    compiled_loop = compiled["geneae"].get("loop_per_epoch_s")
    if eager_loop and compiled_loop:  # the runs' own clocks: start-up noise left out
        loops = (
            f" By the runs' own training clocks, {compiled_loop:.3f} s per epoch compiled "
            f"against {eager_loop:.3f} eager at the same batch: "
            f"**{eager_loop / compiled_loop:.2f}x**."
        )
    return [
        "The same at geneae's default batch with its step compiled (`train.compile: true`, "
        "geneae.train.compiled; off by default at this size, where the compile costs more "
        f"than it saves): geneae {compiled['geneae']['per_epoch_s']:.3f} s per epoch"
        f"{_repeats(compiled['geneae'])}: **{compiled['speedup']:.2f}x** scvi-tools"
        f"{took}{fell_back}.{loops}",
        "",
    ]


def markdown(doc: dict[str, Any] | None, quality: dict[str, Any] | None = None) -> list[str]:
    """The BENCHMARKS.md section of ``wallclock.json`` (ARI beside times from ``quality``)."""
    lines = ["### Whole process, as users run it", ""]
    if doc is None:
        return lines + ["Not run. Run `python -m benchmarks speed`.", ""]

    def row(label: str, part: dict[str, Any]) -> str:
        g, s = part.get("geneae", {}), part.get("scvi", {})
        speedup = part.get("speedup")
        return (
            f"| {label} | {g.get('per_epoch_s', float('nan')):.3f} | "
            f"{s.get('per_epoch_s', float('nan')):.3f} | "
            f"{'–' if speedup is None else f'{speedup:.2f}x'} | "
            f"{g.get('fixed_s', float('nan')):.1f} | {s.get('fixed_s', float('nan')):.1f} |"
        )

    idle, busy = doc["idle"], doc["busy"]
    lines += [
        f"{doc['dataset']}: `geneae train` (defaults, report off, no early stopping) and a "
        "scvi-tools script (SCVI with n_hidden 128, n_latent 10, NB; train(batch_size=128, "
        "early_stopping=False); model.save) as whole processes. Per epoch = (median t(2N) - "
        f"median t(N)) / N over {idle['repeats']} interleaved runs each: N = "
        f"{idle['epochs'][0]} idle, N = {busy['epochs'][0]} with one core kept busy by a "
        "spinning process (`--busy-epochs`; few epochs there, as scvi-tools slows down "
        "most, so the busy figures are rougher). `fixed s`: the rest of a run "
        "(start-up, reading, preprocessing, the clustering phase for geneae, evaluation "
        "without report, saving).",
        "",
        "| machine | geneae s/epoch | scvi-tools s/epoch | speed-up | geneae fixed s | "
        "scvi-tools fixed s |",
        "|---|---|---|---|---|---|",
        row("idle", idle),
        row("one core busy", busy),
        "",
    ]
    lines += host_rate_lines(doc.get("host_rates"))
    lines += thread_note(doc)
    lines += spread_lines({"idle": idle, "one core busy": busy})
    lines += fixed_part_lines({"idle": idle, "one core busy": busy})
    g_idle = idle.get("geneae", {}).get("per_epoch_s")
    g_busy = busy.get("geneae", {}).get("per_epoch_s")
    measured = doc.get("measured") or {}
    if g_idle and g_busy and measured.get("busy") == measured.get("epoch"):
        lines += [f"geneae busy / idle per epoch: **{g_busy / g_idle:.2f}x**.", ""]
    elif g_idle and g_busy:  # a ratio across two runs would compare two machine states
        lines += [
            f"geneae busy / idle per epoch: not computed, the two rows are from different "
            f"runs (busy {measured.get('busy')}, idle {measured.get('epoch')}); rerun "
            "`--speed-parts epoch busy` for the ratio of one run.",
            "",
        ]
    full = doc.get("idle_float32", {})
    if full.get("geneae") and full.get("speedup"):
        lines += [
            "The idle rows train in geneae's default precision (`train.precision: auto`: "
            "bf16-mixed on this CPU, see geneae.precision); geneae in float32 at batch 128, "
            f"same run: {full['geneae']['per_epoch_s']:.3f} s per epoch"
            f"{_repeats(full['geneae'])}, **{full['speedup']:.2f}x** scvi-tools.",
            "",
        ]
    own = doc.get("idle_default_batch", {})
    if own.get("geneae") and own.get("speedup"):
        lines += [
            "At each tool's default batch size (geneae's default, scvi-tools 128), idle: "
            f"geneae {own['geneae']['per_epoch_s']:.3f} s per epoch{_repeats(own['geneae'])}, "
            f"scvi-tools {idle['scvi']['per_epoch_s']:.3f}: **{own['speedup']:.2f}x**.",
            "",
        ]
    lines += compiled_lines(doc)
    ttm = doc.get("time_to_model") or {}
    if ttm and "geneae" in ttm:  # an older file: one dataset, timings at the top level
        ttm = {doc["dataset"]: ttm}
    if ttm:
        stopping = (
            "early stopping as the default has it"
            if all(t.get("geneae_stopping") == "default" for t in ttm.values())
            else "early stopping off in some rows (measured before it was left on; an upper bound)"
        )
        lines += [
            "Time from the file to a saved model with each tool's defaults, one run each "
            "(geneae: `geneae train` with its defaults — three members, side by side "
            "where the CPU threads allow, default epochs, "
            f"{stopping} — and the report off; "
            "scvi-tools: `SCVI()` defaults (ZINB) and its default epochs, batch 128), with "
            "each default's mean ARI over 3 seeds from the quality section (scvi-tools "
            "scored there at 100 epochs, which BASELINES.md found better than its default "
            "400), and the host's 2048^3 matmul rates before and after the run that timed "
            "the dataset (see above: ratios of runs at other rates are not comparable):",
            "",
            "| dataset | geneae s | scvi-tools s | speed-up | geneae ARI | scvi-tools ARI "
            "| host float32 / bfloat16 GFLOP/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, t in ttm.items():
            g_ari, s_ari = mean_ari(quality, name, "recommended"), mean_ari(quality, name, "scvi")
            lines.append(
                f"| {name} | {t.get('geneae', float('nan')):.1f} | "
                f"{t.get('scvi', float('nan')):.1f} | "
                + (f"**{t['speedup']:.2f}x**" if t.get("speedup") else "–")
                + f" | {'–' if g_ari is None else f'{g_ari:.3f}'} | "
                f"{'–' if s_ari is None else f'{s_ari:.3f}'} | {_rate_span(t.get('host_rates'))} |"
            )
        lines.append("")
        measured = doc.get("measured") or {}
        to_model_on = measured.get("to-model", doc.get("time_to_model_updated"))
        epoch_on = measured.get("epoch", doc.get("updated"))
        dates: dict[str, list[str]] = {}
        for name, t in ttm.items():
            dates.setdefault(str(t.get("measured") or to_model_on), []).append(name)
        missing = [d for d in TIME_TO_MODEL_DATASETS if d not in ttm]
        if len(dates) > 1 or (to_model_on and to_model_on != epoch_on):
            when = "; ".join(f"{', '.join(names)} on {day}" for day, names in dates.items())
            lines += [
                f"Times to a model measured {when} (both tools of a dataset in one run), "
                f"the per-epoch rows above on {epoch_on}: compare ratios, not seconds, "
                "across them." + (f" Not measured: {', '.join(missing)}." if missing else ""),
                "",
            ]
    return lines
