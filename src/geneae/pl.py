"""Figures for a fitted autoencoder: training curves, maps, reconstructions, latent use, clusters.

Every function returns a :class:`matplotlib.figure.Figure` and writes no file. Figures are
built with the object-oriented API (``Figure(...)``), not pyplot, so nothing is registered
in pyplot's global figure list, nothing needs closing, and the module works with any
backend (Agg included). Single-panel functions take ``ax=`` to draw into a caller's axes and
then return that axes' figure.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from geneae.errors import InputError
from geneae.evaluate import METRIC_DIRECTIONS, match_clusters

MapMethod = Literal["pca", "tsne", "umap"]

GENEAE_COLOR = "#2166ac"
PCA_COLOR = "#969696"
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


def _styled(func: _F) -> _F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(root=True), ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _grid(n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels in rows of ``ncols`` (unused grid cells removed)."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for extra in axes[n:]:
        fig.delaxes(extra)
    return fig, axes[:n]


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


def _categories(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted categories (numbers numerically, everything else as text) and codes.

    Missing values of a pandas categorical become a last category ``"(missing)"``, so every
    cell keeps a valid code.
    """
    if isinstance(labels, pd.Series) and isinstance(labels.dtype, pd.CategoricalDtype):
        cats = labels.cat.categories.to_numpy()
        codes = labels.cat.codes.to_numpy().astype(np.int64)
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


def _is_continuous(labels: Any) -> bool:
    arr = np.asarray(labels)
    return arr.dtype.kind == "f" and len(np.unique(arr[np.isfinite(arr)])) > 30


# -- embeddings -----------------------------------------------------------------------------


def embed_2d(x: Any, method: MapMethod = "pca", *, seed: int = 0) -> np.ndarray:
    """Two-dimensional coordinates of the rows of ``x`` for plotting.

    Parameters
    ----------
    x
        Cells x features, dense or sparse.
    method
        ``"pca"`` (scikit-learn), ``"tsne"`` (openTSNE, one thread) or ``"umap"``
        (umap-learn). For t-SNE and UMAP, inputs with more than 50 features are first reduced
        to 50 principal components, the usual practice that removes noise and saves time.
    seed
        Seed of every random step (same seed, same map).

    Returns
    -------
    numpy.ndarray
        Cells x 2.
    """
    from sklearn.decomposition import PCA

    def pca(data: Any, k: int) -> np.ndarray:
        # ARPACK for dense and sparse alike (it centres sparse input implicitly), so that a
        # matrix gives the same map whichever way it is stored; it needs k < min(n, features).
        full = k >= min(data.shape)
        k = min(k, min(data.shape) - (1 if sp.issparse(data) else 0))
        solver = "full" if full and not sp.issparse(data) else "arpack"
        out = PCA(n_components=k, svd_solver=solver, random_state=seed).fit_transform(data)
        return np.asarray(out, dtype=np.float64)

    if method not in METHOD_NAMES:
        raise InputError(f"unknown map method {method!r}; choose one of {list(METHOD_NAMES)}.")
    x = sp.csr_array(x, dtype=np.float64) if sp.issparse(x) else np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise InputError(
            f"a {METHOD_NAMES[method]} map needs >= 3 cells x features, got {x.shape}."
        )
    n = x.shape[0]
    if x.shape[1] == 1:
        x = np.column_stack([x.toarray() if sp.issparse(x) else x, np.zeros(n)])
    if method == "pca" or n < 10:
        coords = pca(x, 2)
        return coords if coords.shape[1] == 2 else np.column_stack([coords, np.zeros(n)])
    data = pca(x, 50) if x.shape[1] > 50 else (x.toarray() if sp.issparse(x) else x)
    if method == "tsne":
        from openTSNE import TSNE

        perplexity = float(min(30.0, (n - 1) / 3))
        tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=1)
        return np.asarray(tsne.fit(data), dtype=np.float64)
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(data), dtype=np.float64)


