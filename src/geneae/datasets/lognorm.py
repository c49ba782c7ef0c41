"""Single-cell data as the classic homework hands it out: log-normalised, no counts left."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.errors import ConfigError

TARGET_SUM = 1e4  # counts per cell after library-size normalisation (as scanpy's default)
MEDIAN_LIBRARY = 500.0  # median counts per cell before normalisation
MARKER_FOLD = (3.0, 6.0)  # range of a marker gene's fold change in its own cell type


def lognorm_clusters(
    n_cells: int = 5000,
    n_genes: int = 1000,
    n_clusters: int = 3,
    seed: int = 0,
    sparse: bool = True,
) -> ad.AnnData:
    """Cells of a few types, already library-size normalised and log1p'd (no raw counts).

    Counts are drawn first: every gene has a log-normal base expression (sd 2 on the log
    scale); each cell type raises its own block of marker genes (a tenth of the genes per
    type, fewer with more than ten types) 3- to 6-fold; cells get log-normal library sizes
    (median 500, sd 0.5 on the log scale) and negative-binomial counts with gene-wise
    inverse dispersion (log-normal around 3). About four in five values are zero. A cell
    left with no count at all gets one count in its most expressed gene (it could not be
    normalised otherwise). Then each cell is scaled to 10,000 counts and log1p'd, and only
    that is kept: ``X`` holds ``log1p(1e4 * counts / total)``, as in the single-cell
    homework where the file arrives log-normalised.

    Returns
    -------
    Cells x genes, CSR float32 (dense with ``sparse=False``), no counts layer;
    ``obs["label"]`` the cell type (``type_0`` ..), ``obs["total_counts"]`` each cell's
    library size before normalisation; ``var["marker_of"]`` the type a gene marks (empty
    for none).
    """
    from geneae.datasets import _CHUNK, _check_positive, _names, _negative_binomial

    _check_positive(n_cells=n_cells, n_genes=n_genes, n_clusters=n_clusters)
    if n_clusters > n_genes:
        raise ConfigError(
            f"n_clusters ({n_clusters}) cannot exceed n_genes ({n_genes}): every cell type "
            "needs at least one marker gene."
        )
    rng = np.random.default_rng(seed)
    log_profile, marker_of = _marker_profiles(rng, n_genes, n_clusters)
    inverse_dispersion = rng.lognormal(np.log(3.0), 0.5, size=n_genes)
    cell_type = rng.integers(0, n_clusters, size=n_cells)
    library = rng.lognormal(np.log(MEDIAN_LIBRARY), 0.5, size=n_cells)

    blocks = []
    totals = np.empty(n_cells)
    for start in range(0, n_cells, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n_cells))
        log_rate = log_profile[cell_type[rows]]
        rate = np.exp(log_rate - log_rate.max(axis=1, keepdims=True))
        mean = library[rows, None] * rate / rate.sum(axis=1, keepdims=True)
        counts = _negative_binomial(rng, mean, inverse_dispersion)
        empty = np.flatnonzero(counts.sum(axis=1) == 0)
        counts[empty, mean[empty].argmax(axis=1)] = 1.0
        totals[rows] = counts.sum(axis=1)
        block = np.log1p(counts / totals[rows, None] * TARGET_SUM).astype(np.float32)
        blocks.append(sp.csr_matrix(block) if sparse else block)
    x = sp.vstack(blocks, format="csr") if sparse else np.concatenate(blocks)

    type_names = np.array([f"type_{k}" for k in range(n_clusters)])
    obs = pd.DataFrame(
        {
            "label": pd.Categorical(type_names[cell_type], categories=type_names),
            "total_counts": totals.astype(np.float32),
        },
        index=_names("cell", n_cells),
    )
    marker_names = np.where(marker_of >= 0, type_names[np.maximum(marker_of, 0)], "")
    var = pd.DataFrame({"marker_of": marker_names.astype(str)}, index=_names("gene", n_genes))
    return ad.AnnData(X=x, obs=obs, var=var)


def _marker_profiles(
    rng: np.random.Generator, n_genes: int, n_clusters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Log expression per cell type (types x genes) and the type each gene marks (-1)."""
    profile = np.tile(rng.normal(0.0, 2.0, size=n_genes), (n_clusters, 1))
    n_markers = max(1, n_genes // max(10, n_clusters))
    marker_of = np.full(n_genes, -1)
    order = rng.permutation(n_genes)
    for k in range(n_clusters):
        block = order[k * n_markers : (k + 1) * n_markers]
        profile[k, block] += np.log(rng.uniform(*MARKER_FOLD, size=block.size))
        marker_of[block] = k
    return profile, marker_of
