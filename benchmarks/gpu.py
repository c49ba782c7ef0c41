"""The speed benchmark's GPU part: correctness first, then throughput, on one CUDA device.

    python -m benchmarks speed --speed-parts gpu     (writes gpu.json; a note without CUDA)

In the order of what matters, each step skipped once the part's time budget is spent (a
lent GPU's time is short), each recorded as it finishes:

1. **ceilings**: 2048^3 and 8192^3 matrix products in float32 (TF32 off, torch's default)
   and bfloat16, and a device-to-device copy (bytes read plus written);
2. **the same loss trajectory**: the first epochs of the scvi-size model (NB, 1 x 128,
   latent 10, batch 128) on 10x PBMC, the same seed on the CPU and on the GPU. A
   deterministic autoencoder (no dropout, no sampling) must follow the CPU's per-epoch loss
   to float32 rounding; the VAE draws its noise from the device's own generator, so its
   GPU trajectory must stay as close to the CPU's as a second CPU seed is;
3. **throughput**: cells per second of training, per-epoch by difference (t(2N) - t(N)) / N
   as on the CPU, at batches 128-4096 on a synthetic count matrix resident on the device,
   geneae in float32 (``auto`` on a GPU) and in bf16-mixed against scvi-tools (float32, its
   own data loader) in the same process;
4. **anatomy of a step**: at batch 1024, the GPU's kernel time per step (torch.profiler)
   against the step's wall time: how far a step is from being bound by the GPU's work;
5. **the default run**: benchmarks.quality's ``recommended`` and ``scvi`` records on 10x
   PBMC (seed 0) on the GPU: fit time and ARI beside the CPU's records in quality.json.
"""

from __future__ import annotations

import shlex
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import (
    command_line,
    counts_anndata,
    load_dataset,
    loadavg,
    machine_info,
    now,
    run_part,
    versions,
    write_json_atomic,
)
from benchmarks.speed import (
    BATCH,
    HIDDEN,
    LATENT,
    _hvg_counts,
    compare_pair,
    geneae_fit,
    matmul_gflops,
)

GPU_BATCHES = (4096, 2048, 1024, 512, 256, 128)  # the quick ones first
THROUGHPUT_CELLS = 32_768
THROUGHPUT_EPOCHS = 2  # N of the per-epoch difference; 1 + N + 2N epochs per row and batch
TRAJECTORY_EPOCHS = 5
#: Largest relative per-epoch loss difference, deterministic model, float32 on both.
FLOAT32_TOLERANCE = 1e-3
ANATOMY_BATCH = 1024
#: geneae's rows on the GPU: as a user's run trains there (float32, each step a replay of
#: a CUDA graph), without the graph, and in bf16-mixed (no graph: geneae.train.plan).
GPU_ROWS: dict[str, dict[str, Any]] = {
    "geneae": {},
    "geneae-eager": {"train.cuda_graph": False},
    "geneae-bf16": {"train.precision": "bf16-mixed"},
}
DEFAULT_BUDGET_S = 420.0
#: The device the part measures; ``--dry-run-on-cpu`` runs the same code on the CPU, to check
#: it before a GPU's scarce time is spent on it.
DEVICE = "cuda"


