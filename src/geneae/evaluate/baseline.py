"""The PCA baseline: the same metrics for the autoencoder and a PCA of the same dimension.

PCA is the honest yardstick for an autoencoder: a linear model with a closed-form optimum.
``compare_with_pca`` fits it on the same preprocessed matrix with as many components as the
latent space has dimensions, and measures both sides with identical code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA

from geneae.errors import InputError
from geneae.evaluate._arrays import Matrix, as_2d, check_rows, label_array
from geneae.evaluate.clustering import ClusterMethod, cluster, clustering_scores
from geneae.evaluate.leiden_clustering import leiden
from geneae.evaluate.neighbourhood import knn_accuracy, nearest_neighbours, trustworthiness_of
from geneae.evaluate.reconstruction import reconstruction_errors_of
from geneae.evaluate.stability import FRACTION, REPEATS, Stability, cluster_stability
from geneae.labels import labelled_rows

logger = logging.getLogger(__name__)

#: Whether a larger or a smaller value of each metric is better (the report marks the winner).
METRIC_DIRECTIONS: dict[str, Literal["higher", "lower"]] = {
    "mse": "lower",
    "masked_mse": "lower",
    "pearson_gene": "higher",
    "pearson_cell": "higher",
    "ari": "higher",
    "nmi": "higher",
    "acc": "higher",
    "silhouette": "higher",
    "calinski_harabasz": "higher",
    "davies_bouldin": "lower",
    "knn_accuracy": "higher",
    "trustworthiness": "higher",
    "cluster_stability": "higher",
}


def pca_embedding(
    x: Matrix, n_components: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of ``x`` with ``n_components`` components.

    Parameters
    ----------
    x
        Cells x genes, dense or sparse. Sparse input is centred implicitly (never densified).
    n_components
        Number of principal components.
    seed
        Seed of the randomised / ARPACK solvers (so the result is reproducible).

    Returns
    -------
    scores
        Cells x components: the PCA embedding.
    components
        Components x genes: the principal axes (unit vectors).
    x_hat
        Cells x genes (dense): the rank-``n_components`` reconstruction, mean added back.
    """
    x = as_2d(x, "x")
    n, g = x.shape
    if not 1 <= n_components <= min(n, g):
        raise InputError(
            f"PCA with {n_components} components needs at least that many cells and genes; "
            f"the data has {n} cells and {g} genes."
        )
    if sp.issparse(x):
        # ARPACK centres sparse input implicitly and is fast (0.8 s on 8,617 x 2,000 cells;
        # "covariance_eigh" took 26 s there); it needs k < min(n, g), the covariance solver
        # covers the full-rank corner case.
        solver = "arpack" if n_components < min(n, g) else "covariance_eigh"
        pca = PCA(n_components=n_components, svd_solver=solver, random_state=seed)
        x = x.astype(np.float64)
    else:
        pca = PCA(n_components=n_components, random_state=seed)
    scores = pca.fit_transform(x)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x_hat = (scores @ pca.components_ + pca.mean_).astype(dtype, copy=False)
    return scores, pca.components_, x_hat


@dataclass
class Comparison:
    """The autoencoder and its PCA baseline, measured alike (see :func:`compare_with_pca`).

    Attributes
    ----------
    metrics
        ``{"n_components": d, "n_cells": n, "supervised": bool, "clustering": {...},
        "geneae": {metric: value}, "pca": {metric: value}}``, identical metric keys on both
        sides; JSON-ready (what a run's metrics.json holds under ``"comparison"``).
    pca_embedding
        Cells x d: the PCA scores.
    pca_reconstruction
        Cells x genes: PCA's rank-d reconstruction of ``x``.
    clusters
        ``{"geneae": codes, "pca": codes}``: each side's cluster assignment.
    stability
        Each side's :class:`~geneae.evaluate.stability.Stability` of those clusters, for the
        sides whose method can be repeated (not a GMVAE's own clusters); empty when off.
    """

    metrics: dict[str, Any]
    pca_embedding: np.ndarray
    pca_reconstruction: np.ndarray
    clusters: dict[str, np.ndarray]
    stability: dict[str, Stability] = field(default_factory=dict)


