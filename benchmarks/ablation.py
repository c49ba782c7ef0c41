"""Two ablations behind BENCHMARKS.md's account of where geneae falls short.

``python -m benchmarks ablation [--ablation weighting|ensemble] [--datasets ...] [--seeds ...]``

- **weighting**: PCA 50 of the log-normalised HVGs with each gene divided by ``sd ** alpha``
  (alpha 0: unscaled; 0.5: half way; 1: z-scored and clipped at 10, scanpy's ``scale``). It
  shows that the datasets disagree on how much a gene's weight should follow its variance,
  the trade-off that no single preset escapes.
- **ensemble**: the ``recommended`` preset over several seeds, its latent spaces
  concatenated (the issue's "ensembling over seeds"), and ``recommended`` concatenated with
  ``beta-vae`` (a count model and a z-scored Gaussian one, the two weightings in one
  embedding). Each block is centred and scaled to unit mean squared row norm first.

Scores: ARI / NMI of KMeans (k = number of labels, n_init=10) averaged over
``--kmeans-runs`` random states, since one KMeans run on these data moves ARI by up to
0.05. Results go to ``ablation.json`` in ``--out-dir`` (rows replaced per dataset);
``python -m benchmarks report`` renders them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    command_line,
    machine_info,
    now,
    read_json,
    versions,
    write_json_atomic,
)

ALPHAS = (0.0, 0.5, 1.0)
N_COMPONENTS = 50


def kmeans_scores(latent: Any, labels: Any, runs: int) -> dict[str, float]:
    """Mean ARI and NMI over ``runs`` random states of the harness's KMeans (k = #labels)."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from geneae.evaluate import cluster

    k = len(np.unique(labels))
    preds = [cluster(latent, method="kmeans", n_clusters=k, seed=state) for state in range(runs)]
    return {
        "ari": float(np.mean([adjusted_rand_score(labels, p) for p in preds])),
        "nmi": float(np.mean([normalized_mutual_info_score(labels, p) for p in preds])),
        "kmeans_runs": runs,
    }


def unit_block(latent: Any) -> Any:
    """Centred, scaled to unit mean squared row norm: blocks weigh alike when concatenated."""
    import numpy as np

    z = latent - latent.mean(0)
    return z / np.sqrt((z**2).sum(1).mean())


def weighting(dataset: str, runs: int) -> list[dict[str, Any]]:
    """PCA 50 of centred log-normalised HVGs divided by sd ** alpha, for each alpha."""
    import numpy as np
    import scanpy as sc
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    from benchmarks.common import load_dataset
    from benchmarks.quality import select_genes

    adata = select_genes(load_dataset(dataset))
    labels = adata.obs["label"].to_numpy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X, dtype=np.float64)
    x = x - x.mean(0)
    sd = x.std(0)
    sd[sd == 0] = 1.0
    out = []
    for alpha in ALPHAS:
        xa = x / sd**alpha
        if alpha == 1.0:
            xa = np.clip(xa, -10, 10)  # sc.pp.scale(max_value=10)
        latent = PCA(N_COMPONENTS, random_state=0).fit_transform(xa)
        out.append({"dataset": dataset, "alpha": alpha, **kmeans_scores(latent, labels, runs)})
        print(f"[weighting] {dataset} alpha {alpha}: ARI {out[-1]['ari']:.3f}", flush=True)
    return out


def ensemble(dataset: str, seeds: list[int], runs: int) -> list[dict[str, Any]]:
    """Single models, same-preset concatenation over seeds, and recommended + beta-vae."""
    import numpy as np

    from benchmarks.common import load_dataset
    from geneae.model import GeneAE

    adata = load_dataset(dataset)
    labels = adata.obs["label"].to_numpy()
    latents: dict[str, list[Any]] = {"recommended": [], "beta-vae": []}
    fit_s: dict[str, list[float]] = {"recommended": [], "beta-vae": []}
    for preset in latents:
        for seed in seeds:
            t0 = time.perf_counter()
            model = GeneAE.from_preset(preset, {"train.seed": seed, "train.quiet": True})
            latents[preset].append(np.asarray(model.fit(adata).encode(adata)))
            fit_s[preset].append(time.perf_counter() - t0)
            print(f"[ensemble] {dataset} {preset} seed {seed} fitted", flush=True)

    def row(kind: str, members: int, scores: list[dict[str, float]], secs: float) -> dict:
        return {
            "dataset": dataset,
            "kind": kind,
            "members": members,
            "ari": float(np.mean([s["ari"] for s in scores])),
            "nmi": float(np.mean([s["nmi"] for s in scores])),
            "n": len(scores),
            "fit_s": float(secs),
            "kmeans_runs": runs,
        }

    rec, bvae = latents["recommended"], latents["beta-vae"]
    rows = [
        row(
            "recommended",
            1,
            [kmeans_scores(z, labels, runs) for z in rec],
            np.mean(fit_s["recommended"]),
        ),
        row(
            "beta-vae",
            1,
            [kmeans_scores(z, labels, runs) for z in bvae],
            np.mean(fit_s["beta-vae"]),
        ),
        row(
            "recommended x seeds",
            len(rec),
            [kmeans_scores(np.hstack([unit_block(z) for z in rec]), labels, runs)],
            float(np.sum(fit_s["recommended"])),
        ),
        row(
            "recommended + beta-vae",
            2,
            [
                kmeans_scores(np.hstack([unit_block(a), unit_block(b)]), labels, runs)
                for a, b in zip(rec, bvae, strict=True)
            ],
            float(np.mean(fit_s["recommended"]) + np.mean(fit_s["beta-vae"])),
        ),
    ]
    for r in rows:
        print(
            f"[ensemble] {dataset} {r['kind']}: ARI {r['ari']:.3f} NMI {r['nmi']:.3f}", flush=True
        )
    return rows


def run_ablation(
    out_dir: Path, part: str, datasets: list[str], seeds: list[int], kmeans_runs: int = 5
) -> Path:
    """Run ``weighting``, ``ensemble`` or ``all`` and merge the rows into ``ablation.json``."""
    path = out_dir / "ablation.json"
    doc = read_json(path) or {"kind": "ablation", "weighting": [], "ensemble": []}
    command = command_line()
    for name in ("weighting", "ensemble"):
        if part not in (name, "all"):
            continue
        for dataset in datasets:
            new = (
                weighting(dataset, kmeans_runs)
                if name == "weighting"
                else ensemble(dataset, seeds, kmeans_runs)
            )
            doc[name] = [r for r in doc.get(name, []) if r["dataset"] != dataset] + new
            doc.update(updated=now(), machine=machine_info(), versions=versions())
            if command not in doc.setdefault("commands", []):
                doc["commands"].append(command)
            write_json_atomic(path, doc)  # after every dataset: an interruption loses one
    return path
