"""The GPU part's anatomy of a training step (benchmarks.gpu, step 4).

Everything by difference of a fit of one epoch and one of ``1 + epochs`` epochs, per step of
the extra epochs, so that the fit's start (the data's copy to the device, the graph's
capture) cancels: the step's wall time, the GPU's kernels and copies by name
(torch.profiler; the profiler's own annotations left out), and the host's waits for the
GPU (the operations that synchronise, torch.cuda's sync debug mode) by the line that
waited.
"""

from __future__ import annotations

import collections
import warnings
from pathlib import Path
from typing import Any

from benchmarks.speed import geneae_fit

#: Kernels listed by their time per step.
TOP_KERNELS = 12


def step_anatomy(adata: Any, batch: int, device: str, epochs: int = 2) -> dict[str, Any]:
    """Where a step's time goes at ``batch`` on ``device``: wall time, kernels, waits."""
    geneae_fit(adata, 1, batch, device)  # warm: kernels chosen, allocator grown
    steps = epochs * -(-adata.n_obs // batch)
    t_one, _ = geneae_fit(adata, 1, batch, device)
    t_more, _ = geneae_fit(adata, 1 + epochs, batch, device)
    step_s = (t_more - t_one) / steps
    base = _device_work(adata, batch, device, 1)
    per_kernel = {}
    for name, (t, n) in _device_work(adata, batch, device, 1 + epochs).items():
        t0, n0 = base.get(name, (0.0, 0))
        per_kernel[name] = ((t - t0) / steps, (n - n0) / steps)
    kernel_us = sum(t for t, _ in per_kernel.values())
    top = sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:TOP_KERNELS]
    waits = _host_waits(adata, batch, device, epochs, steps) if device == "cuda" else None
    return {
        "batch_size": batch,
        "steps": steps,
        "step_ms": 1000 * step_s,
        "kernel_ms_per_step": kernel_us / 1000,
        "kernels_per_step": sum(n for _, n in per_kernel.values()),
        "gpu_busy_fraction": (kernel_us / 1e6) / step_s if step_s > 0 else None,
        "top_kernels": [
            {"kernel": name[:100], "us_per_step": t, "calls_per_step": n} for name, (t, n) in top
        ],
        "host_waits_per_step": waits,
    }


def _device_work(
    adata: Any, batch: int, device: str, n_epochs: int
) -> dict[str, tuple[float, int]]:
    """Microseconds and launches of each kernel (or copy) of a fit, under torch.profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        geneae_fit(adata, n_epochs, batch, device)
    if device == "cuda":
        torch.cuda.synchronize()
    out: dict[str, tuple[float, int]] = {}
    for evt in prof.events():
        on_device = str(getattr(evt, "device_type", "")).endswith("CUDA")
        if on_device and not getattr(evt, "is_user_annotation", False):
            t, n = out.get(evt.name, (0.0, 0))
            out[evt.name] = (t + evt.time_range.elapsed_us(), n + 1)
    return out


def _host_waits(adata: Any, batch: int, device: str, epochs: int, steps: int) -> dict[str, float]:
    """Operations that made the host wait for the GPU, per training step, by source line."""
    import torch

    def sites(n_epochs: int) -> collections.Counter[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                geneae_fit(adata, n_epochs, batch, device)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        return collections.Counter(
            f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}"
            for w in caught
            if "synchroniz" in str(w.message)
        )

    base, more = sites(1), sites(1 + epochs)
    diff = {k: (more[k] - base[k]) / steps for k in more}
    return {k: v for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v > 0}