@_styled
def embedding_map(
    coords: Any,
    labels: Any = None,
    *,
    title: str = "",
    ax: Axes | None = None,
    method: MapMethod | None = None,
    legend: bool = True,
    seed: int = 0,
) -> Figure:
    """Scatter plot of 2-D coordinates coloured by labels.

    Parameters
    ----------
    coords
        Cells x 2 coordinates (see :func:`embed_2d`).
    labels
        One label per cell, or None. Categories get distinct colours (up to 60); float
        labels with more than 30 distinct values get a continuous colour map and a colour bar.
    title
        Panel title.
    ax
        Axes to draw into; a new figure when None.
    method
        Names the axes ("t-SNE 1", ...).
    legend
        Draw the legend (outside the panel, right).
    seed
        Points are drawn in a seeded random order so no group hides another.
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"coords must be cells x 2, got shape {xy.shape}.")
    fig, ax = _new_axes(ax, (6.0, 4.8))
    n = len(xy)
    order = np.random.default_rng(seed).permutation(n)
    size = float(np.clip(4000.0 / max(n, 1), 1.5, 30.0))
    if labels is None:
        ax.scatter(xy[order, 0], xy[order, 1], s=size, c=GENEAE_COLOR, linewidths=0)
    elif _is_continuous(labels):
        values = np.asarray(labels, dtype=np.float64)
        if len(values) != n:
            raise InputError(f"{len(values)} labels for {n} cells.")
        points = ax.scatter(
            xy[order, 0], xy[order, 1], s=size, c=values[order], cmap="viridis", linewidths=0
        )
        if legend:
            fig.colorbar(points, ax=ax, shrink=0.8)
    else:
        if len(labels) != n:
            raise InputError(f"{len(labels)} labels for {n} cells.")
        cats, codes = _categories(labels)
        colors = np.array([to_rgba(c) for c in palette(len(cats))])
        if len(cats) and str(cats[-1]) == "(missing)":
            colors[-1] = to_rgba("0.8")  # unlabelled cells in light grey
        ax.scatter(xy[order, 0], xy[order, 1], s=size, c=colors[codes[order]], linewidths=0)
        if legend and len(cats) <= 60:
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


@_styled
def map_pair(
    left: Any,
    right: Any,
    labels: Any = None,
    *,
    method: MapMethod = "pca",
    titles: Sequence[str] = ("original", "reconstruction"),
    seed: int = 0,
    precomputed: bool = False,
) -> Figure:
    """Two maps side by side (e.g. original vs reconstruction), coloured by the same labels.

    Parameters
    ----------
    left, right
        Cells x features matrices of the same cells (any numbers of features), or cells x 2
        coordinates with ``precomputed=True``.
    labels
        One label per cell, or None.
    method
        ``"pca"``, ``"tsne"`` or ``"umap"`` (see :func:`embed_2d`).
    titles
        Titles of the two panels.
    seed
        Seed of the maps.
    precomputed
        ``left`` and ``right`` already are 2-D coordinates from ``method``.
    """
    if len(titles) != 2:
        raise InputError("titles needs two entries (left, right).")
    coords = [
        np.asarray(m, dtype=np.float64) if precomputed else embed_2d(m, method, seed=seed)
        for m in (left, right)
    ]
    fig = Figure(figsize=(10.0, 4.1), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, (ax, xy, title) in enumerate(zip(axes, coords, titles, strict=True)):
        embedding_map(xy, labels, title=title, ax=ax, method=method, legend=i == 1, seed=seed)
    return fig


# -- training -------------------------------------------------------------------------------

# Panels of the training-curve figure: title, columns (train / validation pairs or single
# series) and whether the y-axis is logarithmic.
_CURVE_PANELS: list[tuple[str, list[str], bool]] = [
    ("loss", ["train_loss", "val_loss"], False),
    ("reconstruction", ["train_reconstruction", "val_reconstruction"], False),
    ("KL divergence", ["train_kl", "val_kl"], False),
    ("ELBO", ["train_elbo", "val_elbo"], False),
    ("learning rate", ["lr"], True),
    ("KL weight (β)", ["kl_weight", "beta"], False),
    ("masking rate", ["mask_rate"], False),
]


@_styled
def training_curves(history: pd.DataFrame) -> Figure:
    """Per-epoch training and validation curves, one panel per quantity present.

    Parameters
    ----------
    history
        One row per epoch (rows with NaN gaps are fine): ``epoch`` plus any of
        ``train_loss``, ``val_loss``, ``train_reconstruction``, ``val_reconstruction``,
        ``train_kl``, ``val_kl``, ``train_elbo``, ``val_elbo``, ``lr``, ``kl_weight`` (or
        ``beta``), ``mask_rate``; any other ``train_*`` / ``val_*`` pair gets a panel too.
        Columns that are missing or all NaN are skipped.

    Returns
    -------
    Figure
        One axes per panel (a single "no history" panel when nothing is plottable).
    """
    epoch = history["epoch"] if "epoch" in history else pd.Series(history.index, dtype=float)
    known = {c for _, cols, _ in _CURVE_PANELS for c in cols} | {"epoch", "step"}
    extra = sorted(
        {c.split("_", 1)[1] for c in history.columns if c.startswith(("train_", "val_"))}
        - {c.split("_", 1)[1] for c in known if "_" in c}
    )
    panels = list(_CURVE_PANELS) + [(e, [f"train_{e}", f"val_{e}"], False) for e in extra]

    def series(col: str) -> pd.Series | None:
        if col not in history:
            return None
        values = pd.to_numeric(history[col], errors="coerce")
        keep = values.notna() & epoch.notna()
        return None if not keep.any() else pd.Series(values[keep].to_numpy(), epoch[keep])

    present = []
    for title, cols, log in panels:
        curves = [(c, s) for c in cols if (s := series(c)) is not None]
        if curves:
            present.append((title, curves, log))
    if not present:
        fig, ax = _new_axes(None, (5.0, 3.0))
        ax.text(0.5, 0.5, "no training history", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    fig, axes = _grid(len(present), 3, (4.2, 3.0))
    best = series("val_loss")
    for ax, (title, curves, log) in zip(axes, present, strict=True):
        for col, s in curves:
            is_val = col.startswith("val_")
            ax.plot(
                s.index,
                s.to_numpy(),
                color="#d6604d" if is_val else GENEAE_COLOR,
                ls="--" if is_val else "-",
                lw=1.4,
                label="validation" if is_val else ("train" if col.startswith("train_") else col),
            )
        if title == "loss" and best is not None and len(best) > 1:
            ax.axvline(best.idxmin(), color="0.4", lw=0.8, ls=":", label="best validation")
        if log and all((s > 0).all() for _, s in curves):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if len(curves) > 1 or title == "loss":
            ax.legend()
    return fig


# -- reconstruction -------------------------------------------------------------------------


@_styled
def reconstruction_profiles(
    x: Any,
    x_hat: Any,
    genes: Sequence[str],
    *,
    n_samples: int = 4,
    n_genes: int = 50,
    seed: int = 0,
    sample_names: Sequence[str] | None = None,
) -> Figure:
    """Observed vs reconstructed values of a few cells over the most variable genes.

    Parameters
    ----------
    x, x_hat
        Cells x genes, the data and its reconstruction in the same space (dense or sparse).
    genes
        Gene names.
    n_samples
        Cells shown (seeded random choice), one panel each.
    n_genes
        Genes shown: those with the largest variance in ``x``.
    seed
        Seed of the choice of cells.
    sample_names
        Names of the cells (titles); row numbers when None.
    """
    if x.shape != x_hat.shape or x.shape[1] != len(genes):
        raise InputError(
            f"x {x.shape}, x_hat {x_hat.shape} and {len(genes)} gene names do not match."
        )
    n, g = x.shape
    n_samples = max(1, min(n_samples, n))
    n_genes = max(1, min(n_genes, g))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=n_samples, replace=False))
    xs = _dense_rows(x, rows)
    hs = _dense_rows(x_hat, rows)
    variance = _column_variance(x)
    cols = np.argsort(-variance, kind="stable")[:n_genes]
    fig = Figure(figsize=(11.0, 1.9 * n_samples + 1.0), layout="constrained")
    axes = fig.subplots(n_samples, 1, sharex=True, squeeze=False)[:, 0]
    pos = np.arange(n_genes)
    for k, ax in enumerate(axes):
        obs, rec = xs[k, cols], hs[k, cols]
        ax.bar(pos, obs, width=0.8, color="#c7c7c7", label="observed")
        ax.plot(pos, rec, "o-", ms=3, lw=1.0, color=GENEAE_COLOR, label="reconstruction")
        name = sample_names[rows[k]] if sample_names is not None else f"cell {rows[k]}"
        r = _corr(xs[k], hs[k])
        ax.set_title(f"{name}   (r over all genes = {r})", loc="left")
        ax.set_ylabel("value")
        if k == 0:  # above the first panel, right, so it never hides values
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.2)
    axes[-1].set_xticks(pos)
    axes[-1].set_xticklabels([str(genes[c]) for c in cols], rotation=90, fontsize=6.5)
    axes[-1].set_xlim(-0.7, n_genes - 0.3)
    return fig


def _dense_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    sub = x[rows]
    return np.asarray(sub.toarray() if sp.issparse(sub) else sub, dtype=np.float64)


def _column_variance(x: Any) -> np.ndarray:
    if sp.issparse(x):
        x = sp.csr_array(x, dtype=np.float64)
        mean = np.asarray(x.mean(axis=0)).ravel()
        return np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    return np.asarray(x, dtype=np.float64).var(axis=0)


def _corr(a: np.ndarray, b: np.ndarray) -> str:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return "n/a"
    return f"{np.corrcoef(a, b)[0, 1]:.2f}"


@_styled
def expression_histograms(
    before: Any,
    after: Any,
    *,
    bins: int = 60,
    titles: Sequence[str] = ("before preprocessing", "after preprocessing"),
) -> Figure:
    """Histograms of all matrix values before and after preprocessing (log counts axis).

    Parameters
    ----------
    before
        Cells x genes input values, or None when unavailable (one panel is drawn).
    after
        Cells x genes preprocessed values (dense or sparse; zeros of sparse matrices count).
    bins
        Number of bins.
    titles
        Panel titles.
    """
    mats = [(m, t) for m, t in zip((before, after), titles, strict=True) if m is not None]
    if not mats:
        raise InputError("expression_histograms needs at least one matrix.")
    fig, axes = _grid(len(mats), 2, (5.4, 3.4))
    for ax, (m, title) in zip(axes, mats, strict=True):
        counts, edges, n_zero, total = _histogram(m, bins)
        ax.stairs(counts, edges, fill=True, color=GENEAE_COLOR, alpha=0.85)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
        ax.set_xlabel("value")
        ax.set_ylabel("number of entries")
        ax.set_title(f"{title}\n{total:,} values, {n_zero / max(total, 1):.0%} zeros")
    return fig


def _histogram(m: Any, bins: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Histogram of every value of ``m`` (implicit zeros of sparse matrices included)."""
    total = int(np.prod(m.shape))
    if sp.issparse(m):
        stored = np.asarray(m.data, dtype=np.float64)
        implicit = total - stored.size
    else:
        stored = np.asarray(m, dtype=np.float64).ravel()
        implicit = 0
    stored = stored[np.isfinite(stored)]
    lo = min(float(stored.min()) if stored.size else 0.0, 0.0)
    hi = max(float(stored.max()) if stored.size else 1.0, 0.0)
    if hi == lo:
        hi = lo + 1.0
    if stored.size and np.all(stored == np.round(stored)):
        # Integer data (counts): bins of whole numbers centred on the integers, so no bin
        # is empty merely because no integer falls into it.
        width = max(1, math.ceil((hi - lo + 1) / bins))
        edges = np.arange(lo - 0.5, hi + width + 0.5, width)
        counts, edges = np.histogram(stored, bins=edges)
    else:
        counts, edges = np.histogram(stored, bins=bins, range=(lo, hi))
    bins = len(counts)
    if implicit:
        counts[min(np.searchsorted(edges, 0.0, side="right") - 1, bins - 1)] += implicit
    n_zero = int(np.sum(stored == 0)) + implicit
    return counts.astype(float), edges, n_zero, total


