"""Draw every report figure from a run's results with :mod:`geneae.pl`, in memory.

Each figure is drawn by one call to :mod:`geneae.pl` and rendered to PNG bytes once; the
same bytes are embedded in the page and written to ``figures/``. Nothing is computed here
beyond picking slots of the results (maps, histograms and profiles were computed by
:mod:`geneae.tl` when the run was evaluated). A figure whose inputs are missing becomes a
note saying what is missing; a figure that fails to draw becomes a note with the error
(and a logged warning), so one bad piece never costs the whole report. The figures are
kept in a :class:`~geneae.report.figure_set.FigureSet` (importable from here as before).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from geneae import pl
from geneae.report.figure_set import DPI, FigureItem, FigureSet
from geneae.report.formatting import row_nouns
from geneae.report.results import RESULTS, Results

__all__ = ["DPI", "MAP_METHODS", "FigureItem", "FigureSet", "draw_figures", "stability_missing"]

logger = logging.getLogger(__name__)

MAP_METHODS = ("pca", "tsne", "umap")
_CONFIG_SWITCH = {"tsne": "tsne", "umap": "umap"}  # evaluate.<switch> turns a method off


def draw_figures(results: Results) -> FigureSet:
    """Draw every figure the results allow; see the module docstring."""
    figs = FigureSet()
    _metrics(results, figs)
    _training(results, figs)
    _maps(results, figs)
    _reconstruction(results, figs)
    _latent(results, figs)
    _clusters(results, figs)
    _expression(results, figs)
    _gene_embedding(results, figs)
    return figs


def _labels(results: Results) -> tuple[Any, str]:
    """Colouring of the maps: the labels, else geneae's clusters, else nothing."""
    if results.labels is not None:
        return results.labels, "known labels"
    clusters = results.obs("geneae_cluster")
    if clusters is not None:
        return clusters.astype(str), "geneae clusters (no labels given)"
    return None, "nothing (no labels and no clusters in the results)"


def _metrics(results: Results, figs: FigureSet) -> None:
    comparison = results.comparison
    if "geneae" in comparison and "pca" in comparison:
        figs.draw(
            "metrics",
            "metrics_bars",
            lambda: pl.metrics_bars(comparison),
            alt="Bar charts of every metric for geneae and the PCA baseline",
            caption="One panel per metric: blue geneae, grey PCA of the same dimension; the "
            "arrow says whether higher or lower is better and the better bar is outlined.",
        )


def _training(results: Results, figs: FigureSet) -> None:
    if results.history is None:
        figs.note("training", results.missing.get("history", "No training history."))
        return
    history = results.history
    figs.draw(
        "training",
        "training_curves",
        lambda: pl.training_curves(history),
        alt="Training and validation curves per epoch",
        caption="Solid: training, dashed: validation, per epoch. Validation flattening while "
        "training keeps falling means over-fitting; the dotted line marks the best epoch.",
    )


def _map_pairs(d: Any) -> list[tuple[str, str, str, str, str, str]]:
    """(left space, right space, tag, left title, right title, how to read it)."""
    return [
        (
            "input",
            "reconstruction",
            "reconstruction",
            "original data",
            "geneae reconstruction",
            "the reconstruction keeps the structure of the data if both maps show the same groups",
        ),
        (
            "input",
            "geneae",
            "latent",
            "original data",
            f"geneae latent space ({d} dims)",
            "groups that separate on the right but not on the left were pulled apart by the model",
        ),
        (
            "pca",
            "geneae",
            "baseline",
            f"PCA baseline ({d} components)",
            f"geneae latent ({d} dims)",
            "the better representation shows the known groups as tighter, better-separated islands",
        ),
    ]


