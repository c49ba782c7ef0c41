"""Seeded synthetic data and the small real datasets that geneae ships or can load offline.

Every function returns an AnnData with the ground truth in ``obs["label"]`` (categorical),
so models can be checked against known structure. Synthetic generators take ``seed`` and
give the same numbers for the same seed.

- :func:`bulk_conditions`: bulk RNA-seq of three conditions (log1p CPM).
- :func:`polynomial_toy`: 9 polynomial features of 2-D clustered points (a curved 2-D
  manifold: a linear autoencoder equals PCA here, a nonlinear one does better).
- :func:`synthetic_counts`: single-cell-like negative-binomial counts with clusters,
  library-size variation, zero inflation and optional batch effects.
- :func:`lognorm_clusters`: single-cell data of a few cell types as the classic homework
  hands it out: counts library-size normalised and log1p'd, no counts kept.
- :func:`gene_modules`: bulk counts of a few tissues whose genes form co-expressed modules
  (ground truth of gene similarity in ``var["module"]``).
- :func:`pbmc_10x`: 2,100 human PBMCs x 2,000 genes, raw UMI counts, 8 labelled groups
  (bundled in the package; see ``geneae/datasets/README.md``).
- :func:`pbmc68k_reduced`: scanpy's bundled 700-cell PBMC subset (scaled values, 10 cell
  types), read from the installed scanpy package without network access.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.datasets.gene_modules import gene_modules
from geneae.datasets.lognorm import lognorm_clusters
from geneae.errors import ConfigError, InputError

__all__ = [
    "PBMC_10X_FILE",
    "bulk_conditions",
    "gene_modules",
    "lognorm_clusters",
    "pbmc68k_reduced",
    "pbmc_10x",
    "polynomial_toy",
    "synthetic_counts",
]

PBMC_10X_FILE = "pbmc_10x_2100.npz"
_CHUNK = 10_000  # cells sampled at once: bounds memory for large synthetic data


# -- bulk ---------------------------------------------------------------------------------
def bulk_conditions(
    n_samples: int = 300, n_genes: int = 2000, n_informative: int = 100, seed: int = 0
) -> ad.AnnData:
    """Bulk expression of three conditions, as log1p counts per million.

    Each gene has a log-normal base expression. The informative genes are split into six
    blocks: for each condition one block is up- and one down-regulated (1.5- to 3-fold).
    Samples get a log-normal library size and negative-binomial counts with gene-wise
    dispersion (biological variation plus sampling noise), returned as ``log1p(CPM)``.

    Returns
    -------
    Samples x genes, dense float32 (non-negative, not counts); ``obs["label"]`` the
    condition (``A``, ``B``, ``C``); ``var["informative"]`` and ``var["effect"]`` (e.g.
    ``"B up"``) mark the regulated genes.
    """
    _check_positive(n_samples=n_samples, n_genes=n_genes)
    if not 0 <= n_informative <= n_genes:
        raise ConfigError(f"n_informative must be in [0, n_genes={n_genes}], got {n_informative}.")
    rng = np.random.default_rng(seed)
    conditions = np.array(["A", "B", "C"])
    group = rng.permutation(np.arange(n_samples) % 3)

    log_base = rng.normal(np.log(50.0), 1.5, size=n_genes)  # log mean count at 1e6 reads
    log_fc = np.zeros((3, n_genes))
    effect = np.full(n_genes, "", dtype=object)
    informative = rng.choice(n_genes, size=n_informative, replace=False)
    for block, genes in enumerate(np.array_split(informative, 6)):
        cond, sign = block // 2, (1.0 if block % 2 == 0 else -1.0)
        log_fc[cond, genes] = sign * np.log(rng.uniform(1.5, 3.0, size=genes.size))
        effect[genes] = f"{conditions[cond]} {'up' if sign > 0 else 'down'}"

    library = rng.lognormal(np.log(2e7), 0.3, size=n_samples)
    rate = np.exp(log_base[None, :] + log_fc[group])
    mean = library[:, None] * rate / rate.sum(axis=1, keepdims=True)
    dispersion = rng.lognormal(np.log(0.1), 0.5, size=n_genes)  # var = mu + phi mu^2
    counts = _negative_binomial(rng, mean, 1.0 / dispersion)
    cpm = counts / counts.sum(axis=1, keepdims=True) * 1e6

    obs = pd.DataFrame(
        {"label": pd.Categorical(conditions[group], categories=conditions)},
        index=_names("sample", n_samples),
    )
    var = pd.DataFrame(
        {"informative": effect != "", "effect": effect.astype(str)}, index=_names("gene", n_genes)
    )
    return ad.AnnData(X=np.log1p(cpm).astype(np.float32), obs=obs, var=var)


# -- polynomial toy -----------------------------------------------------------------------
POLYNOMIAL_FEATURES = ("x", "y", "x2", "xy", "y2", "x3", "x2y", "xy2", "y3")


def polynomial_toy(n_samples: int = 1000, noise: float = 0.05, seed: int = 0) -> ad.AnnData:
    """Nine polynomial features of 2-D points drawn around four noisy centres.

    The points ``(x, y)`` are mapped to ``x, y, x², xy, y², x³, x²y, xy², y³``, a curved
    2-D surface in 9-D: PCA (and so a linear autoencoder) with 2 components cannot follow
    it, a nonlinear autoencoder with a 2-D code can. Gaussian noise of ``noise`` times each
    feature's standard deviation is added, then every feature is standardised.

    Returns
    -------
    Samples x 9, dense float32 (mean 0, std 1 per feature); ``obs["label"]`` the centre
    (``"0"`` .. ``"3"``); ``obsm["X_true"]`` the 2-D points.
    """
    _check_positive(n_samples=n_samples)
    if noise < 0:
        raise ConfigError(f"noise must be non-negative, got {noise}.")
    rng = np.random.default_rng(seed)
    centres = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    centres += rng.normal(0.0, 0.15, size=centres.shape)  # the "noisy" centres
    group = rng.integers(0, 4, size=n_samples)
    points = centres[group] + rng.normal(0.0, 0.35, size=(n_samples, 2))
    x, y = points[:, 0], points[:, 1]
    features = np.column_stack([x, y, x**2, x * y, y**2, x**3, x**2 * y, x * y**2, y**3])
    features += noise * features.std(axis=0) * rng.standard_normal(features.shape)
    features = (features - features.mean(axis=0)) / features.std(axis=0)

    labels = np.array(["0", "1", "2", "3"])
    obs = pd.DataFrame(
        {"label": pd.Categorical(labels[group], categories=labels)},
        index=_names("sample", n_samples),
    )
    out = ad.AnnData(
        X=features.astype(np.float32), obs=obs, var=pd.DataFrame(index=list(POLYNOMIAL_FEATURES))
    )
    out.obsm["X_true"] = points.astype(np.float32)
    return out


# -- single-cell counts -------------------------------------------------------------------
def synthetic_counts(
    n_cells: int = 2000,
    n_genes: int = 500,
    n_clusters: int = 5,
    n_batches: int = 1,
    zero_inflation: float = 0.1,
    seed: int = 0,
    sparse: bool = True,
) -> ad.AnnData:
    """Clustered single-cell counts from a zero-inflated negative binomial.

    Every gene has a log-normal base expression; each cluster multiplies its own block of
    marker genes by 2.5- to 5-fold (and has a few down-regulated genes). Cells get
    log-normal library sizes; counts are negative binomial with gene-wise dispersion, then
    each value is zeroed with probability ``zero_inflation``. With ``n_batches > 1`` each
    batch scales every gene by its own log-normal factor (sd 0.3 on the log scale).

    Returns
    -------
    Cells x genes raw counts (CSR float32 with integer values, or dense with
    ``sparse=False``), also in ``layers["counts"]``; ``obs["label"]`` the cluster
    (``cluster_0`` ..), ``obs["batch"]`` (``batch_0`` ..); ``var["marker_of"]`` the
    cluster a gene marks (empty for none).
    """
    _check_positive(n_cells=n_cells, n_genes=n_genes, n_clusters=n_clusters, n_batches=n_batches)
    if not 0 <= zero_inflation < 1:
        raise ConfigError(f"zero_inflation must be in [0, 1), got {zero_inflation}.")
    rng = np.random.default_rng(seed)
    log_profile, marker_of = _cluster_profiles(rng, n_genes, n_clusters)
    batch_effect = rng.normal(0.0, 0.3, size=(n_batches, n_genes)) if n_batches > 1 else None
    inverse_dispersion = rng.lognormal(np.log(3.0), 0.5, size=n_genes)
    cluster = rng.integers(0, n_clusters, size=n_cells)
    batch = rng.integers(0, n_batches, size=n_cells)
    library = rng.lognormal(np.log(1000.0), 0.35, size=n_cells)

    blocks = []
    for start in range(0, n_cells, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n_cells))
        log_rate = log_profile[cluster[rows]]
        if batch_effect is not None:
            log_rate = log_rate + batch_effect[batch[rows]]
        rate = np.exp(log_rate - log_rate.max(axis=1, keepdims=True))
        mean = library[rows, None] * rate / rate.sum(axis=1, keepdims=True)
        counts = _negative_binomial(rng, mean, inverse_dispersion)
        counts[rng.random(counts.shape) < zero_inflation] = 0
        block = counts.astype(np.float32)
        blocks.append(sp.csr_matrix(block) if sparse else block)
    x = sp.vstack(blocks, format="csr") if sparse else np.concatenate(blocks)

    cluster_names = np.array([f"cluster_{k}" for k in range(n_clusters)])
    batch_names = np.array([f"batch_{b}" for b in range(n_batches)])
    obs = pd.DataFrame(
        {
            "label": pd.Categorical(cluster_names[cluster], categories=cluster_names),
            "batch": pd.Categorical(batch_names[batch], categories=batch_names),
        },
        index=_names("cell", n_cells),
    )
    marker_names = np.where(marker_of >= 0, cluster_names[np.maximum(marker_of, 0)], "")
    var = pd.DataFrame({"marker_of": marker_names.astype(str)}, index=_names("gene", n_genes))
    out = ad.AnnData(X=x, obs=obs, var=var)
    out.layers["counts"] = x.copy()
    return out


def _cluster_profiles(
    rng: np.random.Generator, n_genes: int, n_clusters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Log expression profile per cluster (clusters x genes) and each gene's cluster (-1)."""
    log_base = rng.normal(0.0, 1.5, size=n_genes)
    profile = np.tile(log_base, (n_clusters, 1))
    marker_of = np.full(n_genes, -1)
    n_up = max(1, min(n_genes // (4 * n_clusters), 40))  # about a quarter of genes are markers
    n_down = max(1, n_up // 4)
    order = rng.permutation(n_genes)
    for k in range(n_clusters):
        up = order[k * n_up : (k + 1) * n_up]
        profile[k, up] += np.log(rng.uniform(2.5, 5.0, size=up.size))
        marker_of[up] = k
        down = rng.choice(n_genes, size=n_down, replace=False)
        profile[k, down] -= np.log(rng.uniform(2.0, 4.0, size=n_down))
    return profile, marker_of


def _negative_binomial(
    rng: np.random.Generator, mean: np.ndarray, inverse_dispersion: np.ndarray
) -> np.ndarray:
    """NB counts with the given means and per-gene inverse dispersion (gamma-Poisson)."""
    shape = np.broadcast_to(inverse_dispersion, mean.shape)
    return rng.poisson(rng.gamma(shape, mean / shape)).astype(np.float64)


# -- real data ----------------------------------------------------------------------------
def pbmc_10x() -> ad.AnnData:
    """2,100 human PBMCs x 2,000 genes, raw UMI counts, with 8 labelled groups.

    The 10x Genomics PBMC data as prepared for scDeepCluster / scDCC (file
    ``10X_PBMC_select_2100_top2000.h5``), stored sparse in the package; values unchanged.
    The source has no gene names or barcodes, and the groups have numbers, not names.
    Provenance and licences: ``geneae/datasets/README.md``.

    Returns
    -------
    CSR float32 counts in ``X`` and ``layers["counts"]``; ``obs["label"]`` ``"1"`` ..
    ``"8"``; genes ``gene_0000`` .., cells ``cell_0000`` ...
    """
    resource = importlib.resources.files("geneae.datasets") / PBMC_10X_FILE
    with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        shape = tuple(int(n) for n in z["shape"])
        x = sp.csr_matrix((z["data"].astype(np.float32), z["indices"], z["indptr"]), shape=shape)
        labels = z["labels"].astype(np.int64)
    categories = [str(k) for k in np.unique(labels)]
    obs = pd.DataFrame(
        {"label": pd.Categorical(labels.astype(str), categories=categories)},
        index=_names("cell", shape[0]),
    )
    out = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=_names("gene", shape[1])))
    out.layers["counts"] = x.copy()
    return out


def pbmc68k_reduced() -> ad.AnnData:
    """Scanpy's bundled 700 PBMCs x 765 genes (scaled log-normalised values, no counts).

    Read from the h5ad file inside the installed scanpy package (no network). ``X`` is
    z-scored, ``raw`` holds log-normalised values; ``obs["label"]`` copies the 10 cell
    types of ``obs["bulk_labels"]``.
    """
    path = _scanpy_file("datasets", "10x_pbmc68k_reduced.h5ad")
    with warnings.catch_warnings():
        # A fixed file written by anndata 0.5: reading it only warns about its old layout.
        warnings.simplefilter("ignore")
        adata = ad.read_h5ad(path)
    adata.obs["label"] = adata.obs["bulk_labels"].astype("category")
    return adata


def _scanpy_file(*parts: str) -> Path:
    """A data file of the installed scanpy package, found without importing scanpy."""
    spec = importlib.util.find_spec("scanpy")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "pbmc68k_reduced needs the scanpy package; install it (pip install scanpy)."
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise InputError(f"{path}: not found in the installed scanpy package; reinstall scanpy.")
    return path


# -- helpers ------------------------------------------------------------------------------
def _names(prefix: str, n: int) -> list[str]:
    width = max(4, len(str(n - 1)))
    return [f"{prefix}_{i:0{width}d}" for i in range(n)]


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