# -- latent space ---------------------------------------------------------------------------


@_styled
def latent_variance(usage: Mapping[str, Any], *, ax: Axes | None = None) -> Figure:
    """Variance of each latent dimension across cells, with its KL to the prior if known.

    Parameters
    ----------
    usage
        Output of :func:`geneae.evaluate.latent_usage` or any mapping with ``variance`` (per
        dim) and optionally ``kl`` (per dim) and ``active`` (per dim).
    ax
        Axes to draw into. With KL values a twin y-axis (right) is added for them.
    """
    variance = np.asarray(usage["variance"], dtype=np.float64)
    kl = usage.get("kl")
    kl = None if kl is None else np.asarray(kl, dtype=np.float64)
    d = len(variance)
    fig, ax = _new_axes(ax, (max(5.0, 0.45 * d + 2.5), 3.4))
    pos = np.arange(d)
    width = 0.4 if kl is not None else 0.7
    active = np.asarray(usage.get("active", [True] * d), dtype=bool)
    colors = [GENEAE_COLOR if a else "#b3c6de" for a in active]
    ax.bar(pos - (width / 2 if kl is not None else 0), variance, width, color=colors)
    ax.set_ylabel("variance across cells", color=GENEAE_COLOR)
    ax.set_xlabel("latent dimension")
    ax.set_xticks(pos)
    ax.set_xticklabels([str(i) for i in pos], fontsize=7 if d > 30 else 8)
    if kl is not None:
        twin = ax.twinx()
        twin.bar(pos + width / 2, kl, width, color="#d6604d")
        twin.set_ylabel("KL to prior (nats)", color="#d6604d")
        twin.spines["right"].set_visible(True)
    n_active = int(usage.get("n_active", active.sum()))
    criterion = usage.get("criterion")
    shown = {"kl": "KL"}.get(str(criterion), criterion)
    note = f" ({shown} > {usage.get('threshold', 0.01):g})" if criterion else ""
    ax.set_title(f"latent usage: {n_active} of {d} dimensions active{note}")
    return fig


