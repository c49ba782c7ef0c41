"""Per-epoch training time: geneae's VAE-NB vs scvi-tools' SCVI of the same sizes, same run.

Both models: one hidden layer of 128, latent 10, NB likelihood, batch 128, no validation, no
early stopping. Per-epoch time = (time of a 2N-epoch fit - time of an N-epoch fit) / N, the
same for both, which removes set-up and warm-up. geneae trains in the precision a user's run
gets (``train.precision: auto``); where that is not float32, geneae in float32 is timed beside
it. The same process measures a 2048^3 matmul in float32 and bfloat16 and the models' own
GEMM shapes at batch 128 (in each row's precision) with the same thread count, and each
model's achieved GFLOP/s (6 x cells x sum(in x out) of the linear layers actually executed
per cell, per epoch) as a fraction of them. The GPU's part is benchmarks.gpu.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.common import (
    command_line,
    load_dataset,
    loadavg,
    machine_info,
    now,
    run_part,
    versions,
)

HIDDEN, LATENT, BATCH = 128, 10, 128
#: The rows of a comparison: geneae as a user's run trains it (its precision: ``auto``),
#: geneae in float32 where ``auto`` chose otherwise, scvi-tools (float32, its default).
SPEED_ROWS = ("geneae", "geneae-float32", "scvi")


# -- micro-benchmarks -----------------------------------------------------------------------------
def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_gflops(
    m: int, k: int, n: int, device: str = "cpu", min_time: float = 0.5, dtype: str = "float32"
) -> float:
    """GFLOP/s of an (m x k) @ (k x n) product (2mkn FLOPs) in ``dtype``, best of a few rounds."""
    import torch

    gen = torch.Generator().manual_seed(0)
    kind = getattr(torch, dtype)
    a = torch.randn(m, k, generator=gen).to(device, kind)
    b = torch.randn(k, n, generator=gen).to(device, kind)
    out = torch.empty(m, n, device=device, dtype=kind)
    for _ in range(3):
        torch.mm(a, b, out=out)
    _sync(device)
    # Size the rounds to ~min_time / 3 each (5 of them), keep the fastest (least disturbed) round.
    t0 = time.perf_counter()
    torch.mm(a, b, out=out)
    _sync(device)
    one = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(min_time / 3 / one))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2.0 * m * k * n / best / 1e9


def gemm_step_seconds(
    layers: list[tuple[int, int]], batch: int, device: str, dtype: str = "float32"
) -> dict[str, Any]:
    """Time of the GEMMs of one training step: per layer forward, grad-input, grad-weight."""
    rows = []
    total_s = 0.0
    measured: dict[tuple[int, int, int], float] = {}  # one number per shape, however often used
    for fan_in, fan_out in layers:
        shapes = {
            "forward": (batch, fan_in, fan_out),
            "grad_input": (batch, fan_out, fan_in),
            "grad_weight": (fan_in, batch, fan_out),
        }
        row: dict[str, Any] = {"in": fan_in, "out": fan_out}
        for name, (m, k, n) in shapes.items():
            if (m, k, n) not in measured:
                measured[(m, k, n)] = matmul_gflops(m, k, n, device, 0.3, dtype)
            g = measured[(m, k, n)]
            row[f"{name}_gflops"] = g
            total_s += 2.0 * m * k * n / (g * 1e9)
        rows.append(row)
    flops = 6.0 * batch * sum(i * o for i, o in layers)
    return {
        "layers": rows,
        "dtype": dtype,
        "step_s": total_s,
        "gflops": flops / total_s / 1e9 if total_s else None,
    }


# -- counting the linear layers actually run ---------------------------------------------------
def _linear_calls(module: Any, forward: Any) -> list[tuple[int, int, int]]:
    """(rows, in, out) of every nn.Linear call made by ``forward()`` (training mode)."""
    import torch

    calls: list[tuple[int, int, int]] = []

    def hook(mod: Any, inputs: Any, output: Any) -> None:
        x = inputs[0]
        calls.append((int(x.numel() // x.shape[-1]), mod.in_features, mod.out_features))

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, torch.nn.Linear)
    ]
    was_training = module.training
    module.train()
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return calls


def _static_linear(module: Any) -> list[tuple[int, int]]:
    import torch

    return [
        (m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)
    ]


def geneae_linear_layers(model: Any, adata: Any, batch: int) -> tuple[list[tuple[int, int]], str]:
    """The (in, out) of the linear layers geneae's module runs per cell in a training step."""
    import numpy as np
    import scipy.sparse as sp
    import torch

    module = model.module
    try:
        pre = model.preprocessor.transform(adata[:batch].copy())

        def dense(a: Any) -> torch.Tensor:
            a = a.toarray() if sp.issparse(a) else np.asarray(a)
            return torch.as_tensor(a, dtype=torch.float32)

        device = next(module.parameters()).device
        target = dense(pre.layers["counts"]).to(device)
        b = {"x": dense(pre.X).to(device), "target": target, "library": target.sum(1)}
        with torch.no_grad():
            calls = _linear_calls(module, lambda: module.loss(b))
        n = len(b["x"])
        return [(i, o) for rows, i, o in calls for _ in range(max(1, round(rows / n)))], "traced"
    except Exception:  # fall back to every Linear in the module
        traceback.print_exc()
        return _static_linear(module), "static (all nn.Linear; trace failed)"


