"""Clustering quality side by side: scanpy PCA, scvi-tools SCVI and geneae's presets.

Every (dataset, method, seed) runs in its own process (see :mod:`benchmarks.worker`) on the
same input — raw counts plus labels — and is scored by the same function: KMeans with k = the
number of labels (geneae.evaluate's, ``KMEANS_RESTARTS`` restarts, random_state=seed; each
record keeps the restarts it was scored with) and Leiden (geneae.evaluate's kNN graph,
resolution searched for k clusters) on the embedding; ARI, NMI, Hungarian accuracy, and the
silhouette of the labels on the embedding. Raw records go to ``quality.json``; each run's
embedding to ``latents/DATASET__METHOD__seedS.npy`` beside it (not in git), so that a change
of the scoring can be measured on the same embeddings without fitting again.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import (
    dataset_kind,
    loadavg,
    machine_info,
    mean_std,
    merge_records,
    now,
    peak_rss_mb,
    run_worker,
    unlogged,
    versions,
)

# name -> (components, scale before PCA). The scaled pipeline is BASELINES.md's (scanpy's
# tutorial); the unscaled one skips sc.pp.scale: better on 10x PBMC, worse on bladder / CBMC.
PCA_METHODS = {
    "scanpy-pca10": (10, True),
    "scanpy-pca50": (50, True),
    "pca10-unscaled": (10, False),
    "pca50-unscaled": (50, False),
}
GENEAE_PRESETS = (
    "recommended",
    "scvi-like",
    "dca-zinb",
    "scvae-gmvae",
    "deep-ae",
    "masked-ae",
    "beta-vae",
)
METHODS = (*PCA_METHODS, "scvi", *GENEAE_PRESETS)
PEERS = (*PCA_METHODS, "scvi")
SCVI_EPOCHS = 100  # BASELINES.md: SCVI scored better with 100 epochs than with its own 400
N_TOP_GENES = 2000


def methods_for(kind: str, methods: list[str]) -> list[str]:
    """The methods that take data of ``kind``: on values other than counts, PCA and the
    default (scvi-tools and the count presets need raw counts)."""
    if kind == "counts":
        return list(methods)
    return [m for m in methods if m in PCA_METHODS or m == "recommended"]


def latent_path(out_dir: Path, dataset: str, method: str, seed: int) -> Path:
    """Where a run's embedding is kept (float32 .npy; cells in the dataset's order)."""
    return out_dir / "latents" / f"{dataset}__{method}__seed{seed}.npy"


def record_key(rec: dict[str, Any]) -> tuple:
    return (rec["dataset"], rec["method"], int(rec["seed"]))


# -- the parent: one subprocess per run -----------------------------------------------------
def run_quality(
    datasets: list[str],
    methods: list[str],
    seeds: list[int],
    max_epochs: int | None,
    out_dir: Path,
    *,
    timeout: float | None = None,
    fresh: bool = False,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Run every (dataset, method, seed), ``jobs`` worker processes at a time.

    With ``jobs > 1`` each worker gets ``cpu_count // jobs`` threads (OMP_NUM_THREADS), so
    the runs do not oversubscribe the cores; their times are then those of that many
    threads, recorded in each record (``torch_threads``, ``concurrent_jobs``).
    """
    path = out_dir / "quality.json"
    has_scvi = importlib.util.find_spec("scvi") is not None
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    lock = threading.Lock()
    done: list[dict[str, Any]] = []

    def run(dataset: str, method: str, seed: int) -> None:
        nonlocal fresh
        spec = {
            "task": "quality",
            "dataset": dataset,
            "method": method,
            "seed": seed,
            "max_epochs": max_epochs,
            "latent_path": str(latent_path(out_dir, dataset, method, seed)),
        }
        base = {
            "dataset": dataset,
            "method": method,
            "seed": seed,
            "max_epochs_override": max_epochs,
            "concurrent_jobs": jobs,
            "finished": None,
            "loadavg_start": loadavg(),
            "versions": versions(),
            "machine": machine_info(),
        }
        t0 = time.perf_counter()
        if method == "scvi" and not has_scvi:
            rec = {
                **base,
                "status": "skipped",
                "note": "scvi-tools is not installed (pip install -e '.[bench]')",
            }
        else:
            log = out_dir / "logs" / "quality" / f"{dataset}__{method}__seed{seed}.log"
            result, tail = run_worker(spec, log_path=log, timeout=timeout, threads=threads)
            rec = {**base, **(result or {"status": "failed"})}
            if tail and rec.get("status") == "failed":
                rec.setdefault("error", tail.splitlines()[-1] if tail else "")
                rec["log_tail"] = tail
        rec["finished"] = now()
        rec["loadavg_end"] = loadavg()
        rec["wall_s"] = time.perf_counter() - t0
        with lock:  # one writer of quality.json at a time
            done.append(rec)
            merge_records(path, "quality", [rec], record_key, fresh=fresh)
            fresh = False  # only the first record starts the file over
            print(_progress_line(rec), flush=True)

    grid = [
        (d, m, s) for d in datasets for m in methods_for(dataset_kind(d), methods) for s in seeds
    ]
    if jobs <= 1:
        for item in grid:
            run(*item)
    else:
        with ThreadPoolExecutor(jobs) as pool:
            for future in [pool.submit(run, *item) for item in grid]:
                future.result()
    print_summary(done)
    print(f"wrote {path}")
    return done


