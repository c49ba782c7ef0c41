"""The report's comparison sections: the metrics table beside PCA and cluster stability.

Plain values for the template (see :mod:`geneae.report.sections`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geneae.evaluate import METRIC_DIRECTIONS
from geneae.pl import METRIC_LABELS
from geneae.report.formatting import fmt, formatted_rows, pretty_key, row_nouns, winner
from geneae.report.results import Results

__all__ = ["CLUSTER_COUNT_SOURCES", "clusters_body", "metrics_body"]

# Where the number of clusters came from (compare_with_pca's "n_clusters_from").
CLUSTER_COUNT_SOURCES = {
    "given": "set in the configuration",
    "labels": "the number of label classes",
    "gmvae clusters": "the GMVAE's mixture components in use",
    "leiden on geneae latent": "Leiden at resolution 1 on the geneae latent space",
    "leiden resolution 1": "Leiden at resolution 1, on each side separately",
}


def metrics_body(results: Results) -> dict[str, Any]:
    """Every metric for geneae and PCA, the better one marked, with notes on how they were got."""
    comp = results.comparison
    ours, theirs = comp.get("geneae"), comp.get("pca")
    if not isinstance(ours, dict):
        return {"note": results.missing.get("metrics", "The metrics have no 'comparison'.")}
    theirs = theirs if isinstance(theirs, dict) else {}
    names = [m for m in METRIC_DIRECTIONS if m in ours or m in theirs]
    names += [m for m in ours if m not in names]
    rows = []
    for m in names:
        better = winner(m, ours.get(m), theirs.get(m))
        rows.append(
            {
                "name": METRIC_LABELS.get(m, m),
                "direction": {"higher": "↑ higher", "lower": "↓ lower"}.get(
                    METRIC_DIRECTIONS.get(m, ""), ""
                ),
                "cells": [
                    {"text": fmt(values.get(m)), "better": better == who}
                    for who, values in (("geneae", ours), ("pca", theirs))
                ],
            }
        )
    notes: list[tuple[str, bool]] = []  # (text, shown as a note)
    if not theirs:
        notes.append(("No PCA baseline in the metrics (evaluate.pca_baseline off?).", True))
    clustering = comp.get("clustering")
    if isinstance(clustering, dict):
        source = CLUSTER_COUNT_SOURCES.get(str(clustering.get("n_clusters_from")), "source unknown")
        notes.append(
            (
                f"Clusters: geneae by {clustering.get('geneae', '?')}, PCA by "
                f"{clustering.get('pca', '?')}; number of clusters "
                f"{fmt(clustering.get('n_clusters'))} ({source}).",
                False,
            )
        )
    if comp.get("supervised") is False:
        notes.append(
            (
                "No labels: clustering scores are unsupervised only — silhouette, "
                "Calinski-Harabasz and Davies-Bouldin describe each method's own clusters in "
                "its own space, so they are not a like-for-like accuracy comparison.",
                True,
            )
        )
    else:
        notes.append(
            (
                "Silhouette, Calinski-Harabasz and Davies-Bouldin measure how well each latent "
                "space separates the known labels; ARI, NMI and accuracy compare the clusters "
                "with the labels; reconstruction metrics are in the preprocessed input space.",
                False,
            )
        )
    like = results.section("likelihood")
    return {
        "rows": rows,
        "pca_heading": f"PCA ({comp.get('n_components', '?')} components)",
        "notes": notes,
        "likelihood": formatted_rows((pretty_key(k), v) for k, v in like.items()),
    }


def clusters_body(results: Results) -> dict[str, Any]:
    """One sentence on how reproducible each side's clusters are (``stability`` slot)."""
    slot = results.stored("stability")
    sides = {}
    for side in ("geneae", "pca"):
        one = None if slot is None else slot.get(side)
        if isinstance(one, dict) and "mean" in one:
            sides[side] = one
    if "geneae" not in sides:
        return {}
    ours = sides["geneae"]
    share = slot.get("fraction")
    share = f"{float(share):.0%}" if isinstance(share, (int, float)) else "a share"
    one, many, _ = row_nouns(results.section("data"))
    text = (
        f"Stability (no labels needed): the clustering was repeated {fmt(slot.get('repeats'))} "
        f"times on random {share} subsets of the {many}; on average a {one} stayed with the "
        f"other {many} of its geneae cluster in a fraction {fmt(float(ours['mean']))} of the "
        "repeats"
    )
    if "pca" in sides:
        text += f" (PCA baseline: {fmt(float(sides['pca']['mean']))})"
    ari = np.asarray(ours.get("ari", []), dtype=np.float64)
    ari = ari[np.isfinite(ari)]
    if ari.size:
        text += (
            ", and the repeats matched the written geneae clusters with ARI "
            f"{fmt(float(ari.mean()))} on average (lowest {fmt(float(ari.min()))})"
        )
    per_cluster = np.asarray(ours.get("per_cluster", []), dtype=np.float64)
    names = [str(c) for c in np.atleast_1d(ours.get("clusters", []))]
    if per_cluster.size and len(names) == per_cluster.size and np.isfinite(per_cluster).any():
        worst = int(np.nanargmin(per_cluster))
        text += f". Least stable geneae cluster: {names[worst]} ({fmt(float(per_cluster[worst]))})"
    text += (
        ". This measures re-clustering this latent space; retraining the model with another "
        f"seed moves the space itself and can move more {many}."
    )
    return {"stability": text}