# -- 1. ceilings -----------------------------------------------------------------------------
def copy_gbps(n_bytes: int = 2 * 2**30, reps: int = 10) -> float:
    """Device-to-device copy rate in GB/s, counting the bytes read and written."""
    import torch

    src = torch.rand(n_bytes // 4, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        dst.copy_(src)
    stop.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(stop) / 1000 / reps
    return 2 * n_bytes / seconds / 1e9


def ceilings() -> dict[str, Any]:
    import torch

    return {
        "device_name": torch.cuda.get_device_name(0),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "gflops_2048": matmul_gflops(2048, 2048, 2048, "cuda"),
        "gflops_2048_bf16": matmul_gflops(2048, 2048, 2048, "cuda", dtype="bfloat16"),
        "gflops_8192": matmul_gflops(8192, 8192, 8192, "cuda"),
        "gflops_8192_bf16": matmul_gflops(8192, 8192, 8192, "cuda", dtype="bfloat16"),
        "copy_gbps": copy_gbps(),
    }


# -- 2. the same loss trajectory -------------------------------------------------------------
def _trajectory(
    adata: Any, accelerator: str, precision: str, seed: int, family: str, graph: bool = True
) -> list[float]:
    """Per-epoch training loss of the comparison's model (``family``, no validation)."""
    settings: dict[str, Any] = {
        "model.family": family,
        "train.seed": seed,
        "train.precision": precision,
        "train.cuda_graph": graph,
    }
    if family == "ae":
        settings["model.dropout"] = 0.0  # nothing random but the (CPU-drawn) batch order
    _, model = geneae_fit(adata, TRAJECTORY_EPOCHS, BATCH, accelerator, settings)
    return [float(v) for v in model.history["train_loss"]]


def relative_gaps(a: list[float], b: list[float]) -> list[float]:
    """|a - b| / |b| per epoch."""
    return [abs(x - y) / abs(y) for x, y in zip(a, b, strict=True)]


def trajectories(adata: Any) -> dict[str, Any]:
    """Per-epoch training loss on the CPU and on the GPU from the same seed."""
    ae_cpu = _trajectory(adata, "cpu", "32", 0, "ae")
    ae_gpu = _trajectory(adata, DEVICE, "32", 0, "ae")
    ae_eager = _trajectory(adata, DEVICE, "32", 0, "ae", graph=False)
    ae_bf16 = _trajectory(adata, DEVICE, "bf16-mixed", 0, "ae")
    vae_cpu = _trajectory(adata, "cpu", "32", 0, "vae")
    vae_cpu_seed1 = _trajectory(adata, "cpu", "32", 1, "vae")
    vae_gpu = _trajectory(adata, DEVICE, "32", 0, "vae")
    vae_eager = _trajectory(adata, DEVICE, "32", 0, "vae", graph=False)
    ae_gap = relative_gaps(ae_gpu, ae_cpu)
    vae_gap = relative_gaps(vae_gpu, vae_cpu)
    seed_gap = relative_gaps(vae_cpu_seed1, vae_cpu)
    mean = sum(vae_gap) / len(vae_gap)
    seed_mean = sum(seed_gap) / len(seed_gap)
    return {
        "epochs": TRAJECTORY_EPOCHS,
        "ae_cpu": ae_cpu,
        "ae_gpu_float32": ae_gpu,
        "ae_gpu_float32_eager": ae_eager,
        "ae_gpu_bf16": ae_bf16,
        "ae_float32_gap": ae_gap,
        "ae_eager_gap": relative_gaps(ae_eager, ae_cpu),
        "ae_bf16_gap": relative_gaps(ae_bf16, ae_cpu),
        "ae_float32_within_tolerance": max(ae_gap) <= FLOAT32_TOLERANCE,
        "float32_tolerance": FLOAT32_TOLERANCE,
        "vae_cpu": vae_cpu,
        "vae_cpu_seed1": vae_cpu_seed1,
        "vae_gpu_float32": vae_gpu,
        "vae_gpu_float32_eager": vae_eager,
        "vae_gap": vae_gap,
        "vae_eager_gap": relative_gaps(vae_eager, vae_cpu),
        "vae_seed_gap": seed_gap,
        # The noise differs from the CPU's as a second seed's does: the mean gap over the
        # epochs within twice the seeds' (one epoch's gap of five is itself noisy).
        "vae_within_seed_band": mean <= 2 * seed_mean,
    }


# -- 3. throughput ---------------------------------------------------------------------------
def synthetic_adata(n_cells: int) -> Any:
    from benchmarks.synthetic import synthetic_counts

    return counts_anndata(*synthetic_counts(n_cells, 2000, 10, seed=0))


def throughput_row(
    adata: Any, batch: int, has_scvi: bool, rows: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    res = compare_pair(
        adata, THROUGHPUT_EPOCHS, batch, DEVICE, with_scvi=has_scvi, geneae_rows=rows
    )
    row: dict[str, Any] = {"batch_size": batch}
    for name in (*rows, "scvi"):
        rec = res.get(name) or {}
        row[f"{name}_cells_per_s"] = rec.get("cells_per_s")
        row[f"{name}_seconds_per_epoch"] = rec.get("seconds_per_epoch")
        row[f"{name}_gflops"] = rec.get("achieved_gflops")
        if rec.get("cuda_graph"):
            row[f"{name}_cuda_graph"] = rec["cuda_graph"]
        if rec.get("status") == "failed":
            row[f"{name}_error"] = rec.get("error")
    return row


# -- 4. the default run ----------------------------------------------------------------------
def default_runs(has_scvi: bool) -> dict[str, Any]:
    """benchmarks.quality's records of the default and of scvi-tools, trained on the GPU."""
    from benchmarks.quality import run_one as quality_run

    keep = ("ari", "nmi", "fit_s", "train_s", "device", "epochs", "evaluate_s", "status")
    out: dict[str, Any] = {"dataset": "pbmc_10x", "seed": 0}
    for method in ("recommended", *(("scvi",) if has_scvi else ())):
        t0 = time.perf_counter()
        rec = quality_run({"method": method, "seed": 0, "dataset": "pbmc_10x"})
        out[method] = {k: rec.get(k) for k in keep} | {"wall_s": time.perf_counter() - t0}
    return out


# -- 5. anatomy of a step --------------------------------------------------------------------
def step_anatomy(adata: Any, batch: int = ANATOMY_BATCH, epochs: int = 2) -> dict[str, Any]:
    """Kernel time and kernel launches per step of a whole fit, under torch.profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    geneae_fit(adata, 1, batch, DEVICE)  # warm: kernels chosen, allocator grown
    t_plain, _ = geneae_fit(adata, epochs, batch, DEVICE)
    activities = [ProfilerActivity.CPU]
    if DEVICE == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        t_prof, _ = geneae_fit(adata, epochs, batch, DEVICE)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    kernel_us, kernels = 0.0, 0
    for evt in prof.events():  # the device's activities: kernels, copies, memsets
        if str(getattr(evt, "device_type", "")).endswith("CUDA"):
            kernel_us += evt.time_range.elapsed_us()
            kernels += 1
    device_us = sum(  # the same total as the operators see it, a cross-check
        float(getattr(e, "self_device_time_total", 0.0) or 0.0) for e in prof.key_averages()
    )
    steps = epochs * -(-adata.n_obs // batch)
    return {
        "batch_size": batch,
        "steps": steps,
        "train_s": t_plain,
        "train_s_profiled": t_prof,
        "step_ms": 1000 * t_plain / steps,
        "kernel_ms_per_step": kernel_us / 1000 / steps,
        "kernels_per_step": kernels / steps,
        "device_ms_per_step_by_operators": device_us / 1000 / steps,
        "gpu_busy_fraction": (kernel_us / 1e6) / t_plain if t_plain > 0 else None,
    }


# -- the part ------------------------------------------------------------------------------------
def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """The GPU measurements (in a worker process), each step inside the time budget."""
    import importlib.util

    import torch

    t_start = time.perf_counter()
    budget = float(spec.get("budget_s") or DEFAULT_BUDGET_S)
    progress = Path(spec["progress_path"]) if spec.get("progress_path") else None
    doc: dict[str, Any] = {
        "kind": "gpu",
        "schema": 1,
        "updated": now(),
        "commands": [spec.get("command") or command_line()],
        "machine": machine_info(),
        "versions": versions(),
        "budget_s": budget,
        "loadavg_start": loadavg(),
        "skipped": [],
        "errors": {},
    }
    if DEVICE == "cuda" and not torch.cuda.is_available():
        doc.update(status="ok", note="no CUDA device (torch.cuda.is_available() is False)")
        return doc
    has_scvi = importlib.util.find_spec("scvi") is not None
    doc["scvi"] = None if has_scvi else "scvi-tools not installed: its columns skipped"

    skip = set(spec.get("skip") or ())

    def step(name: str, work: Callable[[], Any], needs_s: float) -> None:
        left = budget - (time.perf_counter() - t_start)
        if name in skip:
            doc["skipped"].append(f"{name} (asked)")
        elif left < needs_s:
            doc["skipped"].append(f"{name} (needs ~{needs_s:.0f} s, {left:.0f} s left)")
        else:
            print(f"[gpu] {name} at {time.perf_counter() - t_start:.0f} s", flush=True)
            t0 = time.perf_counter()
            try:
                doc[name] = work()
            except Exception as exc:
                traceback.print_exc()
                doc["errors"][name] = f"{type(exc).__name__}: {exc}"
            doc.setdefault("seconds", {})[name] = time.perf_counter() - t0
        doc["updated"] = now()
        if progress is not None:
            write_json_atomic(progress, doc)

    if DEVICE == "cuda":
        step("ceilings", ceilings, 5)
    pbmc = _hvg_counts(load_dataset("pbmc_10x"))
    doc["dataset"] = {"name": "pbmc_10x", "n_cells": int(pbmc.n_obs), "n_genes": int(pbmc.n_vars)}
    step("trajectories", lambda: trajectories(pbmc), 30)
    syn = synthetic_adata(int(spec.get("throughput_cells") or THROUGHPUT_CELLS))
    doc["throughput_data"] = {"name": "synthetic", "n_cells": int(syn.n_obs), "n_genes": 2000}
    rows = {name: GPU_ROWS[name] for name in spec.get("rows") or GPU_ROWS}
    doc["throughput_rows"] = rows
    doc["throughput"] = []
    for batch in spec.get("batches") or GPU_BATCHES:
        work = partial(throughput_row, syn, batch, has_scvi, rows)
        step(f"throughput_{batch}", work, float(spec.get("throughput_needs_s") or 25))
        row = doc.pop(f"throughput_{batch}", None)
        if row is not None:
            doc["throughput"].append(row)
    step("anatomy", lambda: step_anatomy(syn), 15)
    step("default_runs", lambda: default_runs(has_scvi), 90)
    doc["loadavg_end"] = loadavg()
    doc["total_s"] = time.perf_counter() - t_start
    doc["status"] = "ok"
    return doc


def run_gpu(out_dir: Path, *, timeout: float | None = None) -> dict[str, Any] | None:
    """Run the GPU part in its own process; write ``gpu.json`` when it succeeds."""
    import torch

    if not torch.cuda.is_available():  # the last GPU's results stay as they were
        print("[gpu] no CUDA device here: gpu.json left as it was", flush=True)
        return None
    print("[gpu] correctness and throughput on the GPU", flush=True)
    spec = {"task": "gpu", "command": command_line()}
    result = run_part(spec, out_dir, "gpu", timeout)
    if result is not None:
        print("\n".join(gpu_markdown(result)))
        print(f"wrote {out_dir / 'gpu.json'}")
    return result


# -- BENCHMARKS.md -------------------------------------------------------------------------------
ROW_TITLES = {
    "geneae": "geneae as a user's run trains",
    "geneae-eager": "geneae without the graph",
    "geneae-bf16": "geneae bf16-mixed",
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
        "order below; commands in the list above). Ceilings measured in the same run: "
        f"matrix product 8192^3 {_n(c.get('gflops_8192_bf16'))} GFLOP/s in bfloat16, "
        f"{_n(c.get('gflops_8192'))} in float32 (TF32 {'on' if c.get('tf32_matmul') else 'off'}); "
        f"2048^3 {_n(c.get('gflops_2048_bf16'))} and {_n(c.get('gflops_2048'))}; "
        f"device-to-device copy {_n(c.get('copy_gbps'))} GB/s.",
        "",
    ]
    lines += _trajectory_lines(doc.get("trajectories"))
    lines += _throughput_lines(doc.get("throughput") or [], doc.get("throughput_data") or {})
    a, before = doc.get("anatomy"), (doc.get("earlier") or {}).get("anatomy")
    if a:
        lines += [
            f"**Anatomy of a step** at batch {a['batch_size']} (a whole fit under "
            f"torch.profiler): **{a['step_ms']:.2f} ms** a step, of which the GPU's kernels "
            f"take {a['kernel_ms_per_step']:.2f} ms ({a['kernels_per_step']:.0f} kernels; the "
            f"GPU busy {100 * (a['gpu_busy_fraction'] or 0):.0f}% of the time)"
            + (
                f"; before CUDA graphs {before['step_ms']:.2f} ms, of which kernels "
                f"{before['kernel_ms_per_step']:.2f} ms (busy "
                f"{100 * (before['gpu_busy_fraction'] or 0):.0f}%): the host's launches, "
                "not the GPU, set the pace of these small networks' steps"
                if before
                else ""
            )
            + ".",
            "",
        ]
    d = doc.get("default_runs")
    if d:
        parts = [
            f"`{m}` ARI {r['ari']:.3f}, NMI {r['nmi']:.3f}, fit {r['fit_s']:.1f} s"
            for m, r in ((m, d.get(m)) for m in ("recommended", "scvi"))
            if r and r.get("ari") is not None
        ]
        lines += [
            "**The default run on the GPU** (benchmarks.quality's records, 10x PBMC, seed 0, "
            f"{d.get('updated', doc['updated'])}): " + "; ".join(parts) + ".",
            "",
        ]
    earlier = doc.get("earlier")
    if earlier:
        lines += [
            f"Earlier the same day ({earlier['updated']}), {earlier['note']}:",
            "",
        ]
        eager = {"geneae": "geneae float32 (eager, as runs trained then)"}
        lines += _throughput_lines(earlier["throughput"], earlier["throughput_data"], eager)
    for what, err in (doc.get("errors") or {}).items():
        lines += [f"- {what} failed: {err}"]
    for what in doc.get("skipped") or []:
        lines += [f"- skipped: {what}"]
    if doc.get("errors") or doc.get("skipped"):
        lines.append("")
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
        f"{_gaps(t['ae_bf16_gap'])}; the VAE, whose noise comes from the device's own "
        f"generator, {_gaps(t['vae_gap'])}{vae_eager} against {_gaps(t['vae_seed_gap'])} "
        "between two seeds on the CPU ("
        + ("within" if t["vae_within_seed_band"] else "OUTSIDE")
        + " twice that band on average).",
        "",
    ]


def _throughput_lines(
    rows: list[dict[str, Any]], data: dict[str, Any], titles: dict[str, str] | None = None
) -> list[str]:
    titles = {**ROW_TITLES, **(titles or {})}
    if not rows:
        return []
    names = [n for n in (*GPU_ROWS, "scvi") if any(r.get(f"{n}_cells_per_s") for r in rows)]
    lines = [
        f"**Throughput**, cells per second of training on synthetic counts "
        f"({data['n_cells']:,} cells x {data['n_genes']:,} genes, sparse; geneae's data "
        "resident on the GPU, scvi-tools with its own loader), per-epoch by difference "
        f"(t(2N) - t(N)) / N with N = {THROUGHPUT_EPOCHS}, every row in one process:",
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


def main(argv: list[str] | None = None) -> int:
    """Run the part in this process, writing ``gpu.json`` as each step finishes."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="gpu.json to write")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    p.add_argument("--cells", type=int, default=THROUGHPUT_CELLS)
    p.add_argument("--batches", type=int, nargs="+", default=list(GPU_BATCHES))
    p.add_argument("--skip", nargs="*", default=[], help="steps to leave out, by name")
    p.add_argument("--rows", nargs="+", default=list(GPU_ROWS), choices=list(GPU_ROWS))
    p.add_argument("--throughput-needs-s", type=float, default=25.0)
    p.add_argument("--dry-run-on-cpu", action="store_true", help="the same code on the CPU")
    raw = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(raw)
    # As typed, but --out by its name alone (a lent machine's folder means nothing later).
    shown = [
        Path(a).name if before == "--out" else a
        for before, a in zip(["", *raw[:-1]], raw, strict=True)
    ]
    command = " ".join(["python -m benchmarks.gpu", *(shlex.quote(a) for a in shown)])
    if args.dry_run_on_cpu:
        global DEVICE
        DEVICE = "cpu"
    spec = {
        "budget_s": args.budget_s,
        "progress_path": str(args.out),
        "throughput_cells": args.cells,
        "batches": args.batches,
        "skip": args.skip,
        "rows": args.rows,
        "throughput_needs_s": args.throughput_needs_s,
        "command": command,
    }
    doc = run_one(spec)
    write_json_atomic(args.out, doc)
    print("\n".join(gpu_markdown(doc)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
