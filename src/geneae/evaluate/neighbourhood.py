"""Neighbourhood quality of an embedding: kNN classification accuracy and trustworthiness."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from geneae.evaluate._arrays import Matrix, as_2d, as_labels, dense, encode, subsample


def knn_accuracy(latent: Any, labels: Any, *, k: int = 15, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a k-nearest-neighbour classifier of ``labels`` on ``latent``.

    Parameters
    ----------
    latent
        Cells x dims embedding.
    labels
        One label per cell (strings or numbers).
    k
        Neighbours of the classifier (lowered when a training fold is smaller).
    folds
        Stratified folds, shuffled with ``seed``. When the smallest class has fewer members
        than ``folds``, the number of folds drops to its size; a class with a single member
        makes stratification impossible and plain shuffled folds are used.
    seed
        Seed of the fold assignment.

    Returns
    -------
    float
        Mean accuracy over the folds (NaN with fewer than 2 classes).
    """
    z = np.asarray(latent, dtype=np.float64)
    codes = encode(as_labels(labels, len(z)))[0]
    counts = np.bincount(codes)
    if len(counts) < 2 or len(z) < 4:
        return float("nan")
    n_splits = int(min(folds, counts.min())) if counts.min() >= 2 else folds
    n_splits = max(2, min(n_splits, len(z)))
    if counts.min() >= 2:
        splitter: KFold | StratifiedKFold = StratifiedKFold(
            n_splits=n_splits, shuffle=True, random_state=seed
        )
    else:
        splitter = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    smallest_train = len(z) - int(np.ceil(len(z) / n_splits))
    clf = KNeighborsClassifier(n_neighbors=max(1, min(k, smallest_train)))
    return float(cross_val_score(clf, z, codes, cv=splitter).mean())


def trustworthiness(
    x: Matrix, latent: Any, *, n_neighbors: int = 10, max_cells: int = 2000, seed: int = 0
) -> float:
    """How well ``latent`` keeps the nearest neighbours of ``x`` (scikit-learn's definition).

    Parameters
    ----------
    x
        Cells x genes, dense or sparse: the space the neighbourhoods come from.
    latent
        Cells x dims embedding of the same cells.
    n_neighbors
        Neighbourhood size (lowered to stay below half the cells, as scikit-learn requires).
    max_cells
        The measure is quadratic in cells; a seeded subsample of this many cells is used.
    seed
        Seed of the subsample.

    Returns
    -------
    float
        1.0 when no embedded neighbour is a stranger in the original space; lower is worse.
    """
    x = as_2d(x, "x")
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    idx = subsample(x.shape[0], max_cells, seed)
    n = len(idx)
    k = min(n_neighbors, (n - 1) // 2)
    if k < 1:
        return float("nan")
    return float(sk_trustworthiness(dense(x[idx]), z[idx], n_neighbors=k))
