"""The PCA baseline: the same metrics for the autoencoder and a PCA of the same dimension.

PCA is the honest yardstick for an autoencoder: a linear model with a closed-form optimum.
``compare_with_pca`` fits it on the same preprocessed matrix with as many components as the
latent space has dimensions, and measures both sides with identical code.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import PCA

from geneae.errors import InputError
from geneae.evaluate._arrays import Matrix, as_2d, as_labels, check_rows
from geneae.evaluate.clustering import ClusterMethod, cluster, clustering_scores, leiden
from geneae.evaluate.neighbourhood import knn_accuracy, trustworthiness
from geneae.evaluate.reconstruction import reconstruction_errors

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
    return_arrays: bool = False,
) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
    """Measure the autoencoder and a same-dimension PCA on the same data with the same metrics.

    Parameters
    ----------
    x
        Cells x genes: the preprocessed model input.
    latent
        Cells x d: the autoencoder's latent means.
    x_hat
        Cells x genes: the autoencoder's reconstruction, in the space of ``x``.
    labels
        Known groups per cell, or None (then clustering is scored without labels).
    seed
        Seed of PCA, clustering, cross-validation and subsampling.
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
    return_arrays
        Also return the PCA embedding, its reconstruction and both cluster assignments
        (kept out of ``comparison`` so that it stays small enough for ``metrics.json``).

    Returns
    -------
    comparison
        ``{"n_components": d, "n_cells": n, "supervised": bool, "clustering": {...},
        "geneae": {metric: value}, "pca": {metric: value}}`` with identical metric keys on
        both sides: reconstruction errors, clustering scores, ``knn_accuracy`` (with labels)
        and ``trustworthiness``. ``clustering`` records the method of each side and the
        number of clusters used and where it came from.
    arrays
        Only with ``return_arrays=True``: ``pca_embedding`` (cells x d), ``pca_x_hat``
        (cells x genes) and ``clusters`` = ``{"geneae": codes, "pca": codes}``.
    """
    x = as_2d(x, "x")
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"latent must be cells x dims, got shape {z.shape}.")
    check_rows(x.shape[0], z, "latent")
    lab = None if labels is None else as_labels(labels, x.shape[0])
    d = z.shape[1]
    pca_z, _, pca_hat = pca_embedding(x, d, seed=seed)

    k, source = _choose_n_clusters(z, lab, cluster_method, n_clusters, clusters, seed)
    pca_method: ClusterMethod = "kmeans" if cluster_method == "gmvae" else cluster_method
    geneae_clusters = cluster(z, method=cluster_method, n_clusters=k, seed=seed, clusters=clusters)
    pca_clusters = cluster(pca_z, method=pca_method, n_clusters=k, seed=seed)

    sides = {}
    for name, emb, rec, assigned in (
        ("geneae", z, x_hat, geneae_clusters),
        ("pca", pca_z, pca_hat, pca_clusters),
    ):
        scores: dict[str, float] = dict(reconstruction_errors(x, rec))
        scores.update(clustering_scores(emb, lab, clusters=assigned, seed=seed))
        if lab is not None:
            scores["knn_accuracy"] = knn_accuracy(emb, lab, seed=seed)
        scores["trustworthiness"] = trustworthiness(x, emb, max_cells=max_cells_trust, seed=seed)
        sides[name] = scores

    comparison: dict[str, Any] = {
        "n_components": int(d),
        "n_cells": int(x.shape[0]),
        "supervised": lab is not None,
        "clustering": {
            "geneae": cluster_method,
            "pca": pca_method,
            "n_clusters": k,
            "n_clusters_from": source,
        },
        "geneae": sides["geneae"],
        "pca": sides["pca"],
    }
    if not return_arrays:
        return comparison
    arrays: dict[str, Any] = {
        "pca_embedding": pca_z,
        "pca_x_hat": pca_hat,
        "clusters": {"geneae": geneae_clusters, "pca": pca_clusters},
    }
    return comparison, arrays


def _choose_n_clusters(
    z: np.ndarray,
    labels: np.ndarray | None,
    method: str,
    n_clusters: int | None,
    clusters: Any,
    seed: int,
) -> tuple[int | None, str]:
    """The number of clusters both sides get, and where it came from."""
    if n_clusters is not None:
        return n_clusters, "given"
    if method == "gmvae" and clusters is not None:
        return int(len(np.unique(as_labels(clusters, len(z), "clusters")))), "gmvae clusters"
    if labels is not None:
        return int(len(np.unique(labels))), "labels"
    if method == "leiden":
        return None, "leiden resolution 1"
    k = int(leiden(z, seed=seed).max()) + 1
    logger.info("no labels and no n_clusters: using %d clusters (Leiden on the latent)", k)
    return max(k, 2), "leiden on geneae latent"
