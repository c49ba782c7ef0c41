"""Figures of a hyperparameter study: its optimisation history and parameter importances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from geneae.pl._style import GENEAE_COLOR, PCA_COLOR, VALIDATION_COLOR, message, new_axes, styled


@styled
def optimization_history(
    numbers: Sequence[int],
    values: Sequence[float],
    states: Sequence[str],
    *,
    direction: str = "minimize",
    label: str = "objective",
    ax: Axes | None = None,
) -> Figure:
    """Each trial's value by trial number, and the best value so far.

    Parameters
    ----------
    numbers, values, states
        One entry per trial: its number, its value (NaN when it has none) and its state
        (``COMPLETE``, ``PRUNED``, ``FAIL``, ...). Pruned trials are drawn at the last value
        they reported; failed and unfinished ones are left out.
    direction
        ``minimize`` or ``maximize``: which way "best so far" runs.
    label
        The y-axis label (the objective).
    """
    n = np.asarray(numbers, dtype=float)
    v = np.asarray(values, dtype=float)
    s = np.asarray([str(x) for x in states])
    complete = (s == "COMPLETE") & np.isfinite(v)
    pruned = (s == "PRUNED") & np.isfinite(v)
    if not complete.any() and not pruned.any():
        return message("no finished trials yet")
    fig, ax = new_axes(ax, (6.0, 3.4))
    ax.scatter(n[complete], v[complete], s=22, color=GENEAE_COLOR, label="complete", zorder=3)
    if pruned.any():
        ax.scatter(n[pruned], v[pruned], s=22, marker="x", color=PCA_COLOR, label="pruned")
    if complete.any():
        order = np.argsort(n[complete])
        xs, ys = n[complete][order], v[complete][order]
        best = np.minimum.accumulate(ys) if direction == "minimize" else np.maximum.accumulate(ys)
        ax.step(xs, best, where="post", color=VALIDATION_COLOR, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.set_title("optimisation history")
    ax.legend(loc="best")
    return fig


@styled
def param_importances(importances: Mapping[str, float], *, ax: Axes | None = None) -> Figure:
    """Horizontal bars of each tuned setting's importance (largest on top).

    ``importances``: setting -> importance (non-negative, summing to 1 as Optuna's
    evaluators return them).
    """
    if not importances:
        return message("no parameter importances (too few finished trials)")
    items: list[tuple[str, Any]] = sorted(importances.items(), key=lambda kv: kv[1])
    names = [k for k, _ in items]
    vals = np.asarray([float(v) for _, v in items])
    fig, ax = new_axes(ax, (6.0, max(1.8, 0.45 * len(items) + 1.0)))
    pos = np.arange(len(items))
    ax.barh(pos, vals, color=GENEAE_COLOR)
    ax.set_yticks(pos)
    ax.set_yticklabels(names)
    for y, x in zip(pos, vals, strict=True):
        ax.text(x, y, f" {x:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, float(vals.max()) * 1.15))
    ax.set_xlabel("importance (fANOVA)")
    ax.set_title("parameter importances")
    return fig
