"""Sparse synthetic count matrices of any size: NB (gamma-Poisson) counts from K clusters.

Cells are drawn in chunks, each chunk dense only while it is drawn and stored as CSR right
after, so memory stays at the sparse result plus one chunk. Each chunk has its own seeded
generator (``[seed, chunk index]``), so the same seed gives the same matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Profiles:
    """What all chunks share: cluster expression profiles, dispersions, cluster weights."""

    proportions: np.ndarray  # K x G, rows sum to 1
    theta: np.ndarray  # G, NB inverse dispersion
    weights: np.ndarray  # K, cluster frequencies


def make_profiles(n_genes: int, n_clusters: int, seed: int) -> Profiles:
    rng = np.random.default_rng([seed, 0])
    base = rng.normal(0.0, 2.0, n_genes)  # gene abundance, log scale (heavy-tailed in counts)
    logits = np.tile(base, (n_clusters, 1))
    for row in logits:
        _mark_genes(rng, row, max(1, n_genes // 20))
    return _profiles(rng, logits)


def _mark_genes(rng: np.random.Generator, logits: np.ndarray, n_markers: int) -> None:
    """Move ``n_markers`` random genes of ``logits`` (one type's row) up, log fold change
    N(1.8, 0.5), and another ``n_markers`` down, N(1.0, 0.3); in place."""
    up = rng.choice(logits.size, size=n_markers, replace=False)
    logits[up] += rng.normal(1.8, 0.5, n_markers)
    down = rng.choice(logits.size, size=n_markers, replace=False)
    logits[down] -= rng.normal(1.0, 0.3, n_markers)


def _proportions(logits: np.ndarray) -> np.ndarray:
    """Rows of ``logits`` (log scale) as expression proportions summing to 1 (a softmax)."""
    proportions = np.exp(logits - logits.max(axis=1, keepdims=True))
    return proportions / proportions.sum(axis=1, keepdims=True)


def _profiles(rng: np.random.Generator, logits: np.ndarray) -> Profiles:
    """The types' profiles from their logits, with a log-normal NB inverse dispersion per gene
    (around 2) and Dirichlet(3) type frequencies."""
    theta = np.exp(rng.normal(np.log(2.0), 0.5, logits.shape[1]))
    weights = rng.dirichlet(np.full(len(logits), 3.0))
    return Profiles(_proportions(logits), theta, weights)


def _library_sizes(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """``n`` log-normal library sizes (log sd 0.5) whose mean is ``mean``."""
    return np.exp(rng.normal(np.log(mean) - 0.125, 0.5, n))


def _nb_counts(rng: np.random.Generator, mean: np.ndarray, theta: Any) -> np.ndarray:
    """Negative-binomial draws of ``mean`` with inverse dispersion ``theta`` (gamma-Poisson)."""
    return rng.poisson(rng.gamma(theta, mean / theta))


def synthetic_counts(
    n_cells: int,
    n_genes: int = 2000,
    n_clusters: int = 10,
    *,
    seed: int = 0,
    chunk_size: int = 10_000,
    mean_library: float = 300.0,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Cells x genes NB counts (CSR, float32) and integer cluster labels.

    Library sizes are log-normal around ``mean_library`` (sd 0.5 on the log scale); with
    the defaults about 92-94% of the entries are zero, like droplet UMI data.
    """
    prof = make_profiles(n_genes, n_clusters, seed)
    labels = np.empty(n_cells, dtype=np.int64)
    data, indices, indptr = [], [], [np.zeros(1, dtype=np.int64)]
    nnz = 0
    for i, start in enumerate(range(0, n_cells, chunk_size)):
        m = min(chunk_size, n_cells - start)
        rng = np.random.default_rng([seed, 1, i])
        lab = rng.choice(n_clusters, size=m, p=prof.weights)
        mu = _library_sizes(rng, mean_library, m)[:, None] * prof.proportions[lab]
        counts = _nb_counts(rng, mu, prof.theta).astype(np.float32)
        del mu
        block = sp.csr_matrix(counts)
        del counts
        labels[start : start + m] = lab
        data.append(block.data)
        indices.append(block.indices.astype(np.int32, copy=False))
        indptr.append(block.indptr[1:].astype(np.int64) + nnz)
        nnz += block.nnz
    ptr = np.concatenate(indptr)
    index_dtype = np.int32 if nnz < 2**31 else np.int64
    x = sp.csr_matrix(
        (
            np.concatenate(data),
            np.concatenate(indices).astype(index_dtype, copy=False),
            ptr.astype(index_dtype, copy=False),
        ),
        shape=(n_cells, n_genes),
    )
    return x, labels


def csr_nbytes(x: sp.csr_matrix) -> int:
    """Bytes held by a CSR matrix's three arrays."""
    return int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes)


