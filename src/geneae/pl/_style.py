"""Shared look of every figure: colours, names, text sizes, figure and axes helpers."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

GENEAE_COLOR = "#2166ac"
PCA_COLOR = "#969696"
VALIDATION_COLOR = "#d6604d"
METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
METRIC_LABELS = {
    "mse": "MSE",
    "masked_mse": "masked MSE (non-zeros)",
    "pearson_gene": "Pearson r per gene",
    "pearson_cell": "Pearson r per cell",
    "ari": "ARI",
    "nmi": "NMI",
    "acc": "accuracy (Hungarian)",
    "silhouette": "silhouette",
    "calinski_harabasz": "Calinski-Harabasz",
    "davies_bouldin": "Davies-Bouldin",
    "knn_accuracy": "kNN accuracy",
    "trustworthiness": "trustworthiness",
    "cluster_stability": "cluster stability",
    "n_clusters": "number of clusters",
}

# Readable defaults, applied while a figure is built (text sizes are fixed at creation).
_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}

_F = TypeVar("_F", bound=Callable[..., Figure])


def styled(func: _F) -> _F:
    """Build the figure of ``func`` under geneae's text sizes and spines."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new one-panel figure of ``figsize`` when ``ax`` is None."""
    if ax is not None:
        return ax.get_figure(root=True), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def grid(n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels in rows of ``ncols`` (unused grid cells removed)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for extra in axes[n:]:
        fig.delaxes(extra)
    return fig, axes[:n]


def message(text: str, figsize: tuple[float, float] = (5.0, 2.5)) -> Figure:
    """A one-panel figure that only says ``text`` (nothing to draw)."""
    fig, ax = new_axes(None, figsize)
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def palette(n: int) -> list[Any]:
    """``n`` distinguishable colours: tab10 up to 10, tab20 up to 20, then tab20/b/c (60)."""
    if n <= 10:
        colors = list(mpl.colormaps["tab10"].colors)
    elif n <= 20:
        colors = list(mpl.colormaps["tab20"].colors)
    else:
        colors = [c for name in ("tab20", "tab20b", "tab20c") for c in mpl.colormaps[name].colors]
    if n > len(colors):  # beyond 60: cycle through a perceptual map instead
        colors = list(mpl.colormaps["turbo"](np.linspace(0.05, 0.95, n)))
    return colors[:n]


def categories(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted categories (numbers numerically, everything else as text) and codes.

    Missing values of a pandas categorical become a last category ``"(missing)"``, so every
    cell keeps a valid code; categories no cell has are dropped.
    """
    if isinstance(labels, pd.Series) and isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.array
    if isinstance(labels, pd.Categorical):
        cats = labels.categories.to_numpy()
        codes = np.asarray(labels.codes, dtype=np.int64)
        present = np.unique(codes[codes >= 0])
        remap = np.full(len(cats), -1)
        remap[present] = np.arange(len(present))
        out_cats = cats[present].astype(object)
        out_codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], len(present))
        if (codes < 0).any():
            out_cats = np.append(out_cats, "(missing)")
        return out_cats, out_codes
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iufb":
        arr = arr.astype(str)
    cats, codes = np.unique(arr, return_inverse=True)
    return cats, codes.ravel()


def is_continuous(labels: Any) -> bool:
    """Float labels with more than 30 distinct values get a colour map, not categories."""
    if isinstance(labels, (pd.Series, pd.Categorical)) and isinstance(
        labels.dtype, pd.CategoricalDtype
    ):
        return False
    arr = np.asarray(labels)
    return arr.dtype.kind == "f" and len(np.unique(arr[np.isfinite(arr)])) > 30


def take(labels: Any, rows: np.ndarray) -> Any:
    """``labels`` at the boolean or integer ``rows`` (pandas objects keep their dtype)."""
    if labels is None:
        return None
    if isinstance(labels, pd.Series):
        return labels.iloc[rows]
    if isinstance(labels, pd.Categorical):
        return labels[rows]
    return np.asarray(labels)[rows]


def finite(v: Any) -> bool:
    """Whether ``v`` is a finite number."""
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def fmt(v: float) -> str:
    """A value as printed on a bar: 3 decimals, thousands separators or scientific."""
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"