def compare_with_pca(
    x: Matrix,
    latent: Any,
    x_hat: Matrix,
    labels: Any = None,
    *,
    seed: int = 0,
    cluster_method: ClusterMethod = "kmeans",
    n_clusters: int | None = None,
    clusters: Any = None,
    max_cells_trust: int = 2000,
    n_neighbors: int = 15,
    stability_repeats: int = REPEATS,
    stability_fraction: float = FRACTION,
) -> Comparison:
    """Measure the autoencoder and a same-dimension PCA on the same data with the same metrics.

    Each side's kNN graph is built once and shared by Leiden and the kNN accuracy.

    Parameters
    ----------
    x
        Cells x genes: the preprocessed model input.
    latent
        Cells x d: the autoencoder's latent means.
    x_hat
        Cells x genes: the autoencoder's reconstruction, in the space of ``x``.
    labels
        Known groups per cell, or None (then clustering is scored without labels). Cells
        whose label is missing (None, NaN, blank) are clustered with the others and left out
        of the label metrics (ARI, NMI, accuracy, the labels' separation, kNN accuracy);
        ``n_labelled`` counts the cells scored.
    seed
        Seed of PCA, clustering and subsampling.
    cluster_method
        How the autoencoder's latent is clustered (see :func:`geneae.evaluate.cluster`).
        PCA is clustered the same way, except with ``"gmvae"`` (PCA has no mixture), where
        it gets KMeans with the same number of clusters.
    n_clusters
        Number of clusters. None: the number of label classes; without labels, the number
        of Leiden clusters (resolution 1) of the autoencoder's latent for KMeans, and each
        side's own Leiden count for Leiden.
    clusters
        The autoencoder's precomputed clusters (required for ``"gmvae"``).
    max_cells_trust
        Cells subsampled for the (quadratic) trustworthiness.
    n_neighbors
        Neighbours in each side's kNN graph (Leiden and kNN accuracy).
    stability_repeats, stability_fraction
        Each side's clustering method is repeated this many times on this share of the
        cells to measure how reproducible its clusters are (metric ``cluster_stability``,
        :func:`geneae.evaluate.cluster_stability`; the repeats reuse the side's kNN graph).
        0 repeats: not measured. A GMVAE's own clusters are not measured.
    """
    x = as_2d(x, "x")
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"latent must be cells x dims, got shape {z.shape}.")
    check_rows(x.shape[0], z, "latent")
    lab, labelled = (None, None) if labels is None else labelled_rows(labels, x.shape[0])
    if labelled is not None and not labelled.any():
        lab = labelled = None  # nothing to score against: as without labels
    scored = None if labelled is None or labelled.all() else labelled
    d = z.shape[1]
    pca_z, _, pca_hat = pca_embedding(x, d, seed=seed)
    graphs = {
        "geneae": nearest_neighbours(z, n_neighbors),
        "pca": nearest_neighbours(pca_z, n_neighbors),
    }

    k, source = _choose_n_clusters(
        z,
        None if lab is None else lab[labelled],
        cluster_method,
        n_clusters,
        clusters,
        seed,
        graphs["geneae"],
    )
    pca_method: ClusterMethod = "kmeans" if cluster_method == "gmvae" else cluster_method
    assigned = {
        "geneae": cluster(
            z,
            method=cluster_method,
            n_clusters=k,
            seed=seed,
            clusters=clusters,
            neighbours=graphs["geneae"],
        ),
        "pca": cluster(pca_z, method=pca_method, n_clusters=k, seed=seed, neighbours=graphs["pca"]),
    }
    methods = {"geneae": cluster_method, "pca": pca_method}
    sides = {}
    stability: dict[str, Stability] = {}
    seconds: dict[str, float] = {}
    # What both sides measure against x is found in one pass over it.
    errors = [scores for scores, _ in reconstruction_errors_of(x, [x_hat, pca_hat])]
    trust = trustworthiness_of(x, [z, pca_z], max_cells=max_cells_trust, seed=seed)
    for name, emb, reconstruction, trusted in (
        ("geneae", z, errors[0], trust[0]),
        ("pca", pca_z, errors[1], trust[1]),
    ):
        scores: dict[str, float] = dict(reconstruction)
        if scored is None:
            scores.update(clustering_scores(emb, lab, clusters=assigned[name], seed=seed))
            if lab is not None:
                scores["knn_accuracy"] = knn_accuracy(emb, lab, neighbours=graphs[name])
        else:  # the labelled cells alone, their clusters as clustered among all cells
            assert lab is not None
            subset = emb[scored], lab[scored]
            clustered = np.asarray(assigned[name])[scored]
            scores.update(clustering_scores(*subset, clusters=clustered, seed=seed))
            scores["n_clusters"] = int(len(np.unique(assigned[name])))
            scores["knn_accuracy"] = knn_accuracy(*subset, k=n_neighbors)
        scores["trustworthiness"] = trusted
        if stability_repeats > 0 and methods[name] != "gmvae" and len(emb) >= 2:
            stability[name], seconds[name] = cluster_stability(
                emb,
                assigned[name],
                method=methods[name],
                n_clusters=k,
                seed=seed,
                neighbours=graphs[name],
                repeats=stability_repeats,
                fraction=stability_fraction,
            )
            scores["cluster_stability"] = stability[name].mean
        sides[name] = scores

    metrics: dict[str, Any] = {
        "n_components": int(d),
        "n_cells": int(x.shape[0]),
        "supervised": lab is not None,
        "n_labelled": 0 if labelled is None else int(labelled.sum()),
        "clustering": {
            "geneae": cluster_method,
            "pca": pca_method,
            "n_clusters": k,
            "n_clusters_from": source,
        },
        "stability": {
            "repeats": int(stability_repeats),
            "fraction": float(stability_fraction),
            "seconds": seconds,
        },
        "geneae": sides["geneae"],
        "pca": sides["pca"],
    }
    return Comparison(metrics, pca_z, pca_hat, assigned, stability)


def _choose_n_clusters(
    z: np.ndarray,
    labels: np.ndarray | None,
    method: str,
    n_clusters: int | None,
    clusters: Any,
    seed: int,
    neighbours: np.ndarray,
) -> tuple[int | None, str]:
    """The number of clusters both sides get, and where it came from."""
    if n_clusters is not None:
        return n_clusters, "given"
    if method == "gmvae" and clusters is not None:
        return int(len(np.unique(label_array(clusters, len(z), "clusters")))), "gmvae clusters"
    if labels is not None:
        return int(len(np.unique(labels))), "labels"
    if method == "leiden":
        return None, "leiden resolution 1"
    k = int(leiden(z, seed=seed, neighbours=neighbours).max()) + 1
    logger.info("no labels and no n_clusters: using %d clusters (Leiden on the latent)", k)
    return max(k, 2), "leiden on geneae latent"
