"""What the model learned about genes: top genes per latent dimension and gene neighbours.

``loadings`` is a genes x latent dims matrix computed by the model code: the decoder weights
of a linear decoder, or the mean absolute Jacobian of the decoder output with respect to the
latent code for deep decoders. Nothing here needs torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from geneae.errors import InputError


def top_genes(loadings: Any, genes: Sequence[str], n: int = 10) -> pd.DataFrame:
    """The ``n`` genes with the largest absolute loading on each latent dimension.

    Parameters
    ----------
    loadings
        Genes x latent dims.
    genes
        Gene names, one per row of ``loadings``.
    n
        Genes per dimension (fewer when there are fewer genes).

    Returns
    -------
    pandas.DataFrame
        Long format, one row per (dimension, rank): columns ``dim`` (0-based), ``rank``
        (1 = largest absolute loading), ``gene`` and ``loading`` (signed).
    """
    w = _check(loadings, genes)
    n = max(0, min(int(n), w.shape[0]))
    names = np.asarray(list(genes), dtype=object)
    rows = []
    for dim in range(w.shape[1]):
        # Stable sort on -|w| keeps gene order for ties, so results are reproducible.
        order = np.argsort(-np.abs(w[:, dim]), kind="stable")[:n]
        for rank, i in enumerate(order, start=1):
            rows.append((dim, rank, str(names[i]), float(w[i, dim])))
    return pd.DataFrame(rows, columns=["dim", "rank", "gene", "loading"])


def top_similar_genes(
    gene: str, n: int = 10, *, loadings: Any, genes: Sequence[str]
) -> pd.DataFrame:
    """Genes whose loading vectors point the same way as ``gene``'s in the learned space.

    Parameters
    ----------
    gene
        A gene name in ``genes`` (in another case where that names one gene only).
    n
        Number of neighbours returned (the gene itself excluded).
    loadings, genes
        As in :func:`top_genes`.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene`` and ``similarity`` (cosine, in [-1, 1]), most similar first. Genes
        with an all-zero loading vector have similarity NaN and come last.
    """
    w = _check(loadings, genes)
    names = [str(g) for g in genes]
    same_but_case = [k for k, name in enumerate(names) if name.lower() == gene.lower()]
    try:
        i = names.index(gene)
    except ValueError:
        if len(same_but_case) == 1:  # cd3e for CD3E: one gene it can be
            i = same_but_case[0]
        else:
            raise _not_a_gene(gene, names) from None
    norms = np.linalg.norm(w, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = (w @ w[i]) / (norms * norms[i])
    sim[i] = np.nan  # the gene itself is not its own neighbour
    order = [j for j in np.argsort(-np.nan_to_num(sim, nan=-np.inf), kind="stable") if j != i]
    order = order[: max(0, int(n))]
    return pd.DataFrame({"gene": [names[j] for j in order], "similarity": sim[order]})


def _not_a_gene(gene: str, names: list[str]) -> InputError:
    lower = {name.lower(): name for name in names}
    close = [lower[c] for c in difflib.get_close_matches(gene.lower(), list(lower), n=3)]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return InputError(f"gene {gene!r} is not among the model's {len(names)} genes.{hint}")


def cosine_neighbours(
    embedding: Any, k: int = 20, *, rows: Any = None, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows by cosine similarity, itself left out.

    Parameters
    ----------
    embedding
        Genes x dims (a gene embedding or signed loadings).
    k
        Neighbours per row (lowered to n - 1).
    rows
        Indices of the rows whose neighbours to find (None: all); neighbours are always
        searched among all rows.
    block
        Rows compared at a time: memory stays at ``block`` x n similarities.

    Returns
    -------
    indices, similarities
        (len(rows), k) int64 and float64, most similar first (ties: lower index first).
        A row with an all-zero vector has similarity NaN to everything and is listed as a
        neighbour only after every row with a defined similarity.
    """
    w = np.asarray(embedding, dtype=np.float64)
    if w.ndim != 2:
        raise InputError(f"embedding must be genes x dims, got shape {w.shape}.")
    n = len(w)
    queries = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64).ravel()
    if queries.size and (queries.min() < 0 or queries.max() >= n):
        raise InputError(f"rows must be indices in [0, {n}), got {queries.min()}..{queries.max()}.")
    k = max(0, min(int(k), n - 1))
    norms = np.linalg.norm(w, axis=1)
    unit = np.divide(w, norms[:, None], out=np.zeros_like(w), where=norms[:, None] > 0)
    zero = norms == 0
    indices = np.zeros((len(queries), k), dtype=np.int64)
    sims = np.zeros((len(queries), k), dtype=np.float64)
    for start in range(0, len(queries), block):
        q = queries[start : start + block]
        local = np.arange(len(q))
        s = unit[q] @ unit.T
        s[:, zero] = np.nan
        s[zero[q]] = np.nan
        s[local, q] = np.nan  # not its own neighbour
        # A stable sort of -similarity: ties keep row order, so results are reproducible.
        order = np.argsort(-np.nan_to_num(s, nan=-np.inf), axis=1, kind="stable")
        order = _self_last(order, q)[:, :k]
        indices[start : start + len(q)] = order
        sims[start : start + len(q)] = np.take_along_axis(s, order, axis=1)
    return indices, sims


def _self_last(order: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``order`` with each row's own index moved to the end (it ties with NaN rows)."""
    is_self = order == rows[:, None]
    keep = order[~is_self].reshape(len(order), -1)
    return np.concatenate([keep, rows[:, None]], axis=1)


def _check(loadings: Any, genes: Sequence[str]) -> np.ndarray:
    w = np.asarray(loadings, dtype=np.float64)
    if w.ndim != 2:
        raise InputError(f"loadings must be genes x latent dims, got shape {w.shape}.")
    if len(genes) != w.shape[0]:
        raise InputError(
            f"{len(genes)} gene names for {w.shape[0]} loading rows; loadings must be "
            "genes x latent dims (transpose decoder weights stored as dims x genes)."
        )
    return w
