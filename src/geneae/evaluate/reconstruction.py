"""Reconstruction quality: squared errors and Pearson correlations per gene and per cell.

Everything streams over row chunks in float64, so a 100k-cell matrix never needs more than one
dense chunk besides the inputs themselves, and sparse inputs are densified a chunk at a time.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from geneae.evaluate._arrays import Matrix, as_2d, check_same_shape, dense, row_chunks

RECONSTRUCTION_METRICS = ("mse", "masked_mse", "pearson_gene", "pearson_cell")


@overload
def reconstruction_errors(
    x: Matrix, x_hat: Matrix, *, return_arrays: Literal[False] = ...
) -> dict[str, float]: ...


@overload
def reconstruction_errors(
    x: Matrix, x_hat: Matrix, *, return_arrays: Literal[True]
) -> tuple[dict[str, float], dict[str, np.ndarray]]: ...


def reconstruction_errors(
    x: Matrix, x_hat: Matrix, *, return_arrays: bool = False
) -> dict[str, float] | tuple[dict[str, float], dict[str, np.ndarray]]:
    """Compare a matrix with its reconstruction.

    Parameters
    ----------
    x
        Cells x genes, dense or sparse: the data the model saw (its input space).
    x_hat
        Reconstruction of ``x`` in the same space and shape (dense or sparse).
    return_arrays
        Also return the per-gene and per-cell arrays.

    Returns
    -------
    scores
        ``mse`` (mean over all entries), ``masked_mse`` (mean over the non-zero entries of
        ``x`` only, so that a model is not rewarded for predicting the many zeros; NaN when
        ``x`` has no non-zero entry), ``pearson_gene`` (mean over genes of the Pearson r
        between a gene's observed and reconstructed values across cells) and
        ``pearson_cell`` (the same per cell, across genes).
    arrays
        Only with ``return_arrays=True``: ``pearson_gene`` (genes,), ``pearson_cell``
        (cells,), ``mse_gene`` (genes,), ``mse_cell`` (cells,).

    Notes
    -----
    A gene (or cell) whose observed values are constant has no correlation to speak of: its
    r is NaN and it is left out of the mean. A gene that varies in ``x`` but is reconstructed
    as a constant gets r = 0 rather than being dropped, so that a model that gives up on
    genes is not flattered.
    """
    x = as_2d(x, "x")
    x_hat = as_2d(x_hat, "x_hat")
    check_same_shape(x, x_hat, ("x", "x_hat"))
    n, g = x.shape

    # Pass 1: per-gene means (sparse .mean keeps the matrix sparse).
    mean_x = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
    mean_h = np.asarray(x_hat.mean(axis=0), dtype=np.float64).ravel()

    sxx = np.zeros(g)
    shh = np.zeros(g)
    sxh = np.zeros(g)
    sq_gene = np.zeros(g)
    # Exact constancy test: a column is constant iff its max equals its min (a variance
    # threshold would misjudge genes with tiny but real variation).
    min_x, max_x = np.full(g, np.inf), np.full(g, -np.inf)
    min_h, max_h = np.full(g, np.inf), np.full(g, -np.inf)
    sq_cell = np.empty(n)
    r_cell = np.empty(n)
    masked_sum = 0.0
    nnz = 0
    for rows in row_chunks(n):
        # Fresh copies: they are centred in place below and must not alias the caller's data.
        xc = dense(x[rows], copy=True)
        hc = dense(x_hat[rows], copy=True)
        diff2 = (xc - hc) ** 2
        sq_gene += diff2.sum(axis=0)
        sq_cell[rows] = diff2.mean(axis=1)
        nonzero = xc != 0
        masked_sum += float(diff2[nonzero].sum())
        nnz += int(nonzero.sum())
        min_x, max_x = np.minimum(min_x, xc.min(axis=0)), np.maximum(max_x, xc.max(axis=0))
        min_h, max_h = np.minimum(min_h, hc.min(axis=0)), np.maximum(max_h, hc.max(axis=0))
        r_cell[rows] = _pearson_rows(xc, hc)
        xc -= mean_x
        hc -= mean_h
        sxx += (xc * xc).sum(axis=0)
        shh += (hc * hc).sum(axis=0)
        sxh += (xc * hc).sum(axis=0)

    r_gene = _safe_r(sxh, sxx, shh, constant_x=max_x == min_x, constant_h=max_h == min_h)
    scores = {
        "mse": float(sq_gene.sum() / (n * g)) if n * g else float("nan"),
        "masked_mse": masked_sum / nnz if nnz else float("nan"),
        "pearson_gene": _nanmean(r_gene),
        "pearson_cell": _nanmean(r_cell),
    }
    if not return_arrays:
        return scores
    arrays = {
        "pearson_gene": r_gene,
        "pearson_cell": r_cell,
        "mse_gene": sq_gene / max(n, 1),
        "mse_cell": sq_cell,
    }
    return scores, arrays


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (same NaN / 0 rules)."""
    constant_a = a.max(axis=1) == a.min(axis=1) if a.shape[1] else np.ones(len(a), bool)
    constant_b = b.max(axis=1) == b.min(axis=1) if b.shape[1] else np.ones(len(b), bool)
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    return _safe_r(
        (ac * bc).sum(axis=1),
        (ac * ac).sum(axis=1),
        (bc * bc).sum(axis=1),
        constant_x=constant_a,
        constant_h=constant_b,
    )


def _safe_r(
    sxy: np.ndarray,
    sxx: np.ndarray,
    syy: np.ndarray,
    *,
    constant_x: np.ndarray,
    constant_h: np.ndarray,
) -> np.ndarray:
    r = np.full(sxy.shape, np.nan)
    ok = ~constant_x & ~constant_h
    r[ok] = sxy[ok] / np.sqrt(sxx[ok] * syy[ok])
    r[~constant_x & constant_h] = 0.0
    # Rounding can push |r| a hair above 1 for near-perfect reconstructions.
    return np.clip(r, -1.0, 1.0)


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
