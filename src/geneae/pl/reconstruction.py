"""Reconstruction profiles and value histograms, from the summaries :mod:`geneae.tl` stores.

Both functions take the stored summary (``uns["geneae"]["profiles"]`` /
``uns["geneae"]["histograms"]``) or the results AnnData holding it; neither sees a matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from geneae.errors import InputError
from geneae.pl._style import GENEAE_COLOR, grid, styled

HISTOGRAM_TITLES = {"raw": "before preprocessing", "input": "after preprocessing"}


def _summary(source: Any, key: str) -> Mapping[str, Any]:
    """``source`` itself, or ``source.uns["geneae"][key]`` for a results AnnData."""
    if isinstance(source, Mapping):
        return source
    uns = getattr(source, "uns", None)
    stored = uns.get("geneae", {}).get(key) if isinstance(uns, Mapping) else None
    if not isinstance(stored, Mapping):
        raise InputError(f"no uns['geneae'][{key!r}] in the results; run geneae.tl.{key} first.")
    return stored


@styled
def reconstruction_profiles(profiles: Any) -> Figure:
    """Observed vs reconstructed values of a few cells over the most variable genes.

    Parameters
    ----------
    profiles
        The output of :func:`geneae.tl.profiles` (``uns["geneae"]["profiles"]``: ``cells``,
        ``genes``, ``observed``, ``reconstructed``, optionally ``r``) or a results AnnData
        holding it.

    Returns
    -------
    Figure
        One panel per cell, grey bars observed, blue line reconstruction; the title gives
        the correlation over all genes when ``r`` is stored.
    """
    p = _summary(profiles, "profiles")
    missing = [k for k in ("cells", "genes", "observed", "reconstructed") if k not in p]
    if missing:
        raise InputError(f"the profiles lack {', '.join(missing)}.")
    cells = [str(c) for c in np.atleast_1d(p["cells"])]
    genes = [str(g) for g in np.atleast_1d(p["genes"])]
    observed = np.asarray(p["observed"], dtype=np.float64)
    reconstructed = np.asarray(p["reconstructed"], dtype=np.float64)
    shape = (len(cells), len(genes))
    if observed.shape != shape or reconstructed.shape != shape:
        raise InputError(
            f"profiles of {shape[0]} cells x {shape[1]} genes, but observed {observed.shape} "
            f"and reconstructed {reconstructed.shape}."
        )
    if not cells or not genes:
        raise InputError("the profiles hold no cell or no gene.")
    r = np.asarray(p["r"], dtype=np.float64).ravel() if "r" in p else None
    n_cells, n_genes = shape
    fig = Figure(figsize=(11.0, 1.9 * n_cells + 1.0), layout="constrained")
    axes = fig.subplots(n_cells, 1, sharex=True, squeeze=False)[:, 0]
    pos = np.arange(n_genes)
    for k, ax in enumerate(axes):
        ax.bar(pos, observed[k], width=0.8, color="#c7c7c7", label="observed")
        ax.plot(
            pos, reconstructed[k], "o-", ms=3, lw=1.0, color=GENEAE_COLOR, label="reconstruction"
        )
        title = cells[k]
        if r is not None and k < len(r):
            title += f"   (r over all genes = {r[k]:.2f})" if np.isfinite(r[k]) else "   (r n/a)"
        ax.set_title(title, loc="left")
        ax.set_ylabel("value")
        if k == 0:  # above the first panel, right, so it never hides values
            ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, borderaxespad=0.2)
    axes[-1].set_xticks(pos)
    axes[-1].set_xticklabels(genes, rotation=90, fontsize=6.5)
    axes[-1].set_xlim(-0.7, n_genes - 0.3)
    return fig


@styled
def expression_histograms(histograms: Any) -> Figure:
    """Histograms of all matrix values before and after preprocessing (log counts axis).

    Parameters
    ----------
    histograms
        The output of :func:`geneae.tl.histograms` (``uns["geneae"]["histograms"]``: per
        matrix ``raw`` and / or ``input`` a dict of ``edges``, ``counts``, ``n_zero``,
        ``n_total``) or a results AnnData holding it. One panel per matrix present, raw
        first.
    """
    h = _summary(histograms, "histograms")
    names = [k for k in ("raw", "input") if isinstance(h.get(k), Mapping)]
    names += [k for k in h if k not in names and isinstance(h[k], Mapping)]
    if not names:
        raise InputError("expression_histograms needs at least one stored histogram.")
    fig, axes = grid(len(names), 2, (5.4, 3.4))
    for ax, name in zip(axes, names, strict=True):
        item = h[name]
        counts = np.asarray(item["counts"], dtype=np.float64)
        edges = np.asarray(item["edges"], dtype=np.float64)
        if edges.shape != (len(counts) + 1,):
            raise InputError(f"histogram {name!r}: {len(counts)} counts but {len(edges)} edges.")
        total, n_zero = int(item["n_total"]), int(item["n_zero"])
        ax.stairs(counts, edges, fill=True, color=GENEAE_COLOR, alpha=0.85)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
        ax.set_xlabel("value")
        ax.set_ylabel("number of entries")
        title = HISTOGRAM_TITLES.get(name, name)
        ax.set_title(f"{title}\n{total:,} values, {n_zero / max(total, 1):.0%} zeros")
    return fig
