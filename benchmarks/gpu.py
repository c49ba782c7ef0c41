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
   geneae as a user's run trains (float32, CUDA graphs), without the graph, in bf16-mixed
   and with TF32 matrix products (a benchmark-only switch) against scvi-tools (float32, its
   own data loader) in the same process;
4. **anatomy of a step**: at batch 1024 (``--anatomy-batches``), by difference of fits of
   one and more epochs: a step's wall time, the GPU's kernels by name (torch.profiler) and
   the operations that made the host wait for the GPU, by source line (sync debug mode):
   how far a step is from being bound by the GPU's work, and what stands in the way;
5. **the default run**: benchmarks.quality's ``recommended`` and ``scvi`` records on 10x
   PBMC (seed 0) on the GPU: fit time and ARI beside the CPU's records in quality.json.

The anatomy's measurements live in :mod:`benchmarks.gpu_anatomy`, BENCHMARKS.md's section in
:mod:`benchmarks.gpu_markdown`.
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
from benchmarks.gpu_anatomy import step_anatomy
from benchmarks.speed import (
    BATCH,
    TF32_SWITCH,
    _hvg_counts,
    compare_pair,
    geneae_fit,
    matmul_gflops,
)

GPU_BATCHES = (4096, 2048, 1024, 512, 256, 128)  # the quick ones first
THROUGHPUT_CELLS = 32_768
THROUGHPUT_EPOCHS = 3  # N of the per-epoch difference; 1 + N + 2N epochs per row and batch
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
    "geneae-tf32": {TF32_SWITCH: True},
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
    adata: Any,
    accelerator: str,
    precision: str,
    seed: int,
    family: str,
    graph: bool = True,
    tf32: bool = False,
) -> list[float]:
    """Per-epoch training loss of the comparison's model (``family``, no validation)."""
    settings: dict[str, Any] = {
        "model.family": family,
        "train.seed": seed,
        "train.precision": precision,
        "train.cuda_graph": graph,
        TF32_SWITCH: tf32,
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
    ae_tf32 = _trajectory(adata, DEVICE, "32", 0, "ae", tf32=True)
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
        "ae_gpu_tf32": ae_tf32,
        "ae_tf32_gap": relative_gaps(ae_tf32, ae_cpu),
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
    adata: Any,
    batch: int,
    has_scvi: bool,
    rows: dict[str, dict[str, Any]],
    epochs: int = THROUGHPUT_EPOCHS,
) -> dict[str, Any]:
    res = compare_pair(adata, epochs, batch, DEVICE, with_scvi=has_scvi, geneae_rows=rows)
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

    keep = (
        *("ari", "nmi", "fit_s", "train_s", "preprocess_s", "phase_s", "evaluate_s"),
        *("seconds_per_epoch", "device", "epochs", "cpu_threads", "cuda_graph", "status"),
    )
    out: dict[str, Any] = {"dataset": "pbmc_10x", "seed": 0}
    for method in ("recommended", *(("scvi",) if has_scvi else ())):
        t0 = time.perf_counter()
        rec = quality_run({"method": method, "seed": 0, "dataset": "pbmc_10x"})
        out[method] = {k: rec.get(k) for k in keep} | {"wall_s": time.perf_counter() - t0}
    return out


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
    epochs = int(spec.get("throughput_epochs") or THROUGHPUT_EPOCHS)
    doc["throughput_epochs"] = epochs
    for batch in spec.get("batches") or GPU_BATCHES:
        work = partial(throughput_row, syn, batch, has_scvi, rows, epochs)
        step(f"throughput_{batch}", work, float(spec.get("throughput_needs_s") or 25))
        row = doc.pop(f"throughput_{batch}", None)
        if row is not None:
            doc["throughput"].append(row)
    for batch in spec.get("anatomy_batches") or (ANATOMY_BATCH,):
        step(f"anatomy_{batch}", partial(step_anatomy, syn, batch, DEVICE), 15)
        found = doc.pop(f"anatomy_{batch}", None)
        if found is not None:
            doc.setdefault("anatomies", []).append(found)
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
        from benchmarks.gpu_markdown import gpu_markdown

        print("\n".join(gpu_markdown(result)))
        print(f"wrote {out_dir / 'gpu.json'}")
    return result


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
    p.add_argument("--anatomy-batches", type=int, nargs="+", default=[ANATOMY_BATCH])
    p.add_argument("--epochs", type=int, default=THROUGHPUT_EPOCHS, help="N of the throughput")
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
        "throughput_epochs": args.epochs,
        "anatomy_batches": args.anatomy_batches,
        "command": command,
    }
    from benchmarks.gpu_markdown import gpu_markdown

    doc = run_one(spec)
    write_json_atomic(args.out, doc)
    print("\n".join(gpu_markdown(doc)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
