"""Scatter plots of 2-D maps of cells, from coordinates computed by :func:`geneae.tl.maps`.

Nothing here fits a map: coordinates come in (an ``obsm["map_<method>_<space>"]`` of a
results AnnData, or any cells x 2 array). Rows with NaN coordinates (cells not plotted)
are left out, with their labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from geneae.errors import InputError
from geneae.pl._style import (
    GENEAE_COLOR,
    METHOD_NAMES,
    categories,
    is_continuous,
    new_axes,
    palette,
    styled,
    take,
)


@styled
def embedding_map(
    coords: Any,
    labels: Any = None,
    *,
    title: str = "",
    ax: Axes | None = None,
    method: str | None = None,
    legend: bool = True,
    seed: int = 0,
) -> Figure:
    """Scatter plot of 2-D coordinates coloured by labels.

    Parameters
    ----------
    coords
        Cells x 2 coordinates; rows with a NaN are not drawn (cells outside the plotted
        subsample of :func:`geneae.tl.maps`).
    labels
        One label per row of ``coords``, or None. Categories get distinct colours (up to
        60); float labels with more than 30 distinct values get a continuous colour map and
        a colour bar.
    title
        Panel title.
    ax
        Axes to draw into; a new figure when None.
    method
        ``"pca"``, ``"tsne"`` or ``"umap"``: names the axes ("t-SNE 1", ...).
    legend
        Draw the legend (outside the panel, right) or colour bar.
    seed
        Points are drawn in a seeded random order so no group hides another.
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"coords must be cells x 2, got shape {xy.shape}.")
    if labels is not None and len(labels) != len(xy):
        raise InputError(f"{len(labels)} labels for {len(xy)} cells.")
    keep = np.isfinite(xy).all(axis=1)
    if not keep.all():
        xy, labels = xy[keep], take(labels, keep)
    fig, ax = new_axes(ax, (6.0, 4.8))
    n = len(xy)
    order = np.random.default_rng(seed).permutation(n)
    size = float(np.clip(4000.0 / max(n, 1), 1.5, 30.0))
    if labels is None:
        ax.scatter(xy[order, 0], xy[order, 1], s=size, c=GENEAE_COLOR, linewidths=0)
    elif is_continuous(labels):
        values = np.asarray(labels, dtype=np.float64)
        points = ax.scatter(
            xy[order, 0], xy[order, 1], s=size, c=values[order], cmap="viridis", linewidths=0
        )
        if legend:
            fig.colorbar(points, ax=ax, shrink=0.8)
    else:
        cats, codes = categories(labels)
        colors = np.array([to_rgba(c) for c in palette(len(cats))]).reshape(-1, 4)
        if len(cats) and str(cats[-1]) == "(missing)":
            colors[-1] = to_rgba("0.8")  # unlabelled cells in light grey
        ax.scatter(xy[order, 0], xy[order, 1], s=size, c=colors[codes[order]], linewidths=0)
        if legend and 0 < len(cats) <= 60:
            handles = [
                mpl.lines.Line2D([], [], marker="o", ls="", color=colors[i], markersize=5)
                for i in range(len(cats))
            ]
            ax.legend(
                handles,
                [str(c) for c in cats],
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                ncols=1 if len(cats) <= 16 else 2,
                handletextpad=0.2,
                columnspacing=0.8,
                borderaxespad=0.0,
            )
    name = METHOD_NAMES.get(method or "", "")
    ax.set_xlabel(f"{name} 1".strip())
    ax.set_ylabel(f"{name} 2".strip())
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return fig


@styled
def map_pair(
    left: Any,
    right: Any,
    labels: Any = None,
    *,
    method: str = "pca",
    titles: Sequence[str] = ("original", "reconstruction"),
    seed: int = 0,
) -> Figure:
    """Two maps of the same cells side by side (e.g. data vs reconstruction), same colours.

    Parameters
    ----------
    left, right
        Cells x 2 coordinates of the same cells (e.g. ``obsm["map_tsne_input"]`` and
        ``obsm["map_tsne_geneae"]``); rows with a NaN on either side are not drawn.
    labels
        One label per cell, or None.
    method
        The method of both maps (``"pca"``, ``"tsne"``, ``"umap"``): names the axes.
    titles
        Titles of the two panels.
    seed
        Seed of the drawing order.
    """
    if len(titles) != 2:
        raise InputError("titles needs two entries (left, right).")
    a, b = (np.asarray(m, dtype=np.float64) for m in (left, right))
    if a.shape != b.shape:
        raise InputError(f"left {a.shape} and right {b.shape} coordinates do not match.")
    both = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1) if a.ndim == 2 else None
    fig = Figure(figsize=(10.0, 4.1), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, (ax, xy, title) in enumerate(zip(axes, (a, b), titles, strict=True)):
        if both is not None and not both.all():
            xy = np.where(both[:, None], xy, np.nan)
        embedding_map(xy, labels, title=title, ax=ax, method=method, legend=i == 1, seed=seed)
    return fig


@styled
def embedding(
    results: Any,
    basis: str,
    *,
    color: str | None = "label",
    title: str | None = None,
    ax: Axes | None = None,
    seed: int = 0,
) -> Figure:
    """One stored map of a results AnnData, coloured by an ``obs`` column.

    Parameters
    ----------
    results
        A results AnnData (see ``docs/results.md``).
    basis
        An ``obsm`` key, e.g. ``"map_umap_geneae"`` (any cells x >= 2 array: its first two
        columns are drawn).
    color
        An ``obs`` column; None, or a column the results lack, draws one colour.
    title
        Panel title; the basis when None.
    ax
        Axes to draw into; a new figure when None.
    seed
        Seed of the drawing order.
    """
    if basis not in results.obsm:
        have = ", ".join(map(str, results.obsm)) or "none"
        raise InputError(f"no obsm[{basis!r}] in the results (have: {have}).")
    xy = np.asarray(results.obsm[basis], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise InputError(f"obsm[{basis!r}] has shape {xy.shape}; a map needs two columns.")
    labels = results.obs[color] if color is not None and color in results.obs else None
    parts = basis.split("_")
    method = parts[1] if len(parts) > 2 and parts[0] == "map" else None
    return embedding_map(
        xy[:, :2],
        labels,
        title=basis if title is None else title,
        ax=ax,
        method=method,
        seed=seed,
    )
