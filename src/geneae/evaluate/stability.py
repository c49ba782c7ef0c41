"""How reproducible a clustering is, without labels: co-clustering over repeated clusterings.

The clustering method of a run is repeated ``R`` times, each time on a seeded random
``fraction`` of the cells and with its own seed (:func:`repeat_clustering`). Two cells of the
same written cluster that are clustered together in every repeat in which both were drawn
are perfectly stable; :func:`co_clustering` counts, over all repeats, how often each pair of
co-drawn cells landed in the same repeat cluster, and summarises the counts by the written
clusters without forming the n x n co-association matrix (memory and time linear in cells):

- per cell: the fraction of (repeat, other member of its written cluster) pairs, both
  drawn, in which the two were clustered together;
- a cluster x cluster matrix: for clusters a and b, the fraction of co-drawn pairs (one
  cell of a, another of b) clustered together in a repeat. The diagonal is each cluster's
  stability (1: never split), an off-diagonal entry how often two clusters were merged.

Both are "pooled": every (repeat, pair) in which the pair was drawn counts once.

Each repeat draws two thirds of the cells by default: on the bundled PBMC the per-cell
stability then points at the cells that change cluster when the model is retrained with
another seed somewhat better than with 90% subsets (docs/results.md, "Cluster stability").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score

from geneae.errors import InputError
from geneae.evaluate._arrays import check_rows, encode, label_array
from geneae.evaluate.clustering import REPEAT_RESTARTS, ClusterMethod, cluster
from geneae.evaluate.leiden_clustering import leiden_resolution
from geneae.evaluate.neighbourhood import nearest_neighbours

#: Repeats and the fraction of cells each one draws, unless the configuration says otherwise.
REPEATS = 20
FRACTION = 0.67


@dataclass
class Repeat:
    """One repeated clustering: the cells it drew (sorted indices) and their cluster codes."""

    rows: np.ndarray
    codes: np.ndarray


@dataclass
class Stability:
    """Co-clustering of a written clustering over repeated clusterings.

    Attributes
    ----------
    clusters
        (k,) the written clusters, in the order of the rows and columns below.
    sizes
        (k,) cells per written cluster.
    per_cell
        (n,) the stability of each cell: how often it was clustered with the other members
        of its written cluster (NaN for a cluster of one cell).
    per_cluster
        (k,) the diagonal of ``co_clustering``: how often two members of a cluster stayed
        together.
    co_clustering
        (k, k) for clusters a, b: how often a cell of a and another of b were clustered
        together (symmetric; NaN where no pair was ever drawn).
    ari
        (R,) adjusted Rand index of each repeat with the written clusters of its cells.
    n_found
        (R,) the number of clusters of each repeat.
    """

    clusters: np.ndarray
    sizes: np.ndarray
    per_cell: np.ndarray
    per_cluster: np.ndarray
    co_clustering: np.ndarray
    ari: np.ndarray
    n_found: np.ndarray

    @property
    def mean(self) -> float:
        """Mean stability of the cells (NaN when no cell has one)."""
        values = self.per_cell[np.isfinite(self.per_cell)]
        return float(values.mean()) if values.size else float("nan")


def co_clustering(written: Any, repeats: list[Repeat]) -> Stability:
    """Summarise repeated clusterings by the written clusters (see the module docstring).

    Parameters
    ----------
    written
        (n,) the clusters the run wrote (any labels).
    repeats
        Repeated clusterings of subsets of the same n cells.

    Returns
    -------
    Stability
        Per cell, per cluster and cluster x cluster co-clustering rates, and each repeat's
        ARI with ``written``.
    """
    ref = label_array(written, len(np.asarray(written)), "written clusters")
    codes, classes = encode(ref)
    n, k = len(codes), len(classes)
    together = np.zeros((k, k))  # co-clustered (repeat, ordered pair) counts
    drawn = np.zeros((k, k))  # co-drawn (repeat, ordered pair) counts
    cell_together = np.zeros(n)
    cell_drawn = np.zeros(n)
    ari: list[float] = []
    n_found: list[int] = []
    for rep in repeats:
        rows = np.asarray(rep.rows, dtype=np.int64)
        check_rows(len(rows), rep.codes, "repeat codes")
        found, found_classes = encode(np.asarray(rep.codes))
        a = codes[rows]
        table = np.zeros((k, len(found_classes)))
        np.add.at(table, (a, found), 1.0)
        size = table.sum(axis=1)
        # Ordered pairs of distinct cells: subtract each cell paired with itself.
        together += table @ table.T - np.diag(size)
        drawn += np.outer(size, size) - np.diag(size)
        cell_together[rows] += table[a, found] - 1
        cell_drawn[rows] += size[a] - 1
        ari.append(float(adjusted_rand_score(a, found)) if len(rows) > 1 else np.nan)
        n_found.append(len(found_classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_cell = np.where(cell_drawn > 0, cell_together / np.maximum(cell_drawn, 1), np.nan)
        matrix = np.where(drawn > 0, together / np.maximum(drawn, 1), np.nan)
    return Stability(
        clusters=classes,
        sizes=np.bincount(codes, minlength=k).astype(np.int64),
        per_cell=per_cell,
        per_cluster=np.diag(matrix).copy(),
        co_clustering=matrix,
        ari=np.asarray(ari, dtype=np.float64),
        n_found=np.asarray(n_found, dtype=np.int64),
    )


def repeat_clustering(
    latent: Any,
    *,
    method: ClusterMethod,
    n_clusters: int | None,
    seed: int = 0,
    neighbours: np.ndarray | None = None,
    repeats: int = REPEATS,
    fraction: float = FRACTION,
) -> list[Repeat]:
    """Repeat a clustering method on seeded random subsets of the cells.

    Parameters
    ----------
    latent
        Cells x dims embedding.
    method, n_clusters
        The run's method and number of clusters (see :func:`geneae.evaluate.cluster`);
        ``"gmvae"`` has no method to repeat (its clusters are the model's own).
    seed
        Seeds the subsets and each repeat's clustering seed.
    neighbours
        Leiden: the run's kNN table of ``latent``; each repeat clusters the part of that
        graph its cells span (no neighbour search per repeat), at the resolution the run's
        Leiden used (:func:`geneae.evaluate.leiden_resolution` for ``n_clusters``).
    repeats
        Number of repeats R.
    fraction
        Share of the cells each repeat draws (without replacement); 1 repeats on all cells
        with new seeds only.

    Returns
    -------
    list of Repeat
    """
    if method == "gmvae":
        raise InputError(
            "cluster stability repeats a clustering method; a GMVAE's clusters are its own "
            "mixture assignment, so there is nothing to repeat."
        )
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}.")
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction must be in (0, 1], got {fraction}.")
    z = np.asarray(latent, dtype=np.float64)
    n = len(z)
    if n < 2:
        raise InputError("cluster stability needs at least 2 cells.")
    size = min(n, max(2, int(round(fraction * n))))
    resolution = 1.0
    if method == "leiden":
        if neighbours is None:
            neighbours = nearest_neighbours(z, 15)
        if n_clusters is not None:
            # One Leiden run per repeat at the resolution the run's search settled on, not a
            # new search per repeat (a search is ~10 runs; a run takes seconds at 50,000
            # cells). A repeat may then find more or fewer clusters (kept in n_found).
            resolution = leiden_resolution(z, n_clusters, seed=seed, neighbours=neighbours)
            n_clusters = None
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x57AB]))
    out = []
    for _ in range(repeats):
        rows = np.sort(rng.choice(n, size=size, replace=False))
        codes = cluster(
            z,
            method=method,
            n_clusters=None if n_clusters is None else min(n_clusters, len(rows)),
            seed=int(rng.integers(2**31 - 1)),
            neighbours=neighbours,
            rows=rows,
            resolution=resolution,
            restarts=REPEAT_RESTARTS,
        )
        out.append(Repeat(rows, codes))
    return out


def cluster_stability(
    latent: Any,
    written: Any,
    *,
    method: ClusterMethod,
    n_clusters: int | None,
    seed: int = 0,
    neighbours: np.ndarray | None = None,
    repeats: int = REPEATS,
    fraction: float = FRACTION,
) -> tuple[Stability, float]:
    """Stability of ``written`` under repeats of its method (see :func:`repeat_clustering`).

    Returns
    -------
    stability
        :func:`co_clustering` of ``written`` over the repeats.
    seconds
        Time taken.
    """
    start = time.perf_counter()
    done = repeat_clustering(
        latent,
        method=method,
        n_clusters=n_clusters,
        seed=seed,
        neighbours=neighbours,
        repeats=repeats,
        fraction=fraction,
    )
    return co_clustering(written, done), time.perf_counter() - start
