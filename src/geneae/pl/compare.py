"""The figure of ``geneae compare``: every run's latent map, and geneae vs PCA per run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from geneae.errors import InputError
from geneae.pl._style import GENEAE_COLOR, METRIC_LABELS, PCA_COLOR, grid, styled
from geneae.pl.maps import embedding_map

LATENT_MAP = "map_pca_geneae"


def latent_coordinates(results: Any) -> tuple[np.ndarray, str]:
    """2-D coordinates of a run's latent space and what they are.

    ``obsm["map_pca_geneae"]`` (the stored PCA map of the latent space, NaN outside the
    plotted cells) when present, else the first two latent dimensions of ``obsm["X_geneae"]``
    (a single dimension is drawn against zero).
    """
    if LATENT_MAP in results.obsm:
        return np.asarray(results.obsm[LATENT_MAP], dtype=np.float64), "pca"
    if "X_geneae" not in results.obsm:
        raise InputError("the results have neither obsm['map_pca_geneae'] nor obsm['X_geneae'].")
    latent = np.asarray(results.obsm["X_geneae"], dtype=np.float64)
    if latent.ndim != 2 or latent.shape[1] < 1:
        raise InputError(f"obsm['X_geneae'] has shape {latent.shape}.")
    if latent.shape[1] == 1:
        latent = np.column_stack([latent, np.zeros(len(latent))])
    return latent[:, :2], "latent"


def comparison_of(results: Any) -> dict[str, Any]:
    """The ``comparison`` of a run's metrics (``uns["geneae"]["metrics"]``), or ``{}``."""
    text = results.uns.get("geneae", {}).get("metrics")
    try:
        metrics = json.loads(str(text)) if text is not None else {}
    except json.JSONDecodeError:
        return {}
    comparison = metrics.get("comparison") if isinstance(metrics, dict) else None
    return comparison if isinstance(comparison, dict) else {}


@styled
def compare_runs(runs: Mapping[str, Any], *, metrics: Sequence[str] = ("ari", "nmi")) -> Figure:
    """Latent maps of several runs side by side, then bars of geneae vs PCA per run.

    Parameters
    ----------
    runs
        Run name -> that run's results AnnData (see ``docs/results.md``). Each map shows
        ``obsm["map_pca_geneae"]`` (else the first two latent dimensions) coloured by
        ``obs["label"]`` when present.
    metrics
        Metrics of ``uns["geneae"]["metrics"]``'s comparison drawn as bars (geneae solid,
        PCA of the same dimension light); those no run has are left out.

    Returns
    -------
    Figure
        One panel per run and a last panel of bars (which says so when no run has the
        metrics, e.g. without labels).
    """
    if not runs:
        raise InputError("compare_runs needs at least one run.")
    names = list(runs)
    fig, axes = grid(len(names) + 1, 4, (4.0, 3.8))
    for i, (ax, name) in enumerate(zip(axes, names, strict=False)):
        results = runs[name]
        coords, kind = latent_coordinates(results)
        labels = results.obs["label"] if "label" in results.obs else None
        embedding_map(
            coords,
            labels,
            title=name,
            ax=ax,
            method="pca" if kind == "pca" else None,
            legend=i == len(names) - 1,
        )
        if kind == "latent":
            ax.set_xlabel("latent 1")
            ax.set_ylabel("latent 2")
    ax = axes[-1]
    comparisons = [comparison_of(runs[name]) for name in names]

    def value(comparison: dict[str, Any], side: str, metric: str) -> float:
        v = comparison.get(side, {}).get(metric) if isinstance(comparison.get(side), dict) else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan

    shown = [
        m
        for m in metrics
        if any(np.isfinite(value(c, side, m)) for c in comparisons for side in ("geneae", "pca"))
    ]
    if not shown:
        ax.text(
            0.5,
            0.5,
            f"no {' / '.join(METRIC_LABELS.get(m, m) for m in metrics)} in the runs' metrics",
            ha="center",
            va="center",
            transform=ax.transAxes,
            wrap=True,
        )
        ax.set_axis_off()
        return fig
    xs = np.arange(len(names))
    width = 0.8 / (2 * len(shown))
    for j, metric in enumerate(shown):
        label = METRIC_LABELS.get(metric, metric)
        for k, (side, color, who) in enumerate(
            (("geneae", GENEAE_COLOR, "geneae"), ("pca", PCA_COLOR, "PCA"))
        ):
            heights = [value(c, side, metric) for c in comparisons]
            ax.bar(
                xs + (2 * j + k) * width - 0.4 + width / 2,
                heights,
                width,
                color=color,
                alpha=1.0 if j == 0 else 0.55,
                label=f"{who} {label}",
            )
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    ax.axhline(0, color="0.3", lw=0.6)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_title("geneae vs PCA (same dimension)")
    return fig
