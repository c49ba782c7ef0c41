"""geneae vs PCA, metric by metric: one bar panel per metric, the better bar outlined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from geneae.evaluate import METRIC_DIRECTIONS
from geneae.pl._style import (
    GENEAE_COLOR,
    METRIC_LABELS,
    PCA_COLOR,
    finite,
    fmt,
    grid,
    message,
    styled,
)


@styled
def metrics_bars(comparison: Mapping[str, Any]) -> Figure:
    """Bars of each metric for geneae and PCA side by side, the better bar outlined.

    Parameters
    ----------
    comparison
        Output of :func:`geneae.evaluate.compare_with_pca` (``geneae`` and ``pca`` dicts).
        Metrics without a finite value on both sides, or without a known direction, are
        skipped.
    """
    ours, theirs = comparison.get("geneae", {}), comparison.get("pca", {})
    names = [
        m
        for m in METRIC_DIRECTIONS
        if m in ours and m in theirs and finite(ours[m]) and finite(theirs[m])
    ]
    if not names:
        return message("no metrics to compare")
    fig, axes = grid(len(names), 4, (2.7, 2.4))
    for ax, name in zip(axes, names, strict=True):
        values = [float(ours[name]), float(theirs[name])]
        higher = METRIC_DIRECTIONS[name] == "higher"
        best = int(np.argmax(values) if higher else np.argmin(values))
        tie = values[0] == values[1]
        bars = ax.bar([0, 1], values, color=[GENEAE_COLOR, PCA_COLOR], width=0.6)
        for i, (bar, v) in enumerate(zip(bars, values, strict=True)):
            if i == best and not tie:
                bar.set_edgecolor("black")
                bar.set_linewidth(1.8)
            ax.annotate(
                fmt(v),
                (bar.get_x() + bar.get_width() / 2, v),
                xytext=(0, 2 if v >= 0 else -9),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                fontweight="bold" if i == best and not tie else "normal",
            )
        ax.set_xticks([0, 1])
        ax.set_xticklabels(["geneae", "PCA"])
        arrow = "↑" if higher else "↓"
        ax.set_title(f"{METRIC_LABELS.get(name, name)} {arrow}", fontsize=9)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.margins(y=0.18)
    return fig
