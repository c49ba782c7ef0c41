"""BENCHMARKS.md's GPU section, from ``gpu.json`` (written by :mod:`benchmarks.gpu`)."""

from __future__ import annotations

from typing import Any

from benchmarks.gpu import ANATOMY_BATCH, GPU_ROWS, THROUGHPUT_EPOCHS
from benchmarks.speed import BATCH, HIDDEN, LATENT

ROW_TITLES = {
    "geneae": "geneae as a user's run trains",
    "geneae-eager": "geneae without the graph",
    "geneae-bf16": "geneae bf16-mixed",
    "geneae-tf32": "geneae, TF32 products",
    "scvi": "scvi-tools",
}


def _n(v: Any, fmt: str = ",.0f") -> str:
    return "–" if v is None else format(v, fmt)


def _gaps(values: list[float]) -> str:
    return ", ".join(f"{v:.1e}" for v in values)


def gpu_markdown(doc: dict[str, Any] | None) -> list[str]:
    """BENCHMARKS.md's GPU section."""
    title = "### GPU"
    if doc is None:
        run = "`python -m benchmarks speed --speed-parts gpu`"
        return [title, "", f"Not run. Run {run} on a machine with a GPU.", ""]
    if doc.get("note"):
        return [title, "", f"Not measured: {doc['note']}.", ""]
    c = doc.get("ceilings") or {}
    lines = [
        title,
        "",
        f"{c.get('device_name', 'GPU')} ({doc['updated']}; torch {doc['versions'].get('torch')}"
        f", scvi-tools {doc['versions'].get('scvi-tools')}; a lent machine's time is short, so "
        "the part runs as `python -m benchmarks.gpu` with a time budget, its steps in the "
        "order below; commands in the list above). " + _parts_when(doc) + "Ceilings: "
        f"matrix product 8192^3 {_n(c.get('gflops_8192_bf16'))} GFLOP/s in bfloat16, "
        f"{_n(c.get('gflops_8192'))} in float32 (TF32 {'on' if c.get('tf32_matmul') else 'off'}); "
        f"2048^3 {_n(c.get('gflops_2048_bf16'))} and {_n(c.get('gflops_2048'))}; "
        f"device-to-device copy {_n(c.get('copy_gbps'))} GB/s.",
        "",
    ]
    lines += _trajectory_lines(doc.get("trajectories"))
    lines += _throughput_lines(
        doc.get("throughput") or [],
        doc.get("throughput_data") or {},
        epochs=doc.get("throughput_epochs") or THROUGHPUT_EPOCHS,
    )
    earlier = _earlier_runs(doc)
    eager = next((e.get("anatomy") for e in reversed(earlier) if e.get("anatomy")), None)
    for a in doc.get("anatomies") or ([doc["anatomy"]] if doc.get("anatomy") else []):
        lines += _anatomy_lines(a, eager if a["batch_size"] == ANATOMY_BATCH else None)
    d = doc.get("default_runs")
    if d:
        parts = [
            f"`{m}` ARI {r['ari']:.3f}, NMI {r['nmi']:.3f}, fit {r['fit_s']:.1f} s" + _fit_parts(r)
            for m, r in ((m, d.get(m)) for m in ("recommended", "scvi"))
            if r and r.get("ari") is not None
        ]
        lines += [
            "**The default run on the GPU** (benchmarks.quality's records, 10x PBMC, seed 0, "
            f"{d.get('updated', doc['updated'])}): " + "; ".join(parts) + ".",
            "",
        ]
    for run in earlier:
        lines += [f"Earlier the same day ({run['updated']}), {run['note']}:", ""]
        titles = {"geneae": "geneae float32 (eager, as runs trained then)"}
        if "geneae-eager" in (run.get("throughput_rows") or {}):
            titles = {"geneae": "geneae (graph; as runs trained then)"}
        lines += _throughput_lines(
            run["throughput"], run["throughput_data"], titles, epochs=run["throughput_epochs"]
        )
        if run.get("anatomy") and run is not earlier[-1]:
            lines += _anatomy_lines(run["anatomy"], None)
    for what, err in (doc.get("errors") or {}).items():
        lines += [f"- {what} failed: {err}"]
    for what in doc.get("skipped") or []:
        lines += [f"- skipped: {what}"]
    if doc.get("errors") or doc.get("skipped"):
        lines.append("")
    return lines


def _fit_parts(record: dict[str, Any]) -> str:
    """Where a default run's fit went, where its record says (records from 2026-12-04 on)."""
    if record.get("phase_s") is None:
        return ""
    return (
        f" (preprocessing {record.get('preprocess_s') or 0:.1f} s, training "
        f"{record.get('train_s') or 0:.1f} s; the members' clustering phases "
        f"{record['phase_s']:.1f} s together)"
    )


def _parts_when(doc: dict[str, Any]) -> str:
    """Which runs the parts come from, where they came from more than one."""
    parts = doc.get("parts_updated") or {}
    if len(set(parts.values())) < 2:
        return "Every part from this one run. "
    by_time: dict[str, list[str]] = {}
    for part, when in parts.items():
        by_time.setdefault(when, []).append(part.replace("_", " "))
    runs = "; ".join(f"{', '.join(p)} at {when}" for when, p in sorted(by_time.items()))
    return f"The parts come from several runs: {runs}. "


