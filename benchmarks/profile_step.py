"""Where a training step's time goes: torch.profiler over the default model's steps.

    python -m benchmarks speed --speed-parts profile [--speed-dataset pbmc_10x]
    python -m benchmarks.profile_step [--dataset pbmc_10x] [--steps 60] [--threads N]

The model is the one ``geneae train`` builds by default (one member: the default's members
are each this model, trained one after the other), set up on the data as a user's run sets
it up, stepped at its default batch size with the optimizer training uses. Each aten
operator's own (self) CPU time is put in one group: matrix products, element-wise work
(the likelihood, activations, reductions), the optimizer, data (row gathering, copies) and
batch norm; what the operators leave of a step's wall time, measured without the profiler,
is Python and dispatch between operators (an estimate: the profiler slows both). The
speed part writes ``profile.json``;
``python -m benchmarks report`` renders it in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
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

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matrix products", ("addmm", "mm", "bmm", "matmul", "linear")),
    ("optimizer (fused Adam)", ("_fused_adam_", "_foreach_.*")),
    ("batch norm", ("native_batch_norm.*", "batch_norm.*")),
    (
        "data (row gathering, copies, new tensors)",
        (
            "index.*",
            "gather",
            "copy_",
            "cat",
            "stack",
            "repeat_interleave",
            "zeros.*",
            "empty.*",
            "fill_",
            "zero_",
            "ones.*",
            "full.*",
            "to",
            "_to_copy",
            "clone",
            "searchsorted",
            "arange",
            "nonzero",
            "scatter.*",
            "masked_select",
        ),
    ),  # fmt: skip
)
# Everything else the step runs is point-wise or a reduction: the likelihood's log-gamma
# terms and their digamma gradients, softmax, softplus, dropout, sums, the activations.
ELEMENTWISE = "element-wise (likelihood, activations, reductions)"


def group_of(op: str) -> str:
    """The group of an aten operator name (``aten::mm`` -> ``matrix products``)."""
    name = op.removeprefix("aten::")
    for group, patterns in GROUPS:
        if any(re.fullmatch(p, name) for p in patterns):
            return group
    return ELEMENTWISE


def alternate_ms(variants: dict[str, Any], steps: int, blocks: int = 6) -> dict[str, float]:
    """Seconds per step of each variant, run in alternate blocks of steps in this process.

    ``variants`` maps a name to a zero-argument function that sets the variant up and
    returns ``(step, undo)``. Each figure is the median over its blocks, so that every
    variant meets the same machine.
    """
    per_block = max(1, steps // blocks)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(blocks):
        for name, enter in variants.items():
            step, undo = enter()
            try:
                step()  # the first step after a switch warms its kernels
                t0 = time.perf_counter()
                for _ in range(per_block):
                    step()
                times[name].append((time.perf_counter() - t0) / per_block)
            finally:
                undo()
    return {name: statistics.median(t) for name, t in times.items()}


def _elementwise_losses() -> Any:
    """Patch in the likelihoods' element-wise reference (``LikelihoodHead.row_loss`` as the
    element-wise loss summed over genes, what every step ran before geneae.fused_nll)."""
    from geneae.module.heads import LikelihoodHead

    fused = LikelihoodHead.row_loss

    def elementwise(self: Any, target: Any, params: Any, nonzero: Any = None) -> Any:
        return self.loss(target, params, nonzero).sum(-1)

    LikelihoodHead.row_loss = elementwise  # type: ignore[method-assign]

    def undo() -> None:
        LikelihoodHead.row_loss = fused  # type: ignore[method-assign]

    return undo


@dataclass
class DefaultMember:
    """The default model's one member, set up on a dataset as a user's run sets it up."""

    model: Any  # the fitted GeneAE (its configuration)
    module: Any
    tensors: Any
    optimizer: Any  # the one training uses (fused Adam)
    precision: str  # what ``auto`` gives this CPU
    n_obs: int
    n_vars: int

    def step(
        self,
        precision: str,
        loss: Callable[[Any], Any] | None = None,
        batch_size: int | None = None,
    ) -> Callable[[], None]:
        """A training step on random rows, in ``precision``.

        ``loss`` maps a batch to the loss to minimise (the module's own by default);
        ``batch_size``: the default's unless given.
        """
        import torch

        from geneae.precision import autocast_for

        gen = torch.Generator().manual_seed(0)
        rows = batch_size or self.model.config.train.batch_size
        loss = loss or (lambda batch: self.module.loss(batch, kl_weight=0.3).loss)

        def step() -> None:
            idx = torch.randint(0, self.n_obs, (rows,), generator=gen)
            with autocast_for(precision):  # as Lightning runs the step at that precision
                value = loss(self.tensors.batch(idx))
            self.optimizer.zero_grad(set_to_none=True)
            value.backward()
            self.optimizer.step()

        return step


def default_member(dataset: str) -> DefaultMember:
    """:class:`DefaultMember` on ``dataset`` (one fitted epoch builds and sets it up)."""
    from geneae import GeneAE, RunConfig
    from geneae.precision import choose_precision
    from geneae.train.plan import TrainingPlan

    adata = load_dataset(dataset)
    settings = {"train.max_epochs": 1, "train.quiet": True, "model.members": 1}
    model = GeneAE(RunConfig().updated(settings))
    model.fit(adata)  # builds and sets up the default model as a user's run does
    module = model.module.train()
    plan = TrainingPlan(module, model.config.model, model.config.train, 1)
    configured = plan.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    return DefaultMember(
        model=model,
        module=module,
        tensors=model.preprocess(adata).tensors,
        optimizer=optimizer,
        precision=choose_precision(model.config.train.precision, "cpu")[0],
        n_obs=int(adata.n_obs),
        n_vars=int(adata.n_vars),
    )


def profile_default_step(dataset: str, steps: int = 60, warmup: int = 10) -> dict[str, Any]:
    """Profile ``steps`` training steps of the default model on ``dataset``.

    Returns the step's wall time without and with the profiler, each group's milliseconds
    per step (the operators' self time under the profiler) and the fifteen operators that
    take the most time.
    """
    import torch

    member = default_member(dataset)
    model, precision = member.model, member.precision
    batch_size = model.config.train.batch_size
    default_step = member.step(precision)

    def plain() -> Any:
        return default_step, lambda: None

    def elementwise() -> Any:
        return default_step, _elementwise_losses()

    def float32() -> Any:
        return member.step("32"), lambda: None

    variants = {"default": plain, "elementwise": elementwise}
    if precision != "32":
        variants["float32"] = float32
    for _ in range(warmup):
        default_step()
    wall = alternate_ms(variants, steps)
    t0 = time.perf_counter()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            default_step()
    wall_profiled = (time.perf_counter() - t0) / steps
    groups: dict[str, float] = defaultdict(float)
    ops: list[tuple[str, float, int]] = []
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue  # autograd nodes and record_function ranges: their ops are counted
        ms = evt.self_cpu_time_total / steps / 1000
        groups[group_of(evt.key)] += ms
        ops.append((evt.key, ms, evt.count // steps))
    ops_ms = sum(groups.values())
    return {
        "dataset": {"name": dataset, "n_cells": member.n_obs, "n_genes": member.n_vars},
        "model": {
            "family": model.config.model.family,
            "likelihood": model.config.model.likelihood,
            "hidden": list(model.config.model.hidden),
            "latent": model.config.model.latent_dim,
            "standardized_weight": model.config.model.standardized_weight,
            "batch_size": batch_size,
        },
        "threads": torch.get_num_threads(),
        "steps": steps,
        "precision": precision,
        "step_ms": wall["default"] * 1000,
        "step_ms_elementwise": wall["elementwise"] * 1000,
        **({"step_ms_float32": wall["float32"] * 1000} if "float32" in wall else {}),
        "step_ms_profiled": wall_profiled * 1000,
        "operators_ms": ops_ms,
        "groups_ms": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "top_operators": [
            {"op": op, "ms": ms, "calls": calls}
            for op, ms, calls in sorted(ops, key=lambda o: -o[1])[:15]
        ],
    }


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """The profile (in a worker process)."""
    doc: dict[str, Any] = {
        "kind": "profile",
        "schema": 1,
        "commands": [spec.get("command") or command_line()],
        "machine": machine_info(),
        "versions": versions(),
        "loadavg_start": loadavg(),
    }
    doc.update(profile_default_step(spec["dataset"], int(spec.get("steps", 60))))
    doc["loadavg_end"] = loadavg()
    doc["updated"] = now()
    doc["status"] = "ok"
    return doc


def run_profile(
    out_dir: Path, *, dataset: str = "pbmc_10x", timeout: float | None = None
) -> dict[str, Any] | None:
    """Run the profile in its own process; write ``profile.json`` when it succeeds."""
    print(f"[profile] the default model's training step on {dataset}", flush=True)
    spec = {"task": "profile", "dataset": dataset, "command": command_line()}
    result = run_part(spec, out_dir, "profile", timeout)
    if result is not None:
        print("\n".join(profile_markdown(result)))
        print(f"wrote {out_dir / 'profile.json'}")
    return result


def profile_markdown(doc: dict[str, Any] | None) -> list[str]:
    """BENCHMARKS.md's section on where a training step's time goes."""
    title = "### Where a training step's time goes"
    if doc is None:
        return [title, "", "Not run. Run `python -m benchmarks speed --speed-parts profile`.", ""]
    ds, m = doc["dataset"], doc["model"]
    step, profiled, ops = doc["step_ms"], doc["step_ms_profiled"], doc["operators_ms"]
    lines = [
        title,
        "",
        f"{ds['name']} ({ds['n_cells']:,} cells x {ds['n_genes']:,} genes): one member of the "
        f"default model ({m['family']}, {m['likelihood']}, hidden {m['hidden']}, latent "
        f"{m['latent']}, standardised term {m['standardized_weight']}), {doc['steps']} training "
        f"steps at its default batch of {m['batch_size']} with fused Adam, {doc['threads']} "
        f"torch threads, precision {doc.get('precision', '32')} (`python -m benchmarks speed "
        f"--speed-parts profile`, {doc['updated']}). A step takes **{step:.1f} ms** without "
        "the profiler"
        + (
            f" ({doc['step_ms_float32']:.1f} ms in float32: {doc['step_ms_float32'] / step:.2f}x)"
            if "step_ms_float32" in doc
            else ""
        )
        + (
            f" ({doc['step_ms_elementwise']:.1f} ms with the likelihoods' element-wise "
            "reference instead of geneae.fused_nll, alternate blocks of steps in the same "
            f"process: {doc['step_ms_elementwise'] / step:.2f}x)"
            if "step_ms_elementwise" in doc
            else ""
        )
        + " and "
        f"{profiled:.1f} ms with it, of which the aten operators' own CPU time is {ops:.1f} ms; "
        f"Python and dispatch between operators take the rest: {profiled - ops:.1f} ms under "
        f"the profiler (its own cost included), about {max(0.0, step - ops):.1f} ms without it "
        "if the operators run as long. Each operator's own time goes to one group:",
        "",
        "| where | ms per step | share of the operators' time |",
        "|---|---|---|",
    ]
    for group, ms in doc["groups_ms"].items():
        lines.append(f"| {group} | {ms:.2f} | {100 * ms / ops:.0f}% |")
    lines += [
        "",
        "The operators that take the most time (own time, both passes):",
        "",
        "| operator | ms per step | calls per step |",
        "|---|---|---|",
    ]
    for op in doc["top_operators"][:10]:
        lines.append(f"| `{op['op']}` | {op['ms']:.2f} | {op['calls']} |")
    lines.append("")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pbmc_10x")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    doc = profile_default_step(args.dataset, args.steps)
    doc["updated"] = now()
    print("\n".join(profile_markdown(doc)))


if __name__ == "__main__":
    main()
