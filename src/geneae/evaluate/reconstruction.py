"""Reconstruction quality: squared errors and Pearson correlations per gene and per cell.

Everything streams over row chunks in float64, so a 100k-cell matrix never needs more than a
few dense chunks besides the inputs themselves, and sparse inputs are densified a chunk at a
time. Several reconstructions of one matrix (the autoencoder's and PCA's) are scored in one
pass over it (:func:`reconstruction_errors_of`): the observed side's chunk, its centring and
its sums are made once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

import numpy as np

from geneae.evaluate._arrays import Matrix, as_2d, check_same_shape, dense, row_chunks

RECONSTRUCTION_METRICS = ("mse", "masked_mse", "pearson_gene", "pearson_cell")

#: Rows per chunk: a chunk's few float64 copies stay in the CPU's cache between passes
#: (256 x 2,000 genes: 4 MB each).
CACHE_ROWS = 256

Scores = dict[str, float]
Arrays = dict[str, np.ndarray]


@overload
def reconstruction_errors(
    x: Matrix, x_hat: Matrix, *, return_arrays: Literal[False] = ...
) -> Scores: ...


@overload
def reconstruction_errors(
    x: Matrix, x_hat: Matrix, *, return_arrays: Literal[True]
) -> tuple[Scores, Arrays]: ...


def reconstruction_errors(
    x: Matrix, x_hat: Matrix, *, return_arrays: bool = False
) -> Scores | tuple[Scores, Arrays]:
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
    scores, arrays = reconstruction_errors_of(x, [x_hat])[0]
    return (scores, arrays) if return_arrays else scores


def reconstruction_errors_of(
    x: Matrix, reconstructions: Sequence[Matrix]
) -> list[tuple[Scores, Arrays]]:
    """:func:`reconstruction_errors` (scores and arrays) of each reconstruction of ``x``.

    One pass over ``x`` serves them all.
    """
    x = as_2d(x, "x")
    recs = [as_2d(r, "x_hat") for r in reconstructions]
    for r in recs:
        check_same_shape(x, r, ("x", "x_hat"))
    n, g = x.shape
    observed = _Sums(n, g, np.asarray(x.mean(axis=0), dtype=np.float64).ravel())
    sides = [_Sums(n, g, np.asarray(r.mean(axis=0), dtype=np.float64).ravel()) for r in recs]
    errors = [_Errors(n, g) for _ in recs]
    for rows in row_chunks(n, CACHE_ROWS):
        xc = dense(x[rows], copy=True)
        nonzero = (xc != 0).astype(np.float64)
        hcs = [dense(r[rows], copy=True) for r in recs]
        for hc, err in zip(hcs, errors, strict=True):
            err.add(xc, hc, nonzero, rows)
        # Then each chunk centred: by rows (a copy) for the cells' r, in place by genes.
        x_rows = observed.add(xc, rows)
        for hc, side, err in zip(hcs, sides, errors, strict=True):
            err.add_products(x_rows, side.add(hc, rows), xc, hc, rows)
    return [err.result(observed, side) for side, err in zip(sides, errors, strict=True)]


@dataclass
class _Sums:
    """One matrix's own sums: extremes and centred sums of squares, per gene and per cell."""

    n: int
    g: int
    mean: np.ndarray  # per gene
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)
    ss_gene: np.ndarray = field(init=False)
    ss_cell: np.ndarray = field(init=False)
    constant_cell: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.lo, self.hi = np.full(self.g, np.inf), np.full(self.g, -np.inf)
        self.ss_gene = np.zeros(self.g)
        self.ss_cell = np.empty(self.n)
        self.constant_cell = np.empty(self.n, dtype=bool)

    def add(self, c: np.ndarray, rows: slice) -> np.ndarray:
        """Take in chunk ``c`` of ``rows``; return it centred by rows (a new array).

        ``c`` itself is left centred by genes, for the cross products over cells.
        """
        self.lo = np.minimum(self.lo, c.min(axis=0))
        self.hi = np.maximum(self.hi, c.max(axis=0))
        if self.g:
            self.constant_cell[rows] = c.max(axis=1) == c.min(axis=1)
        else:
            self.constant_cell[rows] = True
        by_row = c - c.mean(axis=1, keepdims=True)
        self.ss_cell[rows] = np.einsum("ij,ij->i", by_row, by_row)
        c -= self.mean
        self.ss_gene += np.einsum("ij,ij->j", c, c)
        return by_row

    @property
    def constant_gene(self) -> np.ndarray:
        return self.hi == self.lo


@dataclass
class _Errors:
    """One reconstruction's squared errors and cross products with the observed matrix."""

    n: int
    g: int
    sq_gene: np.ndarray = field(init=False)
    sq_cell: np.ndarray = field(init=False)
    cross_gene: np.ndarray = field(init=False)
    cross_cell: np.ndarray = field(init=False)
    masked: float = 0.0
    nnz: int = 0

    def __post_init__(self) -> None:
        self.sq_gene = np.zeros(self.g)
        self.sq_cell = np.empty(self.n)
        self.cross_gene = np.zeros(self.g)
        self.cross_cell = np.empty(self.n)

    def add(self, xc: np.ndarray, hc: np.ndarray, nonzero: np.ndarray, rows: slice) -> None:
        diff = xc - hc
        np.square(diff, out=diff)
        self.sq_gene += diff.sum(axis=0)
        self.sq_cell[rows] = diff.mean(axis=1) if self.g else np.nan
        self.masked += float(np.einsum("ij,ij->", diff, nonzero))
        self.nnz += int(nonzero.sum())

    def add_products(
        self,
        x_rows: np.ndarray,
        h_rows: np.ndarray,
        x_genes: np.ndarray,
        h_genes: np.ndarray,
        rows: slice,
    ) -> None:
        self.cross_cell[rows] = np.einsum("ij,ij->i", x_rows, h_rows)
        self.cross_gene += np.einsum("ij,ij->j", x_genes, h_genes)

    def result(self, observed: _Sums, side: _Sums) -> tuple[Scores, Arrays]:
        n, g = self.n, self.g
        r_gene = _safe_r(
            self.cross_gene,
            observed.ss_gene,
            side.ss_gene,
            constant_x=observed.constant_gene,
            constant_h=side.constant_gene,
        )
        r_cell = _safe_r(
            self.cross_cell,
            observed.ss_cell,
            side.ss_cell,
            constant_x=observed.constant_cell,
            constant_h=side.constant_cell,
        )
        scores = {
            "mse": float(self.sq_gene.sum() / (n * g)) if n * g else float("nan"),
            "masked_mse": self.masked / self.nnz if self.nnz else float("nan"),
            "pearson_gene": _nanmean(r_gene),
            "pearson_cell": _nanmean(r_cell),
        }
        arrays = {
            "pearson_gene": r_gene,
            "pearson_cell": r_cell,
            "mse_gene": self.sq_gene / max(n, 1),
            "mse_cell": self.sq_cell,
        }
        return scores, arrays


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