def _earlier_runs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The part's earlier runs kept beside the latest, newest first (one dict before)."""
    earlier = doc.get("earlier") or []
    return [earlier] if isinstance(earlier, dict) else list(earlier)


def _anatomy_lines(a: dict[str, Any] | None, before: dict[str, Any] | None) -> list[str]:
    if not a:
        return []
    step_scope = a.get("step_scope", "fits of 1 and more epochs, by difference")
    kernel_scope = a.get("kernel_scope", "the same difference")
    lines = [
        f"**Anatomy of a step** at batch {a['batch_size']}: **{a['step_ms']:.2f} ms** a step "
        f"({step_scope}), of which the GPU's kernels and copies take "
        f"{a['kernel_ms_per_step']:.2f} ms ({kernel_scope}; "
        f"{a['kernels_per_step']:.0f} launches, torch.profiler; the GPU busy "
        f"{100 * (a['gpu_busy_fraction'] or 0):.0f}% of the time)"
        + (
            f"; before CUDA graphs {before['step_ms']:.2f} ms ({before.get('step_scope')}), "
            f"of which kernels {before['kernel_ms_per_step']:.2f} ms (busy "
            f"{100 * (before['gpu_busy_fraction'] or 0):.0f}%)"
            if before
            else ""
        )
        + ".",
        "",
    ]
    waits = a.get("host_waits_per_step")
    if waits is not None:
        listed = ", ".join(f"`{site}` {n:.2f}" for site, n in list(waits.items())[:6])
        lines += [
            "Where the host waited for the GPU (torch.cuda's sync debug mode, per step, by "
            "source line; the difference of two fits): "
            + (listed or "nowhere")
            + (f" ({a['host_waits_note']})" if a.get("host_waits_note") else "")
            + ".",
            "",
        ]
    if a.get("top_kernels"):
        lines += [
            "| kernel | µs per step | launches per step |",
            "|---|---|---|",
            *(
                f"| `{k['kernel'][:70]}` | {k['us_per_step']:.1f} | {k['calls_per_step']:.1f} |"
                for k in a["top_kernels"]
            ),
            "",
        ]
    return lines


def _trajectory_lines(t: dict[str, Any] | None) -> list[str]:
    if not t:
        return []
    graph = f"; without the graph {_gaps(t['ae_eager_gap'])}" if t.get("ae_eager_gap") else ""
    vae_eager = (
        f" (without the graph {_gaps(t['vae_eager_gap'])})" if t.get("vae_eager_gap") else ""
    )
    return [
        f"**The same loss trajectory** (10x PBMC, NB, 1 x {HIDDEN}, latent {LATENT}, batch "
        f"{BATCH}, the first {t['epochs']} epochs, seed 0). Relative gap of the per-epoch "
        "training loss on the GPU to the CPU's (float32 on both): the deterministic "
        f"autoencoder {_gaps(t['ae_float32_gap'])}{graph} (tolerance "
        f"{t['float32_tolerance']:.0e}: "
        f"{'within' if t['ae_float32_within_tolerance'] else 'OUTSIDE'}); in bf16-mixed "
        f"{_gaps(t['ae_bf16_gap'])}"
        + (f"; with TF32 products {_gaps(t['ae_tf32_gap'])}" if t.get("ae_tf32_gap") else "")
        + "; the VAE, whose noise comes from the device's own "
        f"generator, {_gaps(t['vae_gap'])}{vae_eager} against {_gaps(t['vae_seed_gap'])} "
        "between two seeds on the CPU ("
        + ("within" if t["vae_within_seed_band"] else "OUTSIDE")
        + " twice that band on average).",
        "",
    ]


def _throughput_lines(
    rows: list[dict[str, Any]],
    data: dict[str, Any],
    titles: dict[str, str] | None = None,
    epochs: int = THROUGHPUT_EPOCHS,
) -> list[str]:
    titles = {**ROW_TITLES, **(titles or {})}
    if not rows:
        return []
    names = [n for n in (*GPU_ROWS, "scvi") if any(r.get(f"{n}_cells_per_s") for r in rows)]
    lines = [
        f"**Throughput**, cells per second of training on synthetic counts "
        f"({data['n_cells']:,} cells x {data['n_genes']:,} genes, sparse; geneae's data "
        "resident on the GPU, scvi-tools with its own loader), per-epoch by difference "
        f"(t(2N) - t(N)) / N with N = {epochs}, every row in one process:",
        "",
        "| batch | " + " | ".join(titles[n] for n in names) + " | geneae / scvi-tools |",
        "|---" * (len(names) + 2) + "|",
    ]
    for r in sorted(rows, key=lambda r: r["batch_size"]):
        cells = " | ".join(_n(r.get(f"{n}_cells_per_s")) for n in names)
        g, s = r.get("geneae_cells_per_s"), r.get("scvi_cells_per_s")
        ratio = f"**{g / s:.1f}x**" if g and s else "–"
        lines.append(f"| {r['batch_size']} | {cells} | {ratio} |")
    lines.append("")
    return lines