def synthetic_bulk(
    n_samples: int = 600,
    n_genes: int = 20_000,
    n_types: int = 8,
    *,
    seed: int = 0,
    values: str = "tpm",
) -> tuple[np.ndarray, np.ndarray]:
    """Bulk RNA-seq of tumour types in TPM, TCGA-like: samples x genes, and type labels.

    The parameters were fixed before any method was run on the data (no tuning to a
    method; a first draw, with weaker type programs, was set aside before any model ran
    because even PCA found no types in it, unlike real tumour types). Gene abundances are
    log-normal (log TPM sd 2.5: a heavy right tail). The types come from three lineages
    (tissues of origin): each lineage changes 10% of the genes (log fold changes
    N(0, 1.5)) and each type another 5% on top (N(0, 1)), so types of one lineage resemble
    each other. Three continuous programs that every type shares (like purity, immune
    infiltration, proliferation; N(0, 1) per sample) move 3% of the genes each (loadings
    N(0, 0.5)), and every sample has biological noise (log sd 0.4). Reads are
    negative-binomial (inverse dispersion 20) at a log-normal depth around 30 M, and the
    values returned are TPM (reads / depth x 1e6; not integers, not logged).

    ``values="estimated_counts"``: the same tumours as RSEM's expected counts, what a
    count-based pipeline (DESeq2, edgeR) starts from: depth spread wider (log sd 0.5, as
    TCGA's 20-150 M reads), reads not divided by it, and each read count scaled by
    U(0.9, 1.1) and rounded to two decimals, as an EM that shares reads between genes
    leaves them (not integers, still carrying each sample's depth).

    ``values="log2_centred"``: the same tumours as UCSC Xena's pan-cancer tables hold them,
    log2(TPM + 1) minus each gene's mean over the samples (centred, not scaled).

    ``values="read_counts"``: the same tumours as the integer read counts that
    featureCounts or HTSeq give (what DESeq2 and edgeR start from): depth spread as wide as
    ``estimated_counts``' and left in, no EM sharing.
    """
    rng = np.random.default_rng([seed, 7])
    weights = rng.dirichlet(np.full(n_types, 4.0))
    types = rng.choice(n_types, size=n_samples, p=weights)
    lineage_of_type = np.arange(n_types) % 3
    log_base = rng.normal(np.log(5.0), 2.5, n_genes)

    def program(fraction: float, sd: float) -> np.ndarray:
        effect = np.zeros(n_genes)
        genes = rng.choice(n_genes, size=max(1, int(fraction * n_genes)), replace=False)
        effect[genes] = rng.normal(0.0, sd, genes.size)
        return effect

    lineage_fc = np.stack([program(0.10, 1.5) for _ in range(3)])
    type_fc = np.stack([program(0.05, 1.0) for _ in range(n_types)])
    loadings = np.stack([program(0.03, 0.5) for _ in range(3)])
    scores = rng.normal(0.0, 1.0, (n_samples, 3))
    log_mu = (
        log_base
        + lineage_fc[lineage_of_type[types]]
        + type_fc[types]
        + scores @ loadings
        + rng.normal(0.0, 0.4, (n_samples, n_genes))
    )
    kinds = ("tpm", "estimated_counts", "log2_centred", "read_counts")
    if values not in kinds:
        raise ValueError(f"values must be one of {', '.join(kinds)}, not {values!r}")
    depth_sd = 0.5 if values in ("estimated_counts", "read_counts") else 0.3
    depth = np.exp(rng.normal(np.log(3e7), depth_sd, n_samples))
    reads = _nb_counts(rng, depth[:, None] * _proportions(log_mu), 20.0).astype(np.float64)
    if values == "estimated_counts":
        estimated = np.round(reads * rng.uniform(0.9, 1.1, reads.shape), 2)
        return estimated.astype(np.float32), types
    if values == "read_counts":
        return reads.astype(np.float32), types
    tpm = reads / depth[:, None] * 1e6
    if values == "log2_centred":
        logged = np.log2(tpm + 1.0)
        return (logged - logged.mean(axis=0)).astype(np.float32), types
    return tpm.astype(np.float32), types


def synthetic_hierarchy(
    n_cells: int = 8000,
    n_genes: int = 2000,
    n_lineages: int = 5,
    subtypes: int = 8,
    *,
    seed: int = 11,
) -> tuple[np.ndarray, np.ndarray]:
    """UMI-like counts of fine cell types within lineages: cells x genes, and type labels.

    Two levels, as in an atlas: each lineage moves 5% of the genes strongly (up: log fold
    change N(1.8, 0.5); another 5% down: N(1.0, 0.3)), and each of its subtypes moves only
    25 genes of its own a little (up N(1.2, 0.3)), so the subtypes of a lineage are close
    and the labels (``n_lineages x subtypes`` of them; the lineage is the label's prefix,
    ``L{l}_{s}``) are finer than the groups a clustering finds first. Gene abundances are
    log-normal (sd 2), type frequencies Dirichlet(3), library sizes log-normal around 800
    (sd 0.5), counts negative-binomial with a log-normal inverse dispersion per gene (around
    2). The parameters are those of the first draw, fixed before any method was scored on
    it and not tuned since.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 2.0, n_genes)
    logits = []
    for _ in range(n_lineages):
        lineage = base.copy()
        _mark_genes(rng, lineage, n_genes // 20)
        for _ in range(subtypes):
            subtype = lineage.copy()
            own = rng.choice(n_genes, 25, replace=False)
            subtype[own] += rng.normal(1.2, 0.3, own.size)
            logits.append(subtype)
    prof = _profiles(rng, np.array(logits))
    types = rng.choice(len(logits), n_cells, p=prof.weights)
    mean = _library_sizes(rng, 800.0, n_cells)[:, None] * prof.proportions[types]
    counts = _nb_counts(rng, mean, prof.theta).astype(np.float32)
    labels = np.array([f"L{t // subtypes}_{t % subtypes}" for t in types])
    return counts, labels