def scvi_linear_layers(model: Any, batch: int) -> tuple[list[tuple[int, int]], str]:
    import torch

    module = model.module
    try:
        loader = model._make_data_loader(adata=model.adata, batch_size=batch)
        tensors = next(iter(loader))
        device = next(module.parameters()).device
        tensors = {k: v.to(device) if hasattr(v, "to") else v for k, v in tensors.items()}
        n = len(next(iter(tensors.values())))
        with torch.no_grad():
            calls = _linear_calls(module, lambda: module(tensors))
        return [(i, o) for rows, i, o in calls for _ in range(max(1, round(rows / n)))], "traced"
    except Exception:
        traceback.print_exc()
        return _static_linear(module), "static (all nn.Linear; trace failed)"


# -- the two models ---------------------------------------------------------------------------
def geneae_fit(
    adata: Any, epochs: int, batch: int, accelerator: str, settings: dict[str, Any] | None = None
) -> tuple[float, Any]:
    """geneae's model of the comparison as a user's run trains it (precision ``auto``), with
    ``settings`` (e.g. ``{"train.precision": "32"}``) over the comparison's own."""
    from geneae.config import RunConfig
    from geneae.model import GeneAE

    settings = dict(settings or {})
    # A benchmark-only switch: TF32 matrix products for the whole fit (GPU rows).
    tf32 = settings.pop(TF32_SWITCH, False)
    cfg = RunConfig().updated(
        {
            "preprocess.preset": "counts",
            "model.family": "vae",
            "model.likelihood": "nb",
            "model.members": 1,  # one model against one (the default trains three)
            "model.hidden": [HIDDEN],
            "model.latent_dim": LATENT,
            "train.batch_size": batch,
            "train.validation": 0.0,
            "train.early_stopping": False,
            "train.cluster_epochs": 0,  # per-epoch time of training; the phase is a constant
            "train.max_epochs": epochs,
            "train.seed": 0,
            "train.quiet": True,
            "train.accelerator": accelerator,
            **(settings or {}),
        }
    )
    with _tf32_products() if tf32 else contextlib.nullcontext():
        model = GeneAE(cfg).fit(adata)
    return float(model.metrics["timings"]["train_s"]), model


#: A row setting of :func:`geneae_fit` (not a geneae setting): train with TF32 products.
TF32_SWITCH = "benchmark.tf32_products"


@contextlib.contextmanager
def _tf32_products() -> Iterator[None]:
    import torch

    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def scvi_fit(adata: Any, epochs: int, batch: int, accelerator: str) -> tuple[float, Any]:
    import scvi

    scvi.settings.seed = 0
    a = adata.copy()
    scvi.model.SCVI.setup_anndata(a, layer="counts")
    model = scvi.model.SCVI(a, n_hidden=HIDDEN, n_latent=LATENT, n_layers=1, gene_likelihood="nb")
    t0 = time.perf_counter()
    model.train(
        max_epochs=epochs,
        batch_size=batch,
        train_size=1.0,
        early_stopping=False,
        enable_progress_bar=False,
        accelerator=accelerator,
        devices=1,
    )
    return time.perf_counter() - t0, model


