"""Clusters against labels (or against each other), their stability, a GMVAE's mixture."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from geneae.errors import InputError
from geneae.evaluate import match_clusters
from geneae.pl._style import GENEAE_COLOR, categories, message, new_axes, styled


@styled
def confusion(
    labels: Any,
    clusters: Any,
    *,
    ax: Axes | None = None,
    row_title: str = "label",
    col_title: str = "cluster",
    title: str = "",
) -> Figure:
    """Contingency table of clusters against labels, columns in Hungarian-matched order.

    Cells are coloured by the fraction of each row (label) falling in each column (cluster)
    and annotated with counts when the table is small enough to read. Columns matched to a
    label come first, in the order of their labels (so a perfect clustering is a diagonal);
    unmatched clusters follow, largest first. A colour bar adds a second axes.
    """
    row_cats, row_codes = categories(labels)
    col_cats, col_codes = categories(clusters)
    if len(row_codes) != len(col_codes):
        raise InputError(f"{len(row_codes)} labels but {len(col_codes)} cluster assignments.")
    table = np.zeros((len(row_cats), len(col_cats)), dtype=np.int64)
    np.add.at(table, (row_codes, col_codes), 1)
    mapping = match_clusters(row_codes, col_codes)  # {column code: row code}
    matched = sorted(mapping, key=lambda c: mapping[c])
    rest = sorted(set(range(len(col_cats))) - set(matched), key=lambda c: -table[:, c].sum())
    order = list(matched) + rest
    table = table[:, order]
    frac = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    nr, nc = table.shape
    fig, ax = new_axes(ax, (min(2.5 + 0.42 * nc, 14.0), min(1.8 + 0.36 * nr, 12.0)))
    image = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    if nr * nc <= 600:
        size = 7 if max(nr, nc) <= 16 else 5.5
        for i in range(nr):
            for j in range(nc):
                if table[i, j]:
                    ax.text(
                        j,
                        i,
                        str(table[i, j]),
                        ha="center",
                        va="center",
                        fontsize=size,
                        color="white" if frac[i, j] > 0.55 else "black",
                    )
    ax.set_xticks(np.arange(nc))
    ax.set_xticklabels([str(col_cats[c]) for c in order], rotation=90 if nc > 12 else 0)
    ax.set_yticks(np.arange(nr))
    ax.set_yticklabels([str(c) for c in row_cats])
    ax.set_xlabel(col_title)
    ax.set_ylabel(row_title)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8, label=f"fraction of {row_title}")
    return fig


@styled
def responsibilities(probs: Any, labels: Any = None, *, ax: Axes | None = None) -> Figure:
    """Heatmap of a GMVAE's q(y|x): components (rows) x cells (columns), cells sorted by label.

    Within a label, cells are sorted by their most likely component; components are
    ordered to line up with the labels they match (Hungarian matching of the argmax). A
    colour bar adds a second axes.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise InputError(f"probs must be cells x components, got shape {p.shape}.")
    n, k = p.shape
    top = p.argmax(axis=1)
    if labels is not None:
        cats, codes = categories(labels)
        if len(codes) != n:
            raise InputError(f"{len(codes)} labels for {n} cells.")
        mapping = match_clusters(codes, top)  # {component: label code}
        comp_order = sorted(mapping, key=lambda c: mapping[c])
        comp_order += sorted(set(range(k)) - set(comp_order))
    else:
        cats, codes = np.array([]), np.zeros(n, dtype=np.int64)
        comp_order = list(np.argsort(-np.bincount(top, minlength=k), kind="stable"))
    rank = np.empty(k, dtype=np.int64)
    rank[comp_order] = np.arange(k)
    cell_order = np.lexsort((-p.max(axis=1), rank[top], codes))
    fig, ax = new_axes(ax, (11.0, min(1.5 + 0.3 * k, 8.0)))
    image = ax.imshow(
        p[cell_order][:, comp_order].T,
        aspect="auto",
        cmap="magma_r",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    ax.set_yticks(np.arange(k))
    ax.set_yticklabels([str(c) for c in comp_order], fontsize=7 if k > 20 else 8)
    ax.set_ylabel("mixture component")
    if labels is not None:
        sorted_codes = codes[cell_order]
        bounds = np.flatnonzero(np.diff(sorted_codes)) + 0.5
        for b in bounds:
            ax.axvline(b, color="#2ca02c", lw=0.8)
        starts = np.concatenate([[0], np.ceil(bounds)]).astype(int)
        ends = np.concatenate([np.ceil(bounds), [n]]).astype(int)
        ax.set_xticks((starts + ends - 1) / 2)
        names = [str(cats[sorted_codes[s]]) for s in starts]
        long = len(names) > 12 or max(len(t) for t in names) * len(names) > 120
        ax.set_xticklabels(names, rotation=90 if long else 0)
        ax.set_xlabel("cells, grouped by label")
    else:
        ax.set_xticks([])
        ax.set_xlabel("cells, sorted by most likely component")
    fig.colorbar(image, ax=ax, shrink=0.9, label="q(y | x)")
    return fig


@styled
def cluster_stability(stability: Mapping[str, Any], *, title: str = "") -> Figure:
    """Per-cluster stability (bars) beside the cluster x cluster co-clustering (heatmap).

    Parameters
    ----------
    stability
        One side of ``uns["geneae"]["stability"]`` (docs/results.md): ``clusters`` (k,),
        ``per_cluster`` (k,), ``co_clustering`` (k, k) and optionally ``sizes`` (k,) and
        ``mean``. NaN entries (never drawn together) are left blank.
    title
        Title above both panels.
    """
    clusters = [str(c) for c in np.atleast_1d(stability["clusters"])]
    per_cluster = np.asarray(stability["per_cluster"], dtype=np.float64).ravel()
    matrix = np.asarray(stability["co_clustering"], dtype=np.float64)
    k = len(clusters)
    if k == 0:
        return message("no clusters")
    if per_cluster.shape != (k,) or matrix.shape != (k, k):
        raise InputError(
            f"{k} clusters need per_cluster ({k},) and co_clustering ({k}, {k}); got "
            f"{per_cluster.shape} and {matrix.shape}."
        )
    sizes = stability.get("sizes")
    names = (
        clusters
        if sizes is None
        else [f"{c} ({int(n):,})" for c, n in zip(clusters, np.atleast_1d(sizes), strict=True)]
    )
    side = min(1.6 + 0.38 * k, 9.0)
    fig = Figure(figsize=(3.6 + side + 1.2, max(2.4, side)), layout="constrained")
    bars, heat = fig.subplots(1, 2, width_ratios=[3.0, side])
    pos = np.arange(k)
    bars.barh(pos, np.nan_to_num(per_cluster), color=GENEAE_COLOR, height=0.7)
    for i, v in enumerate(per_cluster):
        if np.isfinite(v):
            bars.text(min(v, 1.0) + 0.02, i, f"{v:.2f}", va="center", fontsize=7)
    bars.set_yticks(pos)
    bars.set_yticklabels(names, fontsize=7 if k > 20 else 8)
    bars.set_ylim(k - 0.5, -0.5)
    bars.set_xlim(0, 1.18)
    bars.set_xticks([0, 0.5, 1])
    bars.set_xlabel("stability")
    bars.set_ylabel("cluster (cells)")
    image = heat.imshow(
        np.ma.masked_invalid(matrix), cmap="Blues", vmin=0, vmax=1, interpolation="nearest"
    )
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v = matrix[i, j]
                if np.isfinite(v) and v >= 0.005:
                    heat.text(
                        j,
                        i,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6.5 if k > 10 else 7.5,
                        color="white" if v > 0.55 else "black",
                    )
    heat.set_xticks(pos)
    heat.set_xticklabels(clusters, rotation=90 if k > 12 else 0)
    heat.set_yticks(pos)
    heat.set_yticklabels(clusters)
    heat.set_xlabel("cluster")
    heat.set_ylabel("cluster")
    for spine in heat.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=heat, shrink=0.8, label="co-clustered fraction of pairs")
    mean = stability.get("mean")
    heading = title or "cluster stability"
    if mean is not None and np.isfinite(float(mean)):
        heading += f"; mean over the cells {float(mean):.3f}"
    fig.suptitle(heading, fontsize=10)
    return fig
