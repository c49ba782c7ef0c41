"""The scale that puts the standardised term beside the likelihood (see module.heads).

The standardised term scores a z-scored-like input with a Gaussian whose variance is
learned per gene: a model that knows nothing of a sample (the null model) pays about one
unit of deviance per gene and sample. The likelihood's own null deviance per sample
depends on the data: for counts it grows with the sequencing depth (on the development
data from ~100 per cell for shallow worm neurons to ~900 for 10x PBMC), for squared error
with the input's variance. :func:`balance_scale` is that null deviance per sample divided
by the number of genes, so that ``model.standardized_weight`` means one ratio between the
two terms on every dataset (without it, one weight that helps deep data wrecks shallow
data: BENCHMARKS.md, issue 14).

numpy and scipy only (no torch); the count data are read in row blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from geneae.likelihoods import LIKELIHOODS

# Inverse dispersions of the null model are kept in this range (method of moments can give
# negative or huge values for nearly Poisson or nearly constant genes).
THETA_MIN, THETA_MAX = 1e-2, 1e4


def balance_scale(likelihood: str, x: Any, counts: Any | None = None) -> float:
    """The main term's null deviance per sample over the number of genes.

    Parameters
    ----------
    likelihood
        ``model.likelihood`` (resolved): count likelihoods use the NB null deviance of
        ``counts``, ``mse`` twice the summed variance of ``x`` (the deviance of a Gaussian
        of variance 1/2, which squared error is up to a constant).
    x
        Samples x genes model input (dense or sparse).
    counts
        Samples x genes raw counts, for count likelihoods.
    """
    n_genes = max(int(x.shape[1]), 1)
    if LIKELIHOODS[likelihood].models_counts:
        if counts is None:
            raise ValueError(f"likelihood {likelihood!r} needs the raw counts")
        return float(nb_null_deviance(counts).sum()) / n_genes
    return 2.0 * float(column_moments(x)[1].sum()) / n_genes


def column_moments(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """(genes,) mean and population variance of each column of a dense or sparse matrix."""
    if sp.issparse(x):
        x = sp.csr_matrix(x, dtype=np.float64)
        mean = np.asarray(x.mean(0)).ravel()
        return mean, np.maximum(np.asarray(x.multiply(x).mean(0)).ravel() - mean**2, 0.0)
    # Two passes over float64 blocks of rows: a float64 copy of the whole matrix (and the
    # centred temporary of .var) tripled the in-memory route's peak on 100k x 2,000.
    n = max(int(x.shape[0]), 1)
    total = np.zeros(x.shape[1])
    for _, part in _row_blocks(x, 4096):
        total += part.sum(0)
    mean = total / n
    squares = np.zeros(x.shape[1])
    for _, part in _row_blocks(x, 4096):
        squares += ((part - mean) ** 2).sum(0)
    return mean, squares / n


def nb_unit_deviance(x: np.ndarray, mu: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``2 [log NB(x; x, theta) - log NB(x; mu, theta)]``, element-wise (mean parametrisation)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x_term = np.where(x > 0, x * np.log(x / mu), 0.0)
    return 2.0 * (x_term - (x + theta) * np.log((x + theta) / (mu + theta)))


def nb_null_deviance(counts: Any, block: int = 2048) -> np.ndarray:
    """(genes,) mean NB deviance per sample of the constant-proportion null model.

    The null model gives cell ``c`` and gene ``g`` the mean ``mu_cg = l_c p_g``, ``l_c`` the
    cell's total over these genes and ``p_g = sum_c x_cg / sum_c l_c``, and gene ``g`` the
    inverse dispersion ``theta_g`` of the method of moments (``E[(x - mu)^2 - x] =
    mu^2 / theta``), clipped to [1e-2, 1e4]; see :func:`nb_unit_deviance`.
    """
    library, proportions, theta = nb_null_model(counts, block)
    total = np.zeros_like(proportions)
    for start, x in _row_blocks(counts, block):
        mu = library[start : start + len(x), None] * proportions
        total += nb_unit_deviance(x, mu, theta).sum(0)
    return total / max(int(counts.shape[0]), 1)


def nb_null_model(counts: Any, block: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(library per cell, proportion per gene, theta per gene)`` of the null model."""
    library = np.asarray(counts.sum(1), dtype=np.float64).ravel()
    proportions = np.asarray(counts.sum(0), dtype=np.float64).ravel() / max(library.sum(), 1.0)
    excess = np.zeros_like(proportions)
    mean_square = np.zeros_like(proportions)
    for start, x in _row_blocks(counts, block):
        mu = library[start : start + len(x), None] * proportions
        excess += ((x - mu) ** 2 - x).sum(0)
        mean_square += (mu**2).sum(0)
    dispersion = excess / np.maximum(mean_square, 1e-300)
    theta = np.clip(1.0 / np.maximum(dispersion, 1.0 / THETA_MAX), THETA_MIN, THETA_MAX)
    return library, proportions, theta


def _row_blocks(matrix: Any, block: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, dense float64 rows)`` of a dense or sparse matrix, ``block`` rows at a time."""
    csr = sp.csr_matrix(matrix) if sp.issparse(matrix) else None
    for start in range(0, int(matrix.shape[0]), block):
        part = (
            csr[start : start + block].toarray()
            if csr is not None
            else matrix[start : start + block]
        )
        yield start, np.asarray(part, dtype=np.float64)
