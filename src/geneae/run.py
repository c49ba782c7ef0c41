"""The main job: read, preprocess, train, save, evaluate against PCA, write the report.

``geneae train``, ``geneae demo`` and ``geneae compare`` all run :func:`train_run`. A run
directory holds the saved model (see :mod:`geneae.model`) plus ``latent.h5ad``,
``report_data.h5ad``, ``top_genes.csv``, ``report.html`` and ``figures/``. An existing run
directory is never modified unless ``overwrite`` or ``resume`` is given.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae import evaluate
from geneae._atomic import atomic_path, write_text
from geneae.config import RunConfig
from geneae.errors import InputError, ModelFileError
from geneae.io import read, write_h5ad
from geneae.model import GeneAE, _jsonable, _with_layer

logger = logging.getLogger(__name__)

# Files a run writes; ``overwrite`` replaces exactly these and nothing else in the folder.
RUN_FILES = (
    "config.yaml",
    "weights.safetensors",
    "genes.txt",
    "preprocessor.json",
    "history.csv",
    "metrics.json",
    "latent.h5ad",
    "report_data.h5ad",
    "results.h5ad",
    "top_genes.csv",
    "report.html",
)
MAX_EVAL_CELLS = 50_000


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    model: GeneAE
    metrics: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def check_run_dir(run_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Refuse to touch an existing run directory unless asked to (overwrite / resume)."""
    if resume:
        if not (run_dir / "checkpoints" / "last.ckpt").is_file():
            raise ModelFileError(
                f"{run_dir}: nothing to resume (no checkpoints/last.ckpt); start a new run "
                "without --resume."
            )
        return
    existing = [f for f in RUN_FILES if (run_dir / f).exists()] + (
        ["checkpoints/"] if (run_dir / "checkpoints").exists() else []
    )
    if existing and not overwrite:
        raise ModelFileError(
            f"{run_dir}: already holds a run ({', '.join(existing[:4])}); pass --overwrite to "
            "replace it, --resume to continue it, or choose another --out."
        )
    if overwrite:
        for name in ("checkpoints/last.ckpt", "checkpoints/best.ckpt"):
            (run_dir / name).unlink(missing_ok=True)


def load_data(path: str | Path, config: RunConfig, labels: str | None = None) -> ad.AnnData:
    """Read ``path`` as the data section of ``config`` says."""
    return read(
        path,
        fmt=config.data.format,
        labels=labels or config.data.labels,
        transpose=config.data.transpose,
    )


