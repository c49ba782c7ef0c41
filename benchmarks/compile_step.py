"""Would torch.compile repay itself? The default member's step, eager against compiled.

    python -m benchmarks.compile_step [--dataset pbmc_10x] [--batch 128] [--threads 2]

The default model of ``geneae train`` (one member, set up on the data as a user's run sets
it up) is stepped with the optimizer training uses, its loss (forward and, through
AOTAutograd, backward) once as it is and once compiled by inductor with dynamic shapes (a
batch's number of stored entries changes from batch to batch), in the precision ``auto``
gives this CPU. Printed: the compile's seconds (the first steps, which compile; a cold
compile when inductor's on-disk cache has not seen the graph, a few seconds when it has)
and each variant's milliseconds per step, the median of alternate blocks in one process.
Not part of ``make bench``: a cold compile takes tens of seconds.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import load_dataset
from benchmarks.profile_step import alternate_ms


def compare(dataset: str, batch_size: int, steps: int = 120) -> dict[str, Any]:
    """Compile seconds and ms per step, eager and compiled, of the default member's step."""
    import torch

    from geneae import GeneAE, RunConfig
    from geneae.precision import autocast_for, choose_precision
    from geneae.train.plan import TrainingPlan

    adata = load_dataset(dataset)
    settings = {"train.max_epochs": 1, "train.quiet": True, "model.members": 1}
    model = GeneAE(RunConfig().updated(settings))
    model.fit(adata)  # builds and sets up the default model as a user's run does
    module = model.module.train()
    tensors = model.preprocess(adata).tensors
    plan = TrainingPlan(module, model.config.model, model.config.train, 1)
    configured = plan.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    precision = choose_precision(model.config.train.precision, "cpu")[0]
    gen = torch.Generator().manual_seed(0)

    def loss(batch: Any) -> Any:
        return module.loss(batch, kl_weight=0.3).loss

    compiled = torch.compile(loss, dynamic=True)

    def step_with(fn: Any) -> Any:
        def step() -> None:
            idx = torch.randint(0, tensors.n_obs, (batch_size,), generator=gen)
            with autocast_for(precision):
                value = fn(tensors.batch(idx))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()

        return step

    t0 = time.perf_counter()
    for _ in range(3):  # compiles (a batch of new size may compile once more)
        step_with(compiled)()
    compile_s = time.perf_counter() - t0
    variants = {
        "eager": lambda: (step_with(loss), lambda: None),
        "compiled": lambda: (step_with(compiled), lambda: None),
    }
    ms = {name: 1000 * s for name, s in alternate_ms(variants, steps).items()}
    return {"compile_s": compile_s, "ms_per_step": ms, "precision": precision}


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pbmc_10x")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = compare(args.dataset, args.batch)
    eager, compiled = out["ms_per_step"]["eager"], out["ms_per_step"]["compiled"]
    print(
        f"{args.dataset}, batch {args.batch}, {args.threads} threads, {out['precision']}: "
        f"compile and first 3 steps {out['compile_s']:.1f} s; eager {eager:.2f} ms a step, "
        f"compiled {compiled:.2f} ms ({eager / compiled:.2f}x)"
    )


if __name__ == "__main__":
    main()
