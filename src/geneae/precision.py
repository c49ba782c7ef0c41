"""Which floating-point precision training runs in: the one place that decides it.

A training step of these networks is a few matrix products (the 2,000-gene layers) and
element-wise passes. On a CPU with native bfloat16 dot products (x86 ``avx512_bf16`` or
``amx_bf16``) oneDNN runs those products about four times as fast in bfloat16 as in float32
(this machine: 759 against 182 GFLOP/s for a 2048^3 product), so ``auto`` trains in mixed
precision there (`geneae train` on mouse bladder, three single-threaded members: 83.7 and
84.7 s against 89.7 and 94.6 s in float32, alternated on an Intel Xeon with AMX): products
in bfloat16 with float32 accumulation, every likelihood, sum over genes and head output in
float32 (geneae.fused_nll, geneae.nn.full_precision), the weights and the optimizer in
float32. Where bfloat16 would be emulated (other CPUs), ``auto`` keeps float32. Out of core
too: there batches come in many sizes, oneDNN keeps a bfloat16 kernel (with its buffers)
per shape, and a fit's peak memory grew with the data
(tests/reliability/test_out_of_core_limits.py: +138 MB from 3,000 to 30,000 cells against
+25 MB in float32) on the route whose point is that it does not. On GPUs ``auto`` keeps
float32: measured on an H200, bf16-mixed trained these networks more slowly than float32 at
every batch from 128 to 4096 (0.67-0.98x the cells per second; BENCHMARKS.md, GPU), their
products too small for the matrix units to repay autocast's casts, and float32 steps are
captured as CUDA graphs (geneae.train.cuda_graph), mixed-precision ones are not.
``bf16-mixed`` asks for it.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: /proc/cpuinfo flags of x86 CPUs that compute bfloat16 dot products natively.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def choose_precision(
    requested: str, accelerator: str, *, out_of_core: bool = False
) -> tuple[str, str]:
    """``(precision, why)``: ``requested`` unless it is ``auto``.

    Parameters
    ----------
    requested
        ``train.precision``: ``auto``, ``32``, ``bf16-mixed`` or ``16-mixed``.
    accelerator
        ``train.accelerator`` (``auto`` as Lightning resolves it).
    out_of_core
        Whether the data are trained on out of core (``auto`` keeps float32 there).
    """
    if requested != "auto":
        return requested, "train.precision"
    device = training_device_type(accelerator)
    if device != "cpu":
        return "32", f"float32 on {device} (bf16-mixed: ask for it)"
    if out_of_core:
        return "32", "float32 out of core (bfloat16 kernels are kept per batch shape)"
    flags = native_bf16_flags()
    if flags and torch.backends.mkldnn.is_available():
        return "bf16-mixed", f"the CPU computes bfloat16 natively ({', '.join(sorted(flags))})"
    return "32", "the CPU has no native bfloat16"


def training_device_type(accelerator: str) -> str:
    """``cpu``, ``cuda`` or ``mps``: the device ``accelerator`` trains on."""
    if accelerator in ("cuda", "gpu"):
        return "cuda"
    if accelerator in ("cpu", "mps"):
        return accelerator
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def native_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The native-bfloat16 flags this CPU reports (empty where /proc/cpuinfo is absent)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return NATIVE_BF16_FLAGS.intersection(line.partition(":")[2].split())
    return frozenset()


def autocast_for(precision: str, device_type: str = "cpu") -> torch.autocast:
    """The autocast region of a resolved precision, for a loop geneae runs itself.

    Both mixed settings are bfloat16 on a CPU, as Lightning runs them; ``32`` disables it.
    On a GPU ``bf16-mixed`` is bfloat16 too, and ``16-mixed`` runs in float32: float16
    needs Lightning's gradient scaling, which a loop of geneae's own does not have.
    """
    if device_type == "cpu":
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "32")
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
