"""The stability of a run's clusters, laid out in its results for the report.

:func:`cluster_stability` stores what :func:`geneae.evaluate.compare_with_pca` measured with
:func:`geneae.evaluate.cluster_stability` (the clustering of each side repeated on subsets
of the cells): each cell's stability in ``obs["<side>_stability"]`` and each side's
per-cluster stability and cluster x cluster co-clustering in ``uns["geneae"]["stability"]``
(``docs/results.md``), so that the report draws them without clustering anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geneae.errors import InputError
from geneae.evaluate.baseline import Comparison
from geneae.tl._common import geneae_uns


def cluster_stability(results: Any, comparison: Comparison) -> None:
    """Store each side's cluster stability of ``comparison`` in ``results``.

    Parameters
    ----------
    results
        The results AnnData of the compared cells, in the same order. Written:
        ``obs["<side>_stability"]`` (n,) float32 and ``uns["geneae"]["stability"]``:
        ``repeats`` (int), ``fraction`` (float) and per side (``geneae``, ``pca``) a dict of
        ``method`` (str), ``clusters`` (k,) str, ``sizes`` (k,) int64, ``per_cluster``
        (k,) float64, ``co_clustering`` (k, k) float64, ``ari`` (R,) float64, ``n_found``
        (R,) int64, ``mean`` (float) and ``seconds`` (float). Nothing is written when no
        side was measured.
    comparison
        The output of :func:`geneae.evaluate.compare_with_pca`.
    """
    if not comparison.stability:
        return
    settings = comparison.metrics.get("stability", {})
    methods = comparison.metrics.get("clustering", {})
    spent = settings.get("seconds", {})
    slot: dict[str, Any] = {
        "repeats": int(settings.get("repeats", 0)),
        "fraction": float(settings.get("fraction", np.nan)),
    }
    for side, found in comparison.stability.items():
        if len(found.per_cell) != results.n_obs:
            raise InputError(
                f"the {side} stability has {len(found.per_cell)} cells but the results have "
                f"{results.n_obs}; store the comparison of these cells."
            )
        results.obs[f"{side}_stability"] = found.per_cell.astype(np.float32)
        slot[side] = {
            "method": str(methods.get(side, "")),
            "clusters": np.asarray(found.clusters).astype(str),
            "sizes": np.asarray(found.sizes, dtype=np.int64),
            "per_cluster": np.asarray(found.per_cluster, dtype=np.float64),
            "co_clustering": np.asarray(found.co_clustering, dtype=np.float64),
            "ari": np.asarray(found.ari, dtype=np.float64),
            "n_found": np.asarray(found.n_found, dtype=np.int64),
            "mean": float(found.mean),
            "seconds": float(spent.get(side, np.nan)),
        }
    geneae_uns(results)["stability"] = slot
