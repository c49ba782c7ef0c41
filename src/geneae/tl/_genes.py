"""The gene embedding of a run, with its map and the neighbours of the most variable genes.

:func:`gene_embedding` stores a genes x dims embedding (a gene model's latent means, or a
sample model's signed decoder loadings) in ``results.uns["geneae"]["genes"]`` together with
what the report shows: a 2-D map of (a seeded subsample of) the genes in cosine geometry and
the nearest genes of the most variable ones. ``geneae similar-genes`` reads the same slot.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geneae.errors import InputError
from geneae.evaluate.genes import cosine_neighbours
from geneae.tl._common import geneae_uns
from geneae.tl._maps import MapMethod, embed_2d

SOURCES = ("latent", "loadings")


def gene_embedding(
    results: Any,
    *,
    names: Any,
    vectors: Any,
    source: str,
    variance: Any = None,
    labels: Any = None,
    symbols: Any = None,
    n_top: int = 12,
    n_neighbours: int = 10,
    method: MapMethod = "pca",
    max_genes: int = 5000,
    seed: int = 0,
) -> None:
    """Store a gene embedding, its 2-D map and the neighbours of the most variable genes.

    Parameters
    ----------
    results
        The results AnnData; ``uns["geneae"]["genes"]`` is written (see docs/results.md).
    names
        (g,) gene names.
    vectors
        (g, d) embedding: ``source="latent"`` for a gene model's latent means,
        ``"loadings"`` for a sample model's signed decoder loadings.
    source
        ``"latent"`` or ``"loadings"``.
    variance
        (g,) variance of each gene's log expression across the samples (before any
        standardisation), to choose the most variable genes; None or NaN: unknown (genes
        are then taken in order of their embedding norm).
    labels
        (g,) known gene groups, or None.
    symbols
        (g,) another name of each gene (e.g. symbols of Ensembl IDs), or None.
    n_top, n_neighbours
        Genes whose neighbours are listed, and neighbours per gene (cosine).
    method
        Map method (``pca``, ``tsne``, ``umap``) of the unit-length vectors, so that the
        map shows cosine geometry.
    max_genes
        Genes on the map at most (a seeded subsample; the listed genes always included).
    seed
        Seed of the subsample and the map.
    """
    if source not in SOURCES:
        raise InputError(f"source must be one of {SOURCES}, got {source!r}.")
    names = np.asarray([str(n) for n in names], dtype=str)
    w = np.asarray(vectors, dtype=np.float64)
    if w.ndim != 2 or len(w) != len(names):
        raise InputError(
            f"vectors must be genes x dims with one row per name ({len(names)}), got shape "
            f"{w.shape}."
        )
    g = len(names)
    var = np.full(g, np.nan) if variance is None else np.asarray(variance, dtype=np.float64)
    if var.shape != (g,):
        raise InputError(f"variance must have one value per gene ({g}), got shape {var.shape}.")
    norms = np.linalg.norm(w, axis=1)
    # Most variable first; unknown variances after, by embedding norm.
    order = np.lexsort((-norms, np.nan_to_num(-var, nan=np.inf)))
    top = order[: max(0, min(int(n_top), g))]
    nbrs, sims = cosine_neighbours(w, n_neighbours, rows=top)
    plotted = _plotted(g, top, max_genes, seed)
    unit = np.divide(w, norms[:, None], out=np.zeros_like(w), where=norms[:, None] > 0)
    coords = embed_2d(unit[plotted], method, seed=seed) if len(plotted) >= 3 else None
    slot: dict[str, Any] = {
        "names": names,
        "embedding": w.astype(np.float32),
        "source": source,
        "variance": var,
        "top": names[top],
        "neighbours": names[nbrs],
        "similarity": sims.astype(np.float32),
        "plotted": plotted.astype(np.int64),
        "map_method": method,
        "seed": int(seed),
    }
    if coords is not None:
        slot["map"] = coords.astype(np.float32)
    for key, values in (("labels", labels), ("symbols", symbols)):
        if values is None:
            continue
        text = np.asarray([str(x) for x in values], dtype=str)
        if text.shape != (g,):
            raise InputError(f"{key} must have one value per gene ({g}), got {text.shape}.")
        slot[key] = text
    geneae_uns(results)["genes"] = slot


def _plotted(g: int, top: np.ndarray, max_genes: int, seed: int) -> np.ndarray:
    """Sorted indices of the genes on the map: all, or a seeded subsample plus ``top``."""
    if g <= max_genes:
        return np.arange(g)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(g, size=max_genes, replace=False)
    return np.union1d(chosen, top)
