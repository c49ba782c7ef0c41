"""Small summaries of large matrices, stored so the report never needs the matrices.

:func:`histograms` keeps the distribution of every value of the raw and the preprocessed
matrix; :func:`profiles` keeps the observed and reconstructed values of a few cells over the
most variable genes. Both write into ``results.uns["geneae"]`` (see ``docs/results.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from geneae.errors import InputError
from geneae.tl._common import as_matrix, column_variance, dense_rows, geneae_uns


def histograms(results: Any, *, raw: Any = None, input: Any, bins: int = 60) -> None:
    """Histograms of every value of the raw and the preprocessed (model input) matrix.

    Parameters
    ----------
    results
        The results AnnData; ``uns["geneae"]["histograms"]`` is written: per matrix
        (``"raw"`` when given, ``"input"``) a dict with ``edges`` ((b+1,) float64),
        ``counts`` ((b,) int64), ``n_zero`` (int) and ``n_total`` (int, all entries).
    raw
        Cells x genes values as read (before preprocessing), dense or sparse, or None.
        Any number of genes (the file's genes, not necessarily the model's).
    input
        Cells x genes preprocessed values (the model input), dense or sparse.
    bins
        Number of bins (integer data get bins of whole numbers, at most this many).

    Notes
    -----
    Implicit zeros of sparse matrices are counted. Non-finite values are left out of the
    bins (but counted in ``n_total``).
    """
    if bins < 1:
        raise InputError(f"bins must be >= 1, got {bins}.")
    out: dict[str, Any] = {}
    for name, matrix in (("raw", raw), ("input", input)):
        if matrix is None:
            continue
        m = as_matrix(matrix, name, results.n_obs)
        counts, edges, n_zero, total = _histogram(m, bins)
        out[name] = {"edges": edges, "counts": counts, "n_zero": n_zero, "n_total": total}
    if "input" not in out:
        raise InputError("tl.histograms needs the preprocessed matrix (input=...).")
    geneae_uns(results)["histograms"] = out


def _histogram(m: Any, bins: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Counts (int64), edges (float64), zeros and total of every value of ``m``."""
    total = int(np.prod(m.shape))
    if sp.issparse(m):
        stored = np.asarray(m.data)
        implicit = total - stored.size
    else:
        stored = np.asarray(m).ravel()  # float32 stays float32: no copy of a large matrix
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
        edges = np.arange(lo - 0.5, hi + width + 0.5, width, dtype=np.float64)
        counts, edges = np.histogram(stored, bins=edges)
    else:
        counts, edges = np.histogram(stored, bins=bins, range=(lo, hi))
    counts = counts.astype(np.int64)
    if implicit:
        counts[min(np.searchsorted(edges, 0.0, side="right") - 1, len(counts) - 1)] += implicit
    n_zero = int(np.sum(stored == 0)) + implicit
    return counts, np.asarray(edges, dtype=np.float64), n_zero, total


def profiles(
    results: Any,
    *,
    input: Any,
    reconstruction: Any,
    n_cells: int = 4,
    n_genes: int = 50,
    seed: int = 0,
) -> None:
    """Observed and reconstructed values of a few cells over the most variable genes.

    Parameters
    ----------
    results
        The results AnnData; ``uns["geneae"]["profiles"]`` is written: ``cells``
        ((c,) str, obs names), ``genes`` ((k,) str, var names, most variable first),
        ``observed`` and ``reconstructed`` ((c, k) float32) and ``r`` ((c,) float64, the
        Pearson correlation of observed and reconstructed values of each cell over all
        genes; NaN when a side is constant).
    input
        Cells x genes model input (dense or sparse), in the model's gene space.
    reconstruction
        The model's reconstruction of ``input``, same shape and space.
    n_cells
        Cells kept (a seeded random choice, in row order).
    n_genes
        Genes kept: the largest variance of ``input`` over all cells.
    seed
        Seed of the choice of cells.
    """
    n, g = results.n_obs, results.n_vars
    x = as_matrix(input, "input", n, g)
    x_hat = as_matrix(reconstruction, "reconstruction", n, g)
    if n < 1 or g < 1:
        raise InputError(f"tl.profiles needs at least one cell and one gene, got {n} x {g}.")
    n_cells = max(1, min(int(n_cells), n))
    n_genes = max(1, min(int(n_genes), g))
    rows = np.sort(np.random.default_rng(seed).choice(n, size=n_cells, replace=False))
    cols = np.argsort(-column_variance(x), kind="stable")[:n_genes]
    xs, hs = dense_rows(x, rows), dense_rows(x_hat, rows)
    geneae_uns(results)["profiles"] = {
        "cells": np.asarray(results.obs_names[rows], dtype=str),
        "genes": np.asarray(results.var_names[cols], dtype=str),
        "observed": xs[:, cols].astype(np.float32),
        "reconstructed": hs[:, cols].astype(np.float32),
        "r": np.array([_pearson(a, b) for a, b in zip(xs, hs, strict=True)]),
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