def _maps(results: Results, figs: FigureSet) -> None:
    adata = results.adata
    stored = results.stored("maps")
    keys = {str(k) for k in adata.obsm if str(k).startswith("map_")}
    if stored is None and not keys:
        figs.note(
            "maps",
            f"{RESULTS} has no 2-D maps (no uns['geneae']['maps'], no obsm['map_*']): they are "
            "computed by geneae.tl.maps when a run is evaluated.",
        )
        return
    computed = [str(m) for m in np.atleast_1d((stored or {}).get("methods", []))]
    methods = [
        m for m in MAP_METHODS if m in computed or any(k.startswith(f"map_{m}_") for k in keys)
    ]
    off = [m for m in MAP_METHODS if m not in methods and m in _CONFIG_SWITCH]
    turned_off = [m for m in off if results.evaluate_option(_CONFIG_SWITCH[m], True) is False]
    if turned_off:
        names = " and ".join(pl.METHOD_NAMES[m] for m in turned_off)
        figs.note("maps", f"{names} maps are turned off in the configuration.")
    not_run = [m for m in off if m not in turned_off]
    if not_run:
        names = " and ".join(pl.METHOD_NAMES[m] for m in not_run)
        figs.note("maps", f"{names} maps were not computed for this run.")
    labels, coloured_by = _labels(results)
    latent = results.obsm("X_geneae")
    d = latent.shape[1] if latent is not None and latent.ndim == 2 else "?"
    n = adata.n_obs
    plotted = results.obs("plotted")
    m = int(np.asarray(plotted, dtype=bool).sum()) if plotted is not None else n
    _, rows, _ = row_nouns(results.section("data"))
    cells = f"all {n:,} {rows}" if m == n else f"{m:,} of the {n:,} {rows} (a seeded subsample)"
    # Spaces given t-SNE / UMAP maps (older results do not record them: all spaces).
    neighbour = (stored or {}).get("neighbour_spaces")
    neighbour = None if neighbour is None else {str(s) for s in np.atleast_1d(neighbour)}
    absent: list[str] = []
    left_to_pca: set[str] = set()
    for method in methods:
        name = pl.METHOD_NAMES[method]
        for left, right, tag, t_left, t_right, reading in _map_pairs(d):
            if method != "pca" and neighbour is not None and not {left, right} <= neighbour:
                left_to_pca |= {
                    t for space, t in ((left, t_left), (right, t_right)) if space not in neighbour
                }
                continue
            a, b = f"map_{method}_{left}", f"map_{method}_{right}"
            lacking = [k for k in (a, b) if k not in keys]
            if lacking:
                absent += [k for k in lacking if k not in absent]
                continue
            xy_a, xy_b = results.obsm(a), results.obsm(b)
            figs.draw(
                "maps",
                f"map_{method}_{tag}",
                lambda xa=xy_a, xb=xy_b, me=method, tl=t_left, tr=t_right: pl.map_pair(
                    xa, xb, labels, method=me, titles=(tl, tr), seed=results.seed
                ),
                alt=f"{name} maps of the {t_left} and the {t_right}, coloured by {coloured_by}",
                caption=f"{name} of {cells}, coloured by {coloured_by}: {reading}."
                + (
                    " Distances between far-apart groups mean little here."
                    if method != "pca"
                    else ""
                ),
                heading=f"{name} maps",
            )
    if left_to_pca:
        drawn = " and ".join(pl.METHOD_NAMES[m] for m in methods if m != "pca")
        figs.note(
            "maps",
            f"{drawn} draws the spaces compared; the {' and the '.join(sorted(left_to_pca))} "
            "are drawn in the PCA maps only.",
        )
    if absent:
        figs.note(
            "maps",
            f"{RESULTS} lacks {', '.join(f'obsm[{k!r}]' for k in absent)}: the maps using them "
            "are skipped.",
        )


def _reconstruction(results: Results, figs: FigureSet) -> None:
    profiles = results.stored("profiles")
    if profiles is None:
        figs.note(
            "reconstruction",
            f"{RESULTS} has no uns['geneae']['profiles'] (observed and reconstructed values of "
            "a few samples, computed by geneae.tl.profiles).",
        )
        return
    n_cells = len(np.atleast_1d(profiles.get("cells", [])))
    n_genes = len(np.atleast_1d(profiles.get("genes", [])))
    figs.draw(
        "reconstruction",
        "reconstruction_profiles",
        lambda: pl.reconstruction_profiles(profiles),
        alt=f"Observed and reconstructed values of {n_cells} samples over the {n_genes} most "
        "variable genes",
        caption="Grey bars: observed values of one sample (model input space); blue line: "
        "geneae's reconstruction. The closer the line follows the bars, the better.",
    )


