"""Would more members help? Ensembles of every size, formed after the fact from saved runs.

    python -m benchmarks.ensemble_size --design-name r27_default \
        --datasets worm_neuron pbmc_10x [--sizes 1 3 5 7 9] [--per-size 30]

A design run (:mod:`benchmarks.design`) keeps each run's embedding: its members' latent
means side by side, each block centred and scaled (geneae.module.ensemble). Members of
different runs are as independent as the members of one run (their seeds share nothing), so
the blocks of all saved seeds of a dataset form a pool, and an ensemble of ``m`` members is
any ``m`` blocks of it side by side. Each size is scored as the harness scores a run (KMeans
with k = labels and 50 restarts, seed 0): the mean over the combinations shows what the
size gains, their spread how far a run of that size still moves. Combinations of one pool
share blocks, so the spreads of large sizes understate a run's (all nine of a nine-block
pool are one combination). Appends one record per (dataset, size) to
``design_experiments.jsonl`` (config ``NAME/members-M``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_OUT, load_dataset, mean_std, now


def member_blocks(embeddings: list[np.ndarray], member_dims: int) -> list[np.ndarray]:
    """Every member's block of the saved ``embeddings`` (each members x ``member_dims`` wide)."""
    blocks = []
    for z in embeddings:
        if z.shape[1] % member_dims:
            raise SystemExit(
                f"an embedding of {z.shape[1]} columns is not made of {member_dims}-wide "
                "members; give the members' latent size with --member-dims"
            )
        blocks += [z[:, i : i + member_dims] for i in range(0, z.shape[1], member_dims)]
    return blocks


def combinations(pool: int, size: int, limit: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Up to ``limit`` distinct ``size``-combinations of ``range(pool)``, drawn at random."""
    every = list(itertools.combinations(range(pool), size))
    random.Random(seed).shuffle(every)
    return sorted(every[:limit])


def score_sizes(
    blocks: list[np.ndarray], labels: np.ndarray, sizes: list[int], per_size: int
) -> dict[int, list[float]]:
    """ARI of KMeans (k = labels, the harness's restarts) per ensemble, for each size."""
    from geneae import evaluate

    k = len(np.unique(labels))
    scores: dict[int, list[float]] = {}
    for size in sizes:
        if size > len(blocks):
            continue
        scores[size] = [
            float(
                evaluate.clustering_scores(
                    np.hstack([blocks[i] for i in combo]),
                    labels,
                    method="kmeans",
                    n_clusters=k,
                    seed=0,
                )["ari"]
            )
            for combo in combinations(len(blocks), size, per_size)
        ]
    return scores


def run(
    name: str,
    datasets: list[str],
    out_dir: Path,
    *,
    sizes: list[int],
    per_size: int,
    member_dims: int,
) -> list[dict[str, Any]]:
    """Score ensembles of each size on each dataset; append and return the records."""
    records = []
    for dataset in datasets:
        paths = sorted((out_dir / "latents" / "design").glob(f"{name}__{dataset}__seed*.npy"))
        if not paths:
            raise SystemExit(f"no saved embeddings of {name} on {dataset} in {out_dir}")
        blocks = member_blocks([np.load(p) for p in paths], member_dims)
        labels = load_dataset(dataset).obs["label"].to_numpy()
        for size, aris in score_sizes(blocks, labels, sizes, per_size).items():
            mean, sd, n = mean_std(aris)
            records.append(
                {
                    "config": f"{name}/members-{size}",
                    "dataset": dataset,
                    "kind": "ensemble of saved members",
                    "pool": len(blocks),
                    "runs": [p.name for p in paths],
                    "combinations": n,
                    "ari_all": aris,
                    "ari": mean,
                    "ari_sd": sd,
                    "finished": now(),
                }
            )
            print(
                f"{dataset:<17} {size} members: ARI {mean:.3f} +- {sd:.3f} "
                f"(min {min(aris):.3f}, max {max(aris):.3f}; {n} of a pool of {len(blocks)})",
                flush=True,
            )
    with open(out_dir / "design_experiments.jsonl", "a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return records


def main() -> None:
    from geneae import RunConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--design-name", required=True, help="the design run whose embeddings to use")
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--sizes", nargs="+", type=int, default=[1, 3, 5, 7, 9])
    p.add_argument("--per-size", type=int, default=30, help="combinations scored per size")
    p.add_argument(
        "--member-dims",
        type=int,
        default=RunConfig().model.latent_dim,
        help="latent size of one member (default: geneae's)",
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    run(
        args.design_name,
        args.datasets,
        args.out_dir,
        sizes=args.sizes,
        per_size=args.per_size,
        member_dims=args.member_dims,
    )


if __name__ == "__main__":
    main()