# -- clusters -------------------------------------------------------------------------------


@_styled
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
    row_cats, row_codes = _categories(labels)
    col_cats, col_codes = _categories(clusters)
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
    fig, ax = _new_axes(ax, (min(2.5 + 0.42 * nc, 14.0), min(1.8 + 0.36 * nr, 12.0)))
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


@_styled
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
        cats, codes = _categories(labels)
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
    fig, ax = _new_axes(ax, (11.0, min(1.5 + 0.3 * k, 8.0)))
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


# -- metrics --------------------------------------------------------------------------------


@_styled
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
        if m in ours and m in theirs and _finite(ours[m]) and _finite(theirs[m])
    ]
    if not names:
        fig, ax = _new_axes(None, (5.0, 2.5))
        ax.text(0.5, 0.5, "no metrics to compare", ha="center", va="center")
        ax.set_axis_off()
        return fig
    fig, axes = _grid(len(names), 4, (2.7, 2.4))
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
                _fmt(v),
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


def _finite(v: Any) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except (TypeError, ValueError):
        return False


def _fmt(v: float) -> str:
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3f}"


__all__ = [
    "GENEAE_COLOR",
    "METRIC_LABELS",
    "PCA_COLOR",
    "confusion",
    "embed_2d",
    "embedding_map",
    "expression_histograms",
    "latent_variance",
    "map_pair",
    "metrics_bars",
    "palette",
    "reconstruction_profiles",
    "responsibilities",
    "training_curves",
]
