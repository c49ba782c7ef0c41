"""Neighbourhoods of an embedding: the shared kNN graph, kNN label accuracy, trustworthiness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from geneae.evaluate._arrays import Matrix, as_2d, dense, encode, label_array, subsample


def nearest_neighbours(latent: Any, k: int = 15) -> np.ndarray:
    """(n, k) indices of each cell's ``k`` nearest neighbours in ``latent``, itself left out.

    Computed once per embedding and shared by everything that needs a kNN graph
    (:func:`knn_accuracy`, :func:`geneae.evaluate.leiden`). ``k`` is lowered to n - 1.
    """
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    k = min(k, len(z) - 1)
    if k < 1:
        return np.zeros((len(z), 0), dtype=np.int64)
    # kneighbors() without X leaves each point out of its own neighbour list.
    return NearestNeighbors(n_neighbors=k).fit(z).kneighbors(return_distance=False)


def knn_accuracy(
    latent: Any, labels: Any, *, k: int = 15, neighbours: np.ndarray | None = None
) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote for ``labels`` on ``latent``.

    Each cell's label is predicted by the majority of its ``k`` nearest neighbours (itself
    excluded; ties go to the label that sorts first, as in scikit-learn's
    ``KNeighborsClassifier``), and the accuracy is the fraction predicted right.

    Parameters
    ----------
    latent
        Cells x dims embedding.
    labels
        One label per cell (strings or numbers).
    k
        Neighbours that vote.
    neighbours
        Precomputed :func:`nearest_neighbours` of ``latent`` (at least ``k`` columns), to
        share one kNN graph between metrics.

    Returns
    -------
    float
        Accuracy in [0, 1] (NaN with fewer than 2 classes or 3 cells).
    """
    z = np.asarray(latent, dtype=np.float64)
    codes, classes = encode(label_array(labels, len(z)))
    if len(classes) < 2 or len(z) < 3:
        return float("nan")
    nbrs = nearest_neighbours(z, k) if neighbours is None else np.asarray(neighbours)[:, :k]
    votes = np.zeros((len(z), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(z)), nbrs.shape[1]), codes[nbrs].ravel()), 1)
    return float(np.mean(votes.argmax(axis=1) == codes))


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
    (alone,) = trustworthiness_of(
        x, [latent], n_neighbors=n_neighbors, max_cells=max_cells, seed=seed
    )
    return alone


def trustworthiness_of(
    x: Matrix,
    latents: Sequence[Any],
    *,
    n_neighbors: int = 10,
    max_cells: int = 2000,
    seed: int = 0,
) -> list[float]:
    """:func:`trustworthiness` of each embedding in ``latents``, on one subsample of ``x``.

    The neighbours' ranks in ``x`` (a distance matrix and its sort, the costly part) are
    found once for all the embeddings.

    With ``r(i, j)`` the rank of cell j among cell i's neighbours in ``x`` (1 the nearest)
    and ``U_i`` cell i's ``k`` nearest neighbours in the embedding,
    ``T = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_i} max(0, r(i, j) - k)``
    (Venna and Kaski 2001), as :func:`sklearn.manifold.trustworthiness` computes it.
    """
    x = as_2d(x, "x")
    idx = subsample(x.shape[0], max_cells, seed)
    n = len(idx)
    k = min(n_neighbors, (n - 1) // 2)
    if k < 1:
        return [float("nan")] * len(latents)
    distances = pairwise_distances(dense(x[idx]))
    np.fill_diagonal(distances, np.inf)  # a cell is not its own neighbour
    order = np.argsort(distances, axis=1)
    del distances
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, n + 1)[None, :], axis=1)
    scale = 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
    out = []
    for latent in latents:
        z = np.asarray(latent, dtype=np.float64)
        z = z[:, None] if z.ndim == 1 else z
        embedded = nearest_neighbours(z[idx], k)
        beyond = np.take_along_axis(rank, embedded, axis=1) - k
        out.append(float(1.0 - scale * beyond[beyond > 0].sum()))
    return out
