"""Design experiments: the default with some settings changed, scored as the harness scores it.

``python -m benchmarks design --design-name NAME --set model.members=3 --samples-seen 2e5``
fits ``recommended`` with those settings on every (dataset, seed) in its own worker process
(the quality worker: same inputs, same KMeans with 50 restarts) and appends one record per
run to ``results/design_experiments.jsonl``: the evidence behind the rounds of
docs/design/default-model.md, and keeps each run's embedding in ``results/latents/design/``
(not in git) for combinations of runs after the fact. Nothing here changes quality.json or
BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import mean_std, now, run_worker


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``["model.members=3", "train.lr=1e-3"]`` -> ``{"model.members": 3, "train.lr": 0.001}``
    (values read as YAML: numbers, booleans, null, strings)."""
    import yaml

    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE, e.g. model.members=3")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def run_design(
    name: str,
    datasets: list[str],
    seeds: list[int],
    settings: dict[str, Any],
    out_dir: Path,
    *,
    samples_seen: float | None = None,
    note: str = "",
    jobs: int = 1,
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Fit and score every (dataset, seed); append the records to design_experiments.jsonl."""
    path = out_dir / "design_experiments.jsonl"
    threads = max(1, (os.cpu_count() or 1) // jobs)
    latents = out_dir / "latents" / "design"
    lock = threading.Lock()
    done: list[dict[str, Any]] = []
    spec_of_record = {**settings, **({"samples_seen": samples_seen} if samples_seen else {})}

    def run(dataset: str, seed: int) -> None:
        spec = {
            "task": "quality",
            "dataset": dataset,
            "method": "recommended",
            "seed": seed,
            "max_epochs": None,
            "overrides": settings,
            "samples_seen": samples_seen,
            # kept beside the records (not in git) for post-hoc combinations of runs
            "latent_path": str(latents / f"{name}__{dataset}__seed{seed}.npy"),
        }
        log = out_dir / "logs" / "design" / f"{name}__{dataset}__seed{seed}.log"
        result, tail = run_worker(spec, log_path=log, timeout=timeout, threads=threads)
        result = result or {"status": "failed"}
        rec = {
            "config": name,
            "dataset": dataset,
            "seed": seed,
            "spec": spec_of_record,
            "kmeans_restarts": result.get("kmeans_restarts"),
            "ari": result.get("ari"),
            "nmi": result.get("nmi"),
            # Leiden at the resolution giving as many clusters as labels (the tables' column)
            "ari_leiden": result.get("ari_leiden"),
            "nmi_leiden": result.get("nmi_leiden"),
            "fit_s": result.get("fit_s"),
            "epochs": result.get("epochs"),
            "epochs_per_member": result.get("epochs_per_member"),
            "torch_threads": threads,
            "concurrent_jobs": jobs,
            "status": result.get("status"),
            "finished": now(),
            "note": note,
        }
        if rec["status"] != "ok":
            rec["error"] = tail.splitlines()[-1] if tail else ""
        with lock:
            done.append(rec)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(rec) + "\n")
            ari = "failed" if rec["ari"] is None else f"ARI {rec['ari']:.3f}"
            if rec["ari_leiden"] is not None:
                ari += f", Leiden ARI {rec['ari_leiden']:.3f}"
            print(f"[design {name}] {dataset:<17} seed {seed}: {ari}", flush=True)

    grid = [(d, s) for d in datasets for s in seeds]
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for future in [pool.submit(run, *item) for item in grid]:
            future.result()
    for dataset in datasets:
        ours = [r for r in done if r["dataset"] == dataset]
        parts = []
        for key, label in (("ari", "ARI"), ("ari_leiden", "Leiden ARI")):
            mean, sd, n = mean_std(r[key] for r in ours)
            if n:
                parts.append(f"{label} {mean:.3f} +- {sd:.3f} ({n} seeds)")
        print(f"{dataset:<17} {', '.join(parts) or 'no result'}")
    print(f"appended {len(done)} records to {path}")
    return done
