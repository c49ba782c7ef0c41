"""The map of a gene embedding: genes placed by the cosine geometry of their vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from geneae.pl._style import GENEAE_COLOR, categories, message, new_axes, palette, styled


@styled
def gene_map(
    coords: Any,
    names: Sequence[str],
    *,
    labels: Any = None,
    values: Any = None,
    highlight: Sequence[str] = (),
    title: str = "gene embedding",
    max_names: int = 6,
    ax: Axes | None = None,
) -> Figure:
    """Genes as points of a 2-D map, coloured by group or value, a few of them named.

    Parameters
    ----------
    coords
        (m, 2) coordinates of the genes ``names``.
    names
        (m,) gene names.
    labels
        (m,) known gene groups (categorical colours), or None.
    values
        (m,) a number per gene (e.g. its variance; colour map) when there are no labels.
    highlight
        Genes to mark (e.g. the most variable ones); the first ``max_names`` are named.
    max_names
        Names written on the map at most (more overlap into an unreadable cluster).
    title
        Axes title.
    """
    xy = np.asarray(coords, dtype=float)
    names = [str(n) for n in names]
    if xy.ndim != 2 or len(xy) != len(names) or len(xy) == 0:
        return message("no gene map")
    fig, ax = new_axes(ax, (6.2, 5.0))
    if labels is not None:
        cats, codes = categories(labels)
        colors = palette(len(cats))
        for i, cat in enumerate(cats):
            rows = codes == i
            ax.scatter(xy[rows, 0], xy[rows, 1], s=8, color=colors[i], label=str(cat), lw=0)
        if len(cats) <= 20:
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2)
    elif values is not None and np.isfinite(np.asarray(values, dtype=float)).any():
        v = np.asarray(values, dtype=float)
        points = ax.scatter(xy[:, 0], xy[:, 1], s=8, c=v, cmap="viridis", lw=0)
        fig.colorbar(points, ax=ax, label="variance of log expression")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, color=GENEAE_COLOR, lw=0)
    index = {n: i for i, n in enumerate(names)}
    marked = [index[g] for g in highlight if g in index]
    if marked:
        ax.scatter(xy[marked, 0], xy[marked, 1], s=40, facecolors="none", edgecolors="black")
        for i in marked[:max_names]:
            ax.annotate(names[i], xy[i], fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return fig
