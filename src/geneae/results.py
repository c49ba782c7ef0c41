"""Evaluate a fitted model on preprocessed data, beside PCA, into one results AnnData.

:func:`evaluate` takes what a run already has in memory — the data preprocessed once
(:class:`~geneae.model.Prepared`) and the model's outputs of one forward pass — and measures
the model and a PCA of the same size with the same metrics (:mod:`geneae.evaluate`).
:func:`results_anndata` lays the evaluation out as ``results.h5ad`` (``docs/results.md``):
clusters, embeddings, loadings, metrics, and the 2-D maps and summaries computed by
:mod:`geneae.tl`, so that the report only draws.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae import __version__, evaluate, tl
from geneae.errors import DataWarning, InputError
from geneae.genes import GeneEmbedding, embed_genes
from geneae.labels import labelled_rows
from geneae.model import GeneAE, Outputs, Prepared
from geneae.saved_model import jsonable

# Metrics use at most this many cells (a seeded subsample): PCA, kNN graphs and the
# silhouette grow faster than linearly, and 50,000 cells pin the scores down well.
MAX_EVAL_CELLS = 50_000


@dataclass
class Evaluation:
    """A model measured beside PCA on the evaluated cells.

    Attributes
    ----------
    obs_names
        The evaluated cells (all, or a seeded subsample of ``MAX_EVAL_CELLS``).
    labels
        Their known labels, or None.
    x, x_hat
        Model input and the model's reconstruction in input space (cells x model genes).
    raw
        The raw counts of those cells, when the data have them.
    outputs
        The model's outputs for those cells.
    comparison
        geneae vs PCA (:class:`geneae.evaluate.Comparison`).
    loadings
        Signed gene loadings (genes x latent dims).
    genes
        The gene embedding (:func:`geneae.genes.embed_genes`): a gene model's latent means
        of every gene, or a sample model's loadings.
    metrics
        Everything for metrics.json: the model's own metrics plus ``comparison``,
        ``latent_usage`` and ``likelihood``.
    """

    obs_names: np.ndarray
    labels: np.ndarray | None
    x: np.ndarray
    x_hat: np.ndarray
    raw: Any
    outputs: Outputs
    comparison: evaluate.Comparison
    loadings: np.ndarray
    genes: GeneEmbedding
    metrics: dict[str, Any]


def labels_of(adata: ad.AnnData, key: str | None = None) -> np.ndarray | None:
    """The known labels (``obs[key]``, default ``obs["label"]``), or None.

    An object array of strings, with None for cells that have no label (NaN or blank in
    the column): they are clustered with the rest and left out of the label metrics.
    """
    key = key or "label"
    if key not in adata.obs:
        if key != "label":
            raise InputError(
                f"labels column {key!r} not found; available: "
                f"{', '.join(map(str, adata.obs.columns)) or 'none'}."
            )
        return None
    values, labelled = labelled_rows(adata.obs[key].to_numpy(), adata.n_obs, key)
    labels = np.asarray(values.astype(str), dtype=object)
    labels[~labelled] = None
    return labels


def warn_unlabelled(labels: np.ndarray, where: str) -> int:
    """Warn once that some cells have no label; returns how many (0: no warning)."""
    unlabelled = int(sum(v is None for v in labels))
    if unlabelled:
        warnings.warn(
            f"{unlabelled:,} of {len(labels):,} {where} have no label (NaN, blank, or no row "
            "in a labels table): they are clustered with the others, and the label metrics "
            f"score the {len(labels) - unlabelled:,} labelled ones.",
            DataWarning,
            stacklevel=3,
        )
    return unlabelled


def evaluate_model(model: GeneAE, prepared: Prepared) -> Evaluation:
    """Measure ``model`` beside PCA on ``prepared`` (preprocessed once, encoded once)."""
    cfg = model.config
    n = prepared.n_obs
    rows = np.arange(n)
    if n > MAX_EVAL_CELLS:
        rng = np.random.default_rng(cfg.train.seed)
        rows = np.sort(rng.choice(n, MAX_EVAL_CELLS, replace=False))
    full = model.predict(prepared, reconstruction_rows=rows if len(rows) < n else None)
    outputs = _take(full, rows)
    data = prepared.data
    x = _dense(data.X[rows] if len(rows) < n else data.X)
    x_hat = model.to_input_space(outputs.reconstruction)
    labels = labels_of(data)
    unlabelled = 0
    if labels is not None:
        labels = labels[rows]
        unlabelled = warn_unlabelled(labels, "cells evaluated" if len(rows) < n else "cells")
    method = cfg.evaluate.cluster_method
    clusters = None
    if method == "gmvae":
        if outputs.cluster_probabilities is None:
            method = "kmeans"  # only a GMVAE has its own clusters
        else:
            clusters = outputs.cluster_probabilities.argmax(1)
    comparison = evaluate.compare_with_pca(
        x,
        outputs.latent,
        x_hat,
        labels,
        seed=cfg.train.seed,
        cluster_method=method,
        n_clusters=cfg.evaluate.n_clusters,
        clusters=clusters,
        stability_repeats=cfg.evaluate.stability_repeats,
        stability_fraction=cfg.evaluate.stability_fraction,
    )
    from geneae.train.cluster_phase import ClusterPhaseWarning, finer_than_phase

    clustering = comparison.metrics["clustering"]
    finer = finer_than_phase(
        model.metrics.get("model", {}).get("cluster_phase"),
        clustering["n_clusters"],
        clustering["n_clusters_from"],
    )
    if finer is not None:
        clustering["finer_than_phase"] = finer  # the report's clusters section says it too
        warnings.warn(finer, ClusterPhaseWarning, stacklevel=2)
    metrics = dict(model.metrics)
    metrics["comparison"] = comparison.metrics
    metrics["latent_usage"] = evaluate.latent_usage(outputs.latent, outputs.latent_var)
    metrics["likelihood"] = _likelihood_metrics(model.history)
    if labels is not None:
        metrics["data"] = dict(metrics.get("data", {}))
        metrics["data"]["labels"] = pd.Series(labels).value_counts().to_dict()  # labelled
        if unlabelled:
            metrics["data"]["unlabelled"] = unlabelled
    raw = data.layers["counts"] if "counts" in data.layers else None
    loadings = model.gene_loadings(outputs.latent, seed=cfg.train.seed)
    return Evaluation(
        obs_names=outputs.obs_names,
        labels=labels,
        x=x,
        x_hat=x_hat,
        raw=None if raw is None else raw[rows] if len(rows) < n else raw,
        outputs=outputs,
        comparison=comparison,
        loadings=loadings,
        genes=embed_genes(model, prepared, latent=full.latent, loadings=loadings),
        metrics=metrics,
    )


#: The spaces drawn by t-SNE and UMAP as well as by PCA: the two the report compares. The
#: input's neighbour map would nearly repeat the PCA baseline's (both start from the input's
#: leading components) and the reconstruction is checked against the input in the PCA maps;
#: each neighbour map costs seconds, most of an evaluation's time when all four were drawn.
NEIGHBOUR_MAP_SPACES = ("geneae", "pca")


def results_anndata(model: GeneAE, evaluation: Evaluation) -> ad.AnnData:
    """The results AnnData of ``docs/results.md``: embeddings, clusters, maps, summaries."""
    cfg = model.config
    obs = pd.DataFrame(index=pd.Index(evaluation.obs_names, dtype=str))
    if evaluation.labels is not None:
        obs["label"] = pd.Categorical(evaluation.labels)
    for side, codes in evaluation.comparison.clusters.items():
        obs[f"{side}_cluster"] = pd.Categorical(np.asarray(codes).astype(str))
    results = ad.AnnData(obs=obs, var=pd.DataFrame(index=pd.Index(model.genes, dtype=str)))
    out = evaluation.outputs
    pca = np.asarray(evaluation.comparison.pca_embedding, dtype=np.float32)
    results.obsm["X_geneae"] = out.latent.astype(np.float32)
    results.obsm["X_pca"] = pca
    if out.latent_var is not None:
        results.obsm["geneae_var"] = out.latent_var.astype(np.float32)
    if out.cluster_probabilities is not None:
        results.obsm["geneae_responsibilities"] = out.cluster_probabilities.astype(np.float32)
    results.varm["geneae_loadings"] = evaluation.loadings.astype(np.float32)
    results.uns["geneae"] = {
        "config": cfg.to_yaml(),
        "metrics": json.dumps(jsonable(evaluation.metrics), indent=2),
        "history": model.history.to_csv(index=False),
        "version": __version__,
    }
    tl.cluster_stability(results, evaluation.comparison)
    # t-SNE and UMAP maps are for the report's figures: without a report, PCA maps only
    # (they take most of an evaluation's time; `geneae report` then draws PCA maps).
    drawn = ("tsne", "umap") if cfg.evaluate.report else ()
    methods = ["pca"] + [m for m in drawn if getattr(cfg.evaluate, m)]
    spaces = {
        "input": evaluation.x,
        "reconstruction": evaluation.x_hat,
        "geneae": out.latent,
        "pca": pca,
    }
    seed = cfg.train.seed
    tl.maps(
        results,
        spaces,
        methods=methods,
        neighbour_spaces=NEIGHBOUR_MAP_SPACES,
        max_cells=cfg.evaluate.max_plot_cells,
        seed=seed,
    )
    tl.histograms(results, raw=evaluation.raw, input=evaluation.x)
    tl.profiles(results, input=evaluation.x, reconstruction=evaluation.x_hat, seed=seed)
    genes = evaluation.genes
    tl.gene_embedding(
        results,
        names=genes.names,
        vectors=genes.vectors,
        source=genes.source,
        variance=genes.variance,
        labels=genes.labels,
        symbols=genes.symbols,
        method="umap" if cfg.evaluate.umap and cfg.evaluate.report else "pca",
        max_genes=cfg.evaluate.max_plot_cells,
        seed=seed,
    )
    return results


def set_metrics(results: ad.AnnData, metrics: dict[str, Any]) -> None:
    """Replace the metrics stored in ``results`` (e.g. once the evaluation time is known)."""
    results.uns["geneae"]["metrics"] = json.dumps(jsonable(metrics), indent=2)


def _take(outputs: Outputs, rows: np.ndarray) -> Outputs:
    """The outputs of ``rows`` (all rows: ``outputs`` itself)."""
    if len(rows) == len(outputs.latent):
        return outputs

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[rows]

    return Outputs(
        obs_names=outputs.obs_names[rows],
        latent=outputs.latent[rows],
        latent_var=pick(outputs.latent_var),
        cluster_probabilities=pick(outputs.cluster_probabilities),
        reconstruction=outputs.reconstruction,  # already only these rows
        reconstruction_rows=None,
    )


def _likelihood_metrics(history: pd.DataFrame) -> dict[str, float]:
    """Held-out terms at the best epoch (lowest validation loss)."""
    if history.empty or "val_loss" not in history:
        return {}
    best = history.loc[history["val_loss"].idxmin()]
    keys = [c for c in history.columns if c.startswith("val_")]
    out = {k: float(best[k]) for k in keys if pd.notna(best[k])}
    out["best_epoch"] = int(best["epoch"])
    return out


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)
