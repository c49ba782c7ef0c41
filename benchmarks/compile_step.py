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

from benchmarks.profile_step import alternate_ms, default_member


def compare(dataset: str, batch_size: int, steps: int = 120) -> dict[str, Any]:
    """Compile seconds and ms per step, eager and compiled, of the default member's step."""
    import torch

    member = default_member(dataset)
    module = member.module

    def loss(batch: Any) -> Any:
        return module.loss(batch, kl_weight=0.3).loss

    compiled = torch.compile(loss, dynamic=True)
    eager_step = member.step(member.precision, loss, batch_size)
    compiled_step = member.step(member.precision, compiled, batch_size)

    t0 = time.perf_counter()
    for _ in range(3):  # compiles (a batch of new size may compile once more)
        compiled_step()
    compile_s = time.perf_counter() - t0
    variants = {
        "eager": lambda: (eager_step, lambda: None),
        "compiled": lambda: (compiled_step, lambda: None),
    }
    ms = {name: 1000 * s for name, s in alternate_ms(variants, steps).items()}
    return {"compile_s": compile_s, "ms_per_step": ms, "precision": member.precision}


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