def _latent(results: Results, figs: FigureSet) -> None:
    _, rows, _ = row_nouns(results.section("data"))
    usage = dict(results.section("latent_usage"))
    source = "the metrics"
    if "variance" not in usage:
        latent = results.obsm("X_geneae")
        if latent is None:
            figs.note(
                "latent", f"No latent usage in the metrics and no obsm['X_geneae'] in {RESULTS}."
            )
            return
        usage = {"variance": list(np.asarray(latent, dtype=np.float64).var(axis=0))}
        source = f"obsm['X_geneae'] of the {results.adata.n_obs:,} {rows}"
    has_kl = usage.get("kl") is not None
    figs.draw(
        "latent",
        "latent_usage",
        lambda: pl.latent_variance(usage),
        alt="Variance" + (" and KL divergence" if has_kl else "") + " per latent dimension",
        caption=f"Per latent dimension (from {source}): variance of the codes across {rows}"
        + (
            " (blue, left axis) and KL to the prior (red, right axis); dimensions near zero on "
            "both are unused (posterior collapse)."
            if has_kl
            else "; pale bars are inactive dimensions. No KL values were given (deterministic "
            "models have none)."
        ),
    )


def _clusters(results: Results, figs: FigureSet) -> None:
    one, rows, _ = row_nouns(results.section("data"))
    labels = results.labels
    ours, theirs = results.obs("geneae_cluster"), results.obs("pca_cluster")
    clustering = results.comparison.get("clustering")
    if isinstance(clustering, dict) and clustering.get("finer_than_phase"):
        figs.note("clusters", f"Note: {clustering['finer_than_phase']}")
    if ours is None:
        figs.note("clusters", f"{RESULTS} has no obs['geneae_cluster'].")
    if labels is None:
        figs.note(
            "clusters",
            "No labels: a confusion matrix against known groups is not "
            "possible. Shown instead: how geneae's clusters overlap PCA's.",
        )
        if ours is not None and theirs is not None:
            figs.draw(
                "clusters",
                "clusters_geneae_vs_pca",
                lambda: pl.confusion(
                    theirs.astype(str),
                    ours.astype(str),
                    row_title="PCA cluster",
                    col_title="geneae cluster",
                    title="geneae vs PCA clusters",
                ),
                alt="Cross-tabulation of geneae clusters against PCA clusters",
                caption="Rows: PCA-baseline clusters; columns: geneae clusters (matched order); "
                "colour: fraction of the row. A diagonal means both found the same groups.",
            )
    else:
        for key, series, who in (("geneae", ours, "geneae"), ("pca", theirs, "PCA baseline")):
            if series is None:
                continue
            figs.draw(
                "clusters",
                f"confusion_{key}",
                lambda s=series, w=who: pl.confusion(labels, s.astype(str), title=f"{w} clusters"),
                alt=f"Confusion matrix of {who} clusters against the known labels",
                caption=f"Rows: known labels; columns: {who} clusters, matched to labels "
                f"(Hungarian) so that a perfect clustering is a diagonal; numbers are {rows}, "
                "colour the fraction of the label.",
                half=True,
            )
    _stability(results, figs)
    probs = results.obsm("geneae_responsibilities")
    if probs is None:
        figs.note(
            "clusters",
            "No mixture responsibilities (obsm['geneae_responsibilities']): "
            "only GMVAE runs have them.",
        )
        return
    figs.draw(
        "clusters",
        "responsibilities",
        lambda: pl.responsibilities(probs, labels),
        alt=f"Heatmap of GMVAE mixture-component probabilities per {one}",
        caption=f"q(y|x) of each {one} (columns, grouped by "
        + ("label" if labels is not None else "most likely component")
        + ") for each mixture component (rows); one dark row per group means the mixture "
        "found that group.",
    )