def train_run(
    data_path: str | Path,
    run_dir: str | Path,
    config: RunConfig,
    *,
    adata: ad.AnnData | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> RunResult:
    """Train on ``data_path`` and write a complete run directory; see the module docstring."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir, overwrite=overwrite, resume=resume)
    if resume and (run_dir / "config.yaml").is_file():
        config = RunConfig.from_yaml(run_dir / "config.yaml")
    t0 = time.perf_counter()
    if adata is None:
        adata = load_data(data_path, config)
    read_s = time.perf_counter() - t0
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", config.to_yaml())

    model = GeneAE(config)
    model.fit(adata, layer=config.data.layer, run_dir=run_dir, resume=resume)
    if not model.is_global_zero:
        # A helper process of data-parallel training: process 0 writes the run.
        return RunResult(run_dir=run_dir, model=model, metrics=model.metrics)
    model.metrics["timings"]["read_s"] = read_s
    model.metrics["data"]["path"] = str(data_path)
    model.save(run_dir, overwrite=True)

    t1 = time.perf_counter()
    metrics = evaluate_model(model, adata, run_dir=run_dir)
    metrics["timings"]["evaluate_s"] = time.perf_counter() - t1
    write_text(run_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=2) + "\n")
    _store_final_metrics(run_dir, metrics)
    model.metrics = metrics
    files = [run_dir / f for f in RUN_FILES if (run_dir / f).exists()]
    if config.evaluate.report:
        from geneae.report import write_report

        t2 = time.perf_counter()
        files.append(write_report(run_dir))
        metrics["timings"]["report_s"] = time.perf_counter() - t2
        write_text(run_dir / "metrics.json", json.dumps(_jsonable(metrics), indent=2) + "\n")
    return RunResult(run_dir=run_dir, model=model, metrics=metrics, files=sorted(set(files)))


def labels_of(adata: ad.AnnData, key: str | None = None) -> np.ndarray | None:
    """The known labels as strings, or None when the data carries none."""
    key = key or "label"
    if key not in adata.obs:
        if key != "label":
            raise InputError(
                f"labels column {key!r} not found; available: "
                f"{', '.join(map(str, adata.obs.columns)) or 'none'}."
            )
        return None
    return adata.obs[key].astype(str).to_numpy()


def evaluate_model(
    model: GeneAE,
    adata: ad.AnnData,
    *,
    run_dir: Path | None = None,
    labels_key: str | None = None,
) -> dict[str, Any]:
    """Every metric of a run, side by side with PCA; writes result files when ``run_dir``."""
    cfg = model.config
    layer = cfg.data.layer
    labels_all = labels_of(adata, labels_key)
    rng = np.random.default_rng(cfg.train.seed)
    rows = np.arange(adata.n_obs)
    if adata.n_obs > MAX_EVAL_CELLS:
        rows = np.sort(rng.choice(adata.n_obs, MAX_EVAL_CELLS, replace=False))
    sub = adata[rows] if len(rows) < adata.n_obs else adata
    assert model.preprocessor is not None
    pre = model.preprocessor.transform(_with_layer(sub, layer))
    x = _dense(pre.X)
    latent = model.transform(sub, layer=layer)
    x_hat = model.reconstruct(sub, layer=layer, space="input")
    labels = labels_all[rows] if labels_all is not None else None

    responsibilities = None
    clusters = None
    method = cfg.evaluate.cluster_method
    if cfg.model.family == "gmvae":
        responsibilities = model.cluster_probabilities(sub, layer=layer)
        if method == "gmvae":
            clusters = responsibilities.argmax(1)
    elif method == "gmvae":
        method = "kmeans"
    comparison, arrays = evaluate.compare_with_pca(
        x,
        latent,
        x_hat,
        labels,
        seed=cfg.train.seed,
        cluster_method=method,
        n_clusters=cfg.evaluate.n_clusters,
        clusters=clusters,
        return_arrays=True,
    )
    qz_var = model.latent_variance(sub, layer=layer)
    usage = evaluate.latent_usage(latent, qz_var)
    metrics = dict(model.metrics)
    metrics["comparison"] = comparison
    metrics["latent_usage"] = usage
    metrics["likelihood"] = _likelihood_metrics(model.history)
    if labels is not None:
        metrics["data"] = dict(metrics.get("data", {}))
        metrics["data"]["labels"] = pd.Series(labels).value_counts().to_dict()
    if run_dir is not None:
        obs, loadings = _write_results(
            model, sub, pre, x, x_hat, latent, labels, arrays, responsibilities, usage, run_dir
        )
        _write_results_file(
            model,
            obs,
            pre,
            x,
            x_hat,
            latent,
            arrays,
            responsibilities,
            qz_var,
            loadings,
            metrics,
            run_dir,
        )
    return metrics


def _likelihood_metrics(history: pd.DataFrame) -> dict[str, float]:
    """Held-out terms at the best epoch (lowest validation loss)."""
    if history.empty or "val_loss" not in history:
        return {}
    best = history.loc[history["val_loss"].idxmin()]
    keys = [c for c in history.columns if c.startswith("val_")]
    out = {k: float(best[k]) for k in keys if pd.notna(best[k])}
    out["best_epoch"] = int(best["epoch"])
    return out


def _write_results(
    model: GeneAE,
    sub: ad.AnnData,
    pre: ad.AnnData,
    x: np.ndarray,
    x_hat: np.ndarray,
    latent: np.ndarray,
    labels: np.ndarray | None,
    arrays: dict[str, Any],
    responsibilities: np.ndarray | None,
    usage: dict[str, Any],
    run_dir: Path,
) -> tuple[pd.DataFrame, np.ndarray]:
    cfg = model.config
    obs = pd.DataFrame(index=sub.obs_names.astype(str))
    if labels is not None:
        obs["label"] = pd.Categorical(labels)
    clusters = arrays["clusters"]
    for side in ("geneae", "pca"):
        if side in clusters:
            obs[f"{side}_cluster"] = pd.Categorical(np.asarray(clusters[side]).astype(str))
    pca_scores = np.asarray(arrays["pca_embedding"], dtype=np.float32)
    latent_ad = ad.AnnData(obs=obs)
    latent_ad.obsm["X_geneae"] = latent.astype(np.float32)
    latent_ad.obsm["X_pca"] = pca_scores
    if responsibilities is not None:
        latent_ad.obsm["geneae_responsibilities"] = responsibilities.astype(np.float32)
    latent_ad.uns["geneae"] = {
        "config": json.loads(json.dumps(cfg.model_dump(mode="json"), default=str))
    }
    write_h5ad(latent_ad, run_dir / "latent.h5ad")

    # A seeded subsample of everything the figures need, so `geneae report` can redraw them.
    rng = np.random.default_rng(cfg.train.seed)
    n_plot = min(cfg.evaluate.max_plot_cells, sub.n_obs)
    keep = np.sort(rng.choice(sub.n_obs, n_plot, replace=False))
    rep = ad.AnnData(
        X=x[keep].astype(np.float32),
        obs=obs.iloc[keep].copy(),
        var=pd.DataFrame(index=pre.var_names.astype(str)),
    )
    rep.layers["geneae_denoised"] = x_hat[keep].astype(np.float32)
    raw = pre.layers["counts"] if "counts" in pre.layers else None
    if raw is not None:
        rep.layers["raw"] = _dense(raw[keep]).astype(np.float32)
    rep.obsm["X_geneae"] = latent[keep].astype(np.float32)
    rep.obsm["X_pca"] = pca_scores[keep]
    if responsibilities is not None:
        rep.obsm["geneae_responsibilities"] = responsibilities[keep].astype(np.float32)
    loadings = model.gene_loadings(sub, layer=cfg.data.layer, seed=cfg.train.seed)
    rep.varm["geneae_loadings"] = loadings.astype(np.float32)
    for key in ("variance", "kl"):
        if usage.get(key) is not None:
            rep.uns[f"geneae_latent_{'var' if key == 'variance' else key}"] = np.asarray(
                usage[key], dtype=np.float32
            )
    write_h5ad(rep, run_dir / "report_data.h5ad")
    table = evaluate.top_genes(loadings, list(pre.var_names.astype(str)), n=10)
    with atomic_path(run_dir / "top_genes.csv") as tmp:
        table.to_csv(tmp, index=False)
    return obs, loadings


# -- adapter: results.h5ad (docs/results.md) until the pipeline redesign (issue 13) lands --
# The report renders from results.h5ad alone; these two functions write it from what
# evaluate_model already has, with the geneae.tl functions. report_data.h5ad above stays
# until the owner's run.py replaces both.


def _write_results_file(
    model: GeneAE,
    obs: pd.DataFrame,
    pre: ad.AnnData,
    x: np.ndarray,
    x_hat: np.ndarray,
    latent: np.ndarray,
    arrays: dict[str, Any],
    responsibilities: np.ndarray | None,
    qz_var: np.ndarray | None,
    loadings: np.ndarray,
    metrics: dict[str, Any],
    run_dir: Path,
) -> None:
    from geneae import __version__, tl

    cfg = model.config
    results = ad.AnnData(obs=obs.copy(), var=pd.DataFrame(index=pre.var_names.astype(str)))
    results.obsm["X_geneae"] = latent.astype(np.float32)
    results.obsm["X_pca"] = np.asarray(arrays["pca_embedding"], dtype=np.float32)
    if qz_var is not None:
        results.obsm["geneae_var"] = np.asarray(qz_var, dtype=np.float32)
    if responsibilities is not None:
        results.obsm["geneae_responsibilities"] = responsibilities.astype(np.float32)
    results.varm["geneae_loadings"] = np.asarray(loadings, dtype=np.float32)
    results.uns["geneae"] = {
        "config": cfg.to_yaml(),
        "metrics": json.dumps(_jsonable(metrics), indent=2),
        "history": model.history.to_csv(index=False),
        "version": __version__,
    }
    methods = ["pca"] + [m for m in ("tsne", "umap") if getattr(cfg.evaluate, m)]
    spaces = {
        "input": x,
        "reconstruction": x_hat,
        "geneae": latent,
        "pca": np.asarray(arrays["pca_embedding"]),
    }
    seed = cfg.train.seed
    tl.maps(results, spaces, methods=methods, max_cells=cfg.evaluate.max_plot_cells, seed=seed)
    raw = pre.layers["counts"] if "counts" in pre.layers else None
    tl.histograms(results, raw=raw, input=x)
    tl.profiles(results, input=x, reconstruction=x_hat, seed=seed)
    write_h5ad(results, run_dir / "results.h5ad")


def _store_final_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Replace the metrics of results.h5ad by the final ones (with the evaluation time)."""
    path = run_dir / "results.h5ad"
    if path.is_file():
        results = ad.read_h5ad(path)
        results.uns["geneae"]["metrics"] = json.dumps(_jsonable(metrics), indent=2)
        write_h5ad(results, path)


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)