def _progress_line(rec: dict[str, Any]) -> str:
    head = f"[quality] {rec['dataset']:<17} {rec['method']:<13} seed {rec['seed']}: "
    if rec.get("status") != "ok":
        return head + f"{rec.get('status')}: {rec.get('error') or rec.get('note')}"
    parts = [f"ARI {rec['ari']:.3f}", f"NMI {rec['nmi']:.3f}"]
    if rec.get("ari_leiden") is not None:
        parts.append(f"Leiden ARI {rec['ari_leiden']:.3f}")
    if rec.get("ari_gmvae") is not None:
        parts.append(f"GMVAE ARI {rec['ari_gmvae']:.3f}")
    parts.append(f"fit {rec['fit_s']:.1f} s")
    if rec.get("epochs"):
        parts.append(f"{rec['epochs']} ep, {rec['seconds_per_epoch']:.2f} s/ep")
    parts.append(f"peak {rec['peak_rss_mb']:.0f} MB")
    return head + ", ".join(parts)


def print_summary(records: list[dict[str, Any]]) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok":
            groups.setdefault((r["dataset"], r["method"]), []).append(r)
    if not groups:
        return
    print(f"\n{'dataset':<17} {'method':<13} {'n':>2} {'ARI':>13} {'NMI':>13} {'fit s':>8}")
    for (dataset, method), rs in groups.items():
        ari, ari_sd, n = mean_std(r["ari"] for r in rs)
        nmi, nmi_sd, _ = mean_std(r["nmi"] for r in rs)
        fit, _, _ = mean_std(r["fit_s"] for r in rs)
        print(
            f"{dataset:<17} {method:<13} {n:>2} {ari:>6.3f}±{ari_sd:.3f} "
            f"{nmi:>6.3f}±{nmi_sd:.3f} {fit:>8.1f}"
        )