def _hvg_counts(adata: Any) -> Any:
    """The same genes for both models: geneae's counts preset picks seurat_v3 top 2,000."""
    from benchmarks.quality import select_genes

    return select_genes(adata)


def compare_pair(
    adata: Any,
    epochs: int,
    batch: int,
    accelerator: str,
    *,
    with_scvi: bool,
    geneae_rows: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per-epoch time of both models (N and 2N epochs, interleaved), FLOP rates.

    ``geneae_rows`` maps geneae's rows to their settings; by default ``geneae`` (as a
    user's run trains) and, where ``auto`` precision is not float32, ``geneae-float32``.
    """
    from geneae.precision import choose_precision

    if geneae_rows is None:
        geneae_rows = {"geneae": {}}
        if choose_precision("auto", accelerator)[0] != "32":
            geneae_rows["geneae-float32"] = {"train.precision": "32"}
    out: dict[str, Any] = {"batch_size": batch, "epochs": [epochs, 2 * epochs]}
    fits: dict[str, Any] = {
        name: partial(geneae_fit, settings=settings) for name, settings in geneae_rows.items()
    }
    if with_scvi:
        fits["scvi"] = scvi_fit
    times: dict[str, dict[int, float]] = {name: {} for name in fits}
    models: dict[str, Any] = {}
    errors: dict[str, str] = {}
    # One untimed epoch of each first: the first fit of a process also pays one-time costs
    # (kernel selection, oneDNN's bfloat16 kernels, allocator growth) inside its training
    # time, which would land in t(N) alone and shrink the difference.
    for n_ep in (1, epochs, 2 * epochs):
        for name, fit in fits.items():
            if name in errors:
                continue
            try:
                seconds, models[name] = fit(adata, n_ep, batch, accelerator)
                if n_ep != 1:
                    times[name][n_ep] = seconds
            except Exception as exc:
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
    n_cells = int(adata.n_obs)
    for name in fits:
        if name in errors:
            out[name] = {"status": "failed", "error": errors[name]}
            continue
        t1, t2 = times[name][epochs], times[name][2 * epochs]
        spe = (t2 - t1) / epochs
        if name.startswith("geneae"):
            layers, how = geneae_linear_layers(models[name], adata, batch)
            precision = models[name].metrics["model"]["precision"]
            graph = models[name].metrics["model"].get("cuda_graph")
        else:
            layers, how = scvi_linear_layers(models[name], batch)
            precision, graph = "32", None
        macs = sum(i * o for i, o in layers)
        gflops = 6.0 * macs * n_cells / spe / 1e9 if spe > 0 else None
        out[name] = {
            "status": "ok",
            "precision": precision,
            **({"cuda_graph": graph} if graph is not None else {}),
            "train_s": {str(epochs): t1, str(2 * epochs): t2},
            "seconds_per_epoch": spe,
            "seconds_per_epoch_naive": t2 / (2 * epochs),
            "cells_per_s": n_cells / spe if spe > 0 else None,
            "linear_layers": layers,
            "linear_layers_counted": how,
            "linear_macs_per_cell": macs,
            "achieved_gflops": gflops,
        }
    if out.get("geneae", {}).get("status") == "ok" and out.get("scvi", {}).get("status") == "ok":
        out["ratio_geneae_over_scvi"] = (
            out["geneae"]["seconds_per_epoch"] / out["scvi"]["seconds_per_epoch"]
        )
    return out


# -- the whole speed part ---------------------------------------------------------------------
def run_speed(
    out_dir: Path, *, epochs: int = 10, dataset: str = "pbmc_10x", timeout: float | None = None
) -> dict[str, Any] | None:
    """Run the speed part in its own process; write ``speed.json`` when it succeeds."""
    log = out_dir / "logs" / "speed.log"
    print(f"[speed] {dataset}, N = {epochs} epochs; progress in {log}", flush=True)
    spec = {"task": "speed", "epochs": epochs, "dataset": dataset, "command": command_line()}
    result = run_part(spec, out_dir, "speed", timeout)
    if result is not None:
        _print_speed(result)
        print(f"wrote {out_dir / 'speed.json'}")
    return result


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """The speed measurements (in a worker process, so the parent stays small)."""
    import importlib.util

    import torch

    epochs, dataset = int(spec["epochs"]), spec["dataset"]
    has_scvi = importlib.util.find_spec("scvi") is not None
    t_start = time.perf_counter()
    adata = _hvg_counts(load_dataset(dataset))
    threads = torch.get_num_threads()
    doc: dict[str, Any] = {
        "kind": "speed",
        "schema": 1,
        "updated": now(),
        "commands": [spec.get("command") or command_line()],
        "machine": machine_info(),
        "versions": versions(),
        "torch_threads": threads,
        "dataset": {"name": dataset, "n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars)},
        "model": {
            "hidden": [HIDDEN],
            "latent": LATENT,
            "likelihood": "nb",
            "batch_size": BATCH,
            "method": "per-epoch = (t(2N) - t(N)) / N",
        },
        "scvi": None if has_scvi else "scvi-tools not installed: scvi columns skipped",
        "loadavg_start": loadavg(),
    }
    print(f"[speed] matmul micro-benchmark ({threads} threads)", flush=True)
    cpu_mm = {
        "threads": threads,
        "gflops_2048": matmul_gflops(2048, 2048, 2048, "cpu"),
        "gflops_2048_bf16": matmul_gflops(2048, 2048, 2048, "cpu", dtype="bfloat16"),
    }
    doc["matmul_cpu"] = cpu_mm
    print(f"[speed] CPU: geneae vs scvi, {epochs} and {2 * epochs} epochs", flush=True)
    cpu = compare_pair(adata, epochs, BATCH, "cpu", with_scvi=has_scvi)
    _add_fractions(cpu, cpu_mm, BATCH, "cpu")
    doc["cpu"] = cpu
    doc["loadavg_end"] = loadavg()
    doc["total_s"] = time.perf_counter() - t_start
    doc["updated"] = now()
    doc["status"] = "ok"
    return doc


def _add_fractions(part: dict[str, Any], mm: dict[str, Any], batch: int, device: str) -> None:
    """Achieved rates as fractions of the float32 2048^3 matmul (the issue's yardstick), of
    the matmul in the row's own precision, and of its own GEMM shapes in that precision."""
    for name in SPEED_ROWS:
        rec = part.get(name)
        if not rec or rec.get("status") != "ok" or not rec.get("achieved_gflops"):
            continue
        dtype = "float32" if rec.get("precision", "32") == "32" else "bfloat16"
        gemm = gemm_step_seconds(rec["linear_layers"], batch, device, dtype)
        rec["gemm_at_batch"] = gemm
        rec["fraction_of_matmul_2048"] = rec["achieved_gflops"] / mm["gflops_2048"]
        own = mm.get("gflops_2048" if dtype == "float32" else "gflops_2048_bf16")
        if own:
            rec["fraction_of_matmul_2048_own_precision"] = rec["achieved_gflops"] / own
        if gemm.get("gflops"):
            rec["fraction_of_gemm_at_batch"] = rec["achieved_gflops"] / gemm["gflops"]


def _print_speed(doc: dict[str, Any]) -> None:
    cpu = doc["cpu"]
    print(f"matmul 2048^3: {doc['matmul_cpu']['gflops_2048']:.1f} GFLOP/s")
    for name in ("geneae", "scvi"):
        rec = cpu.get(name)
        if not rec:
            continue
        if rec.get("status") != "ok":
            print(f"{name}: {rec.get('error')}")
            continue
        print(
            f"{name}: {rec['seconds_per_epoch']:.3f} s/epoch, {rec['achieved_gflops']:.2f} GFLOP/s "
            f"({100 * rec.get('fraction_of_matmul_2048', float('nan')):.1f}% of the 2048 matmul, "
            f"{100 * rec.get('fraction_of_gemm_at_batch', float('nan')):.1f}% of its own GEMMs)"
        )
    if "ratio_geneae_over_scvi" in cpu:
        print(f"geneae / scvi per-epoch time: {cpu['ratio_geneae_over_scvi']:.2f}")