def _stability(results: Results, figs: FigureSet) -> None:
    slot = results.stored("stability")
    ours = None if slot is None else slot.get("geneae")
    if not isinstance(ours, dict):
        figs.note("clusters", stability_missing(results))
        return
    one, rows, _ = row_nouns(results.section("data"))
    method = str(ours.get("method", "")) or "the run's method"
    repeats, fraction = slot.get("repeats", "?"), slot.get("fraction")
    share = f"{float(fraction):.0%}" if fraction is not None else "a share"
    figs.draw(
        "clusters",
        "cluster_stability",
        lambda: pl.cluster_stability(ours, title=f"stability of the geneae clusters ({method})"),
        alt="Stability of each geneae cluster and the cluster x cluster co-clustering matrix",
        caption=f"The clustering ({method}) was repeated {repeats} times on random {share} "
        f"subsets of the {rows}. Left: how often two {rows} of a cluster were clustered "
        f"together (1: never split); right: how often a {one} of the row cluster and one of "
        "the column cluster were — a dark square off the diagonal means two clusters were "
        "often merged. "
        "Low values mark clusters that clustering again may split or merge.",
    )


def stability_missing(results: Results) -> str:
    """Why the results have no stability of geneae's clusters."""
    clustering = results.comparison.get("clustering")
    method = clustering.get("geneae") if isinstance(clustering, dict) else None
    if method == "gmvae":
        return (
            "No cluster stability: the geneae clusters are the GMVAE's own mixture "
            "assignment, not a clustering that can be repeated."
        )
    if results.evaluate_option("stability_repeats", None) == 0:
        return "Cluster stability is turned off in the configuration (stability_repeats: 0)."
    return (
        f"{RESULTS} has no uns['geneae']['stability'] (the co-clustering of repeated "
        "clusterings, computed when a run is evaluated)."
    )


def _expression(results: Results, figs: FigureSet) -> None:
    histograms = results.stored("histograms")
    if histograms is None or not isinstance(histograms.get("input"), dict):
        figs.note(
            "expression",
            f"{RESULTS} has no uns['geneae']['histograms'] with the preprocessed values "
            "(computed by geneae.tl.histograms).",
        )
        return
    has_raw = isinstance(histograms.get("raw"), dict)
    if not has_raw:
        figs.note(
            "expression",
            f"{RESULTS} has no histogram of the raw values (uns['geneae']['histograms']['raw']): "
            "only the preprocessed values are shown.",
        )
    figs.draw(
        "expression",
        "expression_histograms",
        lambda: pl.expression_histograms(histograms),
        alt="Histograms of expression values before and after preprocessing"
        if has_raw
        else "Histogram of the preprocessed expression values",
        caption="Distribution of every matrix entry (zeros included), counts on a log axis: "
        "preprocessing should tame the long tail of raw counts.",
    )


def _gene_embedding(results: Results, figs: FigureSet) -> None:
    slot = results.stored("genes")
    if slot is None or "map" not in slot:
        if slot is not None:
            figs.note("gene_embedding", "Fewer than 3 genes: no gene map.")
        return
    names = np.atleast_1d(slot["names"]).astype(str)
    plotted = np.asarray(slot.get("plotted", np.arange(len(names))), dtype=np.int64)
    labels = slot.get("labels")
    labels = None if labels is None else np.atleast_1d(labels).astype(str)[plotted]
    variance = np.asarray(slot.get("variance", np.full(len(names), np.nan)), dtype=float)
    top = [str(g) for g in np.atleast_1d(slot.get("top", []))]
    method = str(slot.get("map_method", "pca"))
    name = pl.METHOD_NAMES.get(method, method)
    coloured = "known gene groups" if labels is not None else "variance of log expression"
    shown = (
        f"all {len(names):,}"
        if len(plotted) == len(names)
        else f"{len(plotted):,} of {len(names):,}"
    )
    figs.draw(
        "gene_embedding",
        "gene_map",
        lambda: pl.gene_map(
            slot["map"],
            names[plotted],
            labels=labels,
            values=variance[plotted],
            highlight=top,
            title=f"{name} of the gene embedding (cosine)",
        ),
        alt=f"{name} map of the genes, coloured by {coloured}",
        caption=f"{name} of {shown} genes' unit-length vectors (so distances follow cosine "
        f"similarity), coloured by {coloured}; circled and named: the most variable genes, "
        "whose neighbours the table lists. Co-expressed genes form groups.",
    )