# -- the worker: one run ------------------------------------------------------------------------
def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Fit one method on one dataset with one seed and score it (in a worker process)."""
    import numpy as np
    import scanpy as sc  # noqa: F401  (import cost counted before the data, for every method)
    import torch

    from benchmarks.common import load_dataset

    method, seed = spec["method"], int(spec["seed"])
    max_epochs = spec.get("max_epochs")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == "scvi":
        import scvi  # noqa: F401
    else:
        import geneae.model  # noqa: F401
    from geneae import evaluate
    from geneae.evaluate.clustering import KMEANS_RESTARTS

    rss_imports = peak_rss_mb()
    t_load = time.perf_counter()
    adata = load_dataset(spec["dataset"])
    load_s = time.perf_counter() - t_load
    labels = adata.obs["label"].to_numpy()
    k = int(len(np.unique(labels)))

    out: dict[str, Any] = {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "n_labels": k,
        "torch_threads": torch.get_num_threads(),
        "rss_after_imports_mb": rss_imports,
        "load_s": load_s,
    }
    kind = dataset_kind(spec["dataset"])
    if method in PCA_METHODS and kind != "counts":
        latent, info = _pca_of_values(
            adata, *PCA_METHODS[method], seed, log=unlogged(spec["dataset"])
        )
    elif method in PCA_METHODS:
        latent, info = _scanpy_pca(adata, *PCA_METHODS[method], seed)
    elif method == "scvi":
        latent, info = _scvi(adata, seed, max_epochs or SCVI_EPOCHS)
    else:
        overrides = design_overrides(spec, adata.n_obs)
        latent, info, model = _geneae(adata, method, seed, max_epochs, k, overrides)
        if method == "scvae-gmvae":
            probs = model.cluster_probabilities(adata)
            clusters = np.asarray(probs).argmax(axis=1)
            gm = evaluate.clustering_scores(latent, labels, clusters=clusters, seed=seed)
            info.update(
                ari_gmvae=gm["ari"],
                nmi_gmvae=gm["nmi"],
                acc_gmvae=gm["acc"],
                n_clusters_gmvae=gm["n_clusters"],
            )
    out.update(info)
    out["latent_dim"] = int(latent.shape[1])
    if spec.get("latent_path"):
        _save_latent(Path(spec["latent_path"]), latent)

    t_eval = time.perf_counter()
    km = evaluate.clustering_scores(latent, labels, method="kmeans", n_clusters=k, seed=seed)
    out.update({key: km[key] for key in ("ari", "nmi", "acc", "silhouette")})
    out["n_clusters_kmeans"] = km["n_clusters"]
    out["kmeans_restarts"] = KMEANS_RESTARTS
    ld = evaluate.clustering_scores(latent, labels, method="leiden", n_clusters=k, seed=seed)
    out.update(
        ari_leiden=ld["ari"],
        nmi_leiden=ld["nmi"],
        acc_leiden=ld["acc"],
        n_clusters_leiden=ld["n_clusters"],
    )
    out["evaluate_s"] = time.perf_counter() - t_eval
    out["status"] = "ok"
    return out


def member_epochs(trained: int | list[int] | None) -> dict[str, Any]:
    """A record's epochs: in all (``epochs``), and per member of an ensemble.

    ``trained`` is metrics.json's ``epochs_trained``: an int for one model, a list for
    ``model.members > 1`` (then ``members`` and ``epochs_per_member`` are recorded too).
    """
    if not isinstance(trained, list):
        return {"epochs": trained}
    return {"epochs": sum(trained), "members": len(trained), "epochs_per_member": trained}


def _save_latent(path: Path, latent: Any) -> None:
    """Write the embedding atomically (a run killed midway leaves no half file)."""
    import numpy as np

    from geneae._atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(latent, dtype=np.float32))


def select_genes(adata: Any) -> Any:
    """BASELINES.md's first two steps: genes seen in >= 1 cell, seurat_v3 top 2,000 on counts.

    Where scanpy's loess is singular at its span 0.3 (the whole-genome worm table) the span
    is widened as geneae widens its own (geneae.pp.transforms.SEURAT_V3_SPANS), so that
    every method still gets the same genes.
    """
    import scanpy as sc

    from geneae.pp.transforms import with_loess_span

    a = adata.copy()
    sc.pp.filter_genes(a, min_cells=1)
    # Fewer genes than asked for: seurat_v3 would rank all of them; keep all.
    n_top = min(N_TOP_GENES, a.n_vars)
    with_loess_span(
        lambda span: sc.pp.highly_variable_genes(
            a, flavor="seurat_v3", n_top_genes=n_top, span=span, subset=True
        ),
        a.n_vars,
    )
    return a


def _scanpy_pca(adata: Any, n_comps: int, scale: bool, seed: int) -> tuple[Any, dict[str, Any]]:
    import scanpy as sc

    t0 = time.perf_counter()
    a = select_genes(adata)
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    if scale:
        sc.pp.scale(a, max_value=10)
    sc.pp.pca(a, n_comps=n_comps, random_state=seed)
    pipeline = "filter_genes>=1, hvg seurat_v3 2000, norm 1e4, log1p"
    return a.obsm["X_pca"], _pca_info(a, time.perf_counter() - t0, pipeline, scale)


def _pca_of_values(
    adata: Any, n_comps: int, scale: bool, seed: int, *, log: float | None
) -> tuple[Any, dict[str, Any]]:
    """PCA of values that are not counts: where they are unlogged, log1p of each sample
    scaled to ``log`` first (bulk: a million, log TPM and edgeR's log-CPM of estimated
    counts; single cells in CPM: scanpy's 1e4).

    Of a table with more than 2,000 genes (the whole-genome and bulk sets; the other
    ``*_lognorm`` sets hold their 2,000 HVGs already), the scaled variants take scanpy's
    pipeline for log values first (seurat HVGs, then z-scores), the unscaled ones PCA every
    gene's log values as given: each its stronger form (z-scoring every gene of a whole
    genome weighs thousands of noise genes alike; plain PCA of all log values is what PCA
    users run, and scored 0.04-0.07 ARI above its HVG form on the worm and bulk sets).
    """
    import scanpy as sc

    t0 = time.perf_counter()
    a = adata.copy()
    total = f"{log:.0e}".replace("e+0", "e") if log else ""
    pipeline = [f"normalize_total {total}, log1p"] if log else ["values as given"]
    if log:
        sc.pp.normalize_total(a, target_sum=log)
        sc.pp.log1p(a)
    if scale and a.n_vars > N_TOP_GENES:
        sc.pp.highly_variable_genes(a, flavor="seurat", n_top_genes=N_TOP_GENES, subset=True)
        pipeline.append(f"hvg seurat {N_TOP_GENES}")
    if scale:
        sc.pp.scale(a, max_value=10)
    sc.pp.pca(a, n_comps=min(n_comps, min(a.shape) - 1), random_state=seed)
    return a.obsm["X_pca"], _pca_info(a, time.perf_counter() - t0, ", ".join(pipeline), scale)


def _pca_info(a: Any, fit_s: float, pipeline: str, scale: bool) -> dict[str, Any]:
    """The record fields of a PCA run (PCA has no epochs)."""
    return {
        "fit_s": fit_s,
        "train_s": fit_s,
        "seconds_per_epoch": None,
        "epochs": None,
        "n_genes_model": int(a.n_vars),
        "config": {"pipeline": pipeline + (", scale 10" if scale else " (no scaling)")},
    }


def _scvi(adata: Any, seed: int, epochs: int) -> tuple[Any, dict[str, Any]]:
    import anndata as ad
    import scvi

    scvi.settings.seed = seed
    t0 = time.perf_counter()
    sel = select_genes(adata)
    a = ad.AnnData(X=sel.layers["counts"].copy(), obs=sel.obs[["label"]].copy(), var=sel.var[[]])
    scvi.model.SCVI.setup_anndata(a)
    model = scvi.model.SCVI(a)  # defaults: ZINB, 1 x 128, latent 10
    t1 = time.perf_counter()
    model.train(max_epochs=epochs, batch_size=128, enable_progress_bar=False)
    train_s = time.perf_counter() - t1
    fit_s = time.perf_counter() - t0
    history = model.history.get("elbo_train")
    n_epochs = int(len(history)) if history is not None else epochs
    latent = model.get_latent_representation()  # posterior means
    info = {
        "fit_s": fit_s,
        "train_s": train_s,
        "seconds_per_epoch": train_s / max(n_epochs, 1),
        "epochs": n_epochs,
        "max_epochs": epochs,
        "n_genes_model": int(a.n_vars),
        "config": {
            "n_hidden": model.module.n_hidden if hasattr(model.module, "n_hidden") else 128,
            "n_latent": model.module.n_latent,
            "gene_likelihood": model.module.gene_likelihood,
            "batch_size": 128,
            "max_epochs": epochs,
        },
    }
    return latent, info


def design_overrides(spec: dict[str, Any], n_obs: int) -> dict[str, Any]:
    """A design experiment's settings (benchmarks.design): ``overrides`` as given, and
    ``samples_seen`` as the epochs that budget gives ``n_obs`` cells (geneae.resolve; the
    file's cells, before preprocessing drops any, where ``geneae train`` counts after)."""
    overrides = dict(spec.get("overrides") or {})
    if spec.get("samples_seen"):
        from geneae.resolve import default_epochs

        overrides["train.max_epochs"] = default_epochs(n_obs, float(spec["samples_seen"]))
    return overrides


def _geneae(
    adata: Any,
    preset: str,
    seed: int,
    max_epochs: int | None,
    k: int,
    extra: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any], Any]:
    from geneae.model import GeneAE

    overrides: dict[str, Any] = {**(extra or {}), "train.seed": seed, "train.quiet": True}
    if max_epochs:
        overrides["train.max_epochs"] = int(max_epochs)
    if preset == "scvae-gmvae":
        overrides["model.n_components"] = k
    model = GeneAE.from_preset(preset, overrides)
    t0 = time.perf_counter()
    model.fit(adata)
    fit_s = time.perf_counter() - t0
    latent = model.encode(adata)
    timings = model.metrics.get("timings", {})
    minfo = model.metrics.get("model", {})
    info = {
        "fit_s": fit_s,
        "train_s": timings.get("train_s"),
        "preprocess_s": timings.get("preprocess_s"),
        "seconds_per_epoch": timings.get("seconds_per_epoch"),
        **member_epochs(minfo.get("epochs_trained")),
        "max_epochs": minfo.get("max_epochs"),
        "best_epoch": minfo.get("best_epoch"),
        "stopped_early": minfo.get("stopped_early"),
        "device": minfo.get("device"),
        # Where a run's time goes besides the members' epochs (the GPU part reads these).
        "phase_s": (minfo.get("cluster_phase") or {}).get("seconds"),
        "cpu_threads": minfo.get("cpu_threads"),
        **({"cuda_graph": minfo["cuda_graph"]} if minfo.get("cuda_graph") else {}),
        "n_parameters": minfo.get("n_parameters"),
        "n_genes_model": model.metrics.get("data", {}).get("n_genes_model"),
        "config": model.config.model_dump(mode="json"),
    }
    return latent, info, model
