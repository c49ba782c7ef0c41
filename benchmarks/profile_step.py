"""Where a training step's time goes: torch.profiler over the default model's steps.

    python -m benchmarks.profile_step [--dataset pbmc_10x] [--steps 60] [--threads 1]

Prints the share of CPU time of matrix products (addmm / mm / bmm), the likelihood's
element-wise work (lgamma, log, softplus, exp, ...), the optimizer (Adam's foreach ops) and
everything else (indexing, batch norm, Python between ops), over ``--steps`` steps at batch
128 after a warm-up, measured on the model ``geneae train`` builds by default.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

GEMM = ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear")
ELEMENTWISE = (
    "lgamma", "log", "softplus", "exp", "log1p", "mul", "add", "sub", "div", "neg", "where",
    "clamp", "sum", "softmax", "log_softmax", "pow", "square", "sqrt", "rsqrt", "sigmoid",
)  # fmt: skip


def main() -> None:
    import torch

    from benchmarks.common import load_dataset
    from geneae import GeneAE, RunConfig

    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="pbmc_10x")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    adata = load_dataset(args.dataset)
    model = GeneAE(RunConfig().updated({"train.max_epochs": 1, "train.quiet": True}))
    model.fit(adata)  # builds and sets up the default model as a user gets it
    module = model.module.train()
    prepared = model.preprocess(adata)
    tensors = prepared.tensors
    from geneae.train.plan import TrainingPlan

    plan = TrainingPlan(module, model.config.model, model.config.train, 1)
    configured = plan.configure_optimizers()  # the optimizer training uses (fused Adam)
    opt = configured["optimizer"] if isinstance(configured, dict) else configured
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        idx = torch.randint(0, tensors.n_obs, (128,), generator=gen)
        batch = tensors.batch(idx)
        loss = module.loss(batch, kl_weight=0.3).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - t0) / args.steps
    groups: dict[str, float] = defaultdict(float)
    total = 0.0
    for evt in prof.key_averages():
        if evt.key.startswith("aten::") and "backward" not in evt.key.lower():
            self_us = evt.self_cpu_time_total
            name = evt.key
            if name in GEMM:
                groups["matrix products"] += self_us
            elif "_foreach" in name or "adam" in name.lower():  # _fused_adam_
                groups["optimizer (Adam)"] += self_us
            elif any(name == f"aten::{e}" or name == f"aten::{e}_" for e in ELEMENTWISE):
                groups["element-wise (likelihood, activations)"] += self_us
            else:
                groups["other aten ops (indexing, batch norm, copies)"] += self_us
            total += self_us
    ops_per_step = total / args.steps / 1e6
    print(
        f"wall per step (profiled): {wall * 1000:.2f} ms; aten self time per step "
        f"{ops_per_step * 1000:.2f} ms; the rest (Python, dispatch, profiler): "
        f"{(wall - ops_per_step) * 1000:.2f} ms"
    )
    for name, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {name:48s} {us / args.steps / 1000:7.2f} ms  {100 * us / total:5.1f}% of ops")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
