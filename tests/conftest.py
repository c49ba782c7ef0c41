"""Fixtures shared by all tests: where the shared real data live; a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the shared real data live (env GENEAE_SHARED_DATA, else beside the repo)."""
    return Path(os.environ.get("GENEAE_SHARED_DATA", REPO.parent / "shared" / "data"))


def require(path: Path) -> Path:
    """Return ``path``; if it is missing, fail in CI (data must be there) or skip locally."""
    if path.exists():
        return path
    message = f"shared data not found: {path} (set GENEAE_SHARED_DATA to its folder)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder (see :func:`require` for what happens when it is missing)."""
    return require(shared_data_dir())


@pytest.fixture(scope="session")
def in_fresh_interpreter() -> Callable[[str], None]:
    """``in_fresh_interpreter(code)``: run ``code`` in a new Python process; fail with its
    stderr unless it succeeds (for what a test process has imported already, say)."""

    def run(code: str) -> None:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    return run


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """``shared_file("worm_neuron/x.h5")``: a file of the shared data, required like it."""
    return lambda relative: require(shared_data / relative)


def _compare(x, latent, x_hat, labels, **options):
    """compare_with_pca (its metrics, PCA scores, clusters and cluster stability)."""
    from geneae.evaluate import compare_with_pca

    return compare_with_pca(x, latent, x_hat, labels, **options)


def make_results(
    *,
    n: int = 200,
    g: int = 60,
    d: int = 4,
    k: int = 4,
    labels: bool = True,
    loadings: bool = True,
    responsibilities: bool = True,
    variances: bool = True,
    raw: bool = True,
    history: bool = True,
    methods: tuple[str, ...] = ("pca",),
    neighbour_spaces: tuple[str, ...] | None = None,
    max_cells: int = 150,
    seed: int = 0,
    stability: int = 8,
):
    """A small but complete results AnnData (docs/results.md), built with the tl functions.

    Clustered cells (``k`` groups) in a ``d``-dimensional latent space whose last dimension
    is collapsed, Poisson counts, their log-normalised values and a noisy reconstruction;
    metrics and the stability of ``stability`` repeats of the clustering (0: none) from
    :func:`geneae.evaluate.compare_with_pca`. Returns ``(results, arrays)``
    with the matrices in ``arrays`` (``x``, ``x_hat``, ``counts``, ``groups``).
    """
    import json

    import anndata
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from geneae import tl
    from geneae.config import RunConfig
    from geneae.evaluate import latent_usage

    rng = np.random.default_rng(seed)
    groups = rng.integers(0, k, size=n)
    names = np.array(["T cell", "B cell", "NK", "monocyte", "DC", "platelet"])[:k]
    y = names[groups]
    centres = rng.normal(scale=2.5, size=(k, d))
    z = centres[groups] + rng.normal(scale=0.6, size=(n, d))
    w = rng.normal(scale=0.6, size=(d, g))
    counts = rng.poisson(np.exp(np.clip(z @ w / 2, -3, 3)))
    lib = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    x = np.log1p(counts / lib * 1e3)
    x_hat = np.maximum(x + rng.normal(scale=0.2, size=x.shape), 0)
    qz_var = np.full((n, d), 0.2)
    qz_var[:, -1] = 1.0
    latent = z.copy()
    latent[:, -1] = rng.normal(scale=0.02, size=n)  # a collapsed dimension
    compared = _compare(
        x,
        latent,
        x_hat,
        y if labels else None,
        seed=seed,
        n_clusters=None if labels else k,
        stability_repeats=stability,
    )
    comparison, pca_scores, codes = compared.metrics, compared.pca_embedding, compared.clusters
    usage = latent_usage(latent, qz_var)
    cfg = RunConfig().updated(
        {
            "evaluate.tsne": "tsne" in methods,
            "evaluate.umap": "umap" in methods,
            "evaluate.stability_repeats": stability,
        }
    )
    data = {
        "path": "/data/example.h5ad",
        "n_cells": n,
        "n_genes": g + 40,
        "value_type": "raw counts",
        "n_genes_model": g,
    }
    if labels:
        data["labels"] = {str(c): int((y == c).sum()) for c in names}
    metrics = {
        "comparison": comparison,
        "latent_usage": usage,
        "likelihood": {"val_elbo": -812.5, "val_reconstruction": 790.1, "val_kl": 22.4},
        "timings": {
            "read_s": 0.4,
            "preprocess_s": 1.2,
            "train_s": 75.3,
            "seconds_per_epoch": 0.75,
            "evaluate_s": 3.1,
        },
        "data": data,
        "model": {
            "family": "vae",
            "likelihood": "nb",
            "latent_dim": d,
            "n_parameters": 12345,
            "epochs_trained": 30,
            "best_epoch": 27,
            "device": "cpu",
        },
    }
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n)])
    if labels:
        obs["label"] = pd.Categorical(y)
    obs["geneae_cluster"] = pd.Categorical(np.asarray(codes["geneae"]).astype(str))
    obs["pca_cluster"] = pd.Categorical(np.asarray(codes["pca"]).astype(str))
    results = anndata.AnnData(obs=obs, var=pd.DataFrame(index=[f"GENE{j}" for j in range(g)]))
    results.obsm["X_geneae"] = latent.astype(np.float32)
    results.obsm["X_pca"] = np.asarray(pca_scores, dtype=np.float32)
    if variances:
        results.obsm["geneae_var"] = qz_var.astype(np.float32)
    if responsibilities:
        logits = 4 * np.eye(k)[groups] + rng.normal(size=(n, k))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        results.obsm["geneae_responsibilities"] = probs.astype(np.float32)
    if loadings:
        results.varm["geneae_loadings"] = w.T.astype(np.float32)  # signed
    uns = {"config": cfg.to_yaml(), "metrics": json.dumps(metrics), "version": "0.1.0"}
    if history:
        epochs = np.arange(1, 31)
        uns["history"] = pd.DataFrame(
            {
                "epoch": epochs,
                "train_loss": 900 / np.sqrt(epochs),
                "val_loss": 950 / np.sqrt(epochs) + 5,
                "train_reconstruction": 880 / np.sqrt(epochs),
                "val_reconstruction": 920 / np.sqrt(epochs),
                "train_kl": 20 + np.log(epochs),
                "val_kl": 21 + np.log(epochs),
                "train_elbo": -900 / np.sqrt(epochs),
                "val_elbo": -950 / np.sqrt(epochs),
                "lr": np.where(epochs < 20, 1e-3, 5e-4),
                "kl_weight": np.minimum(epochs / 10, 1),
                "mask_rate": np.nan,
            }
        ).to_csv(index=False)
    results.uns["geneae"] = uns
    tl.cluster_stability(results, compared)
    spaces = {"input": sp.csr_matrix(x), "reconstruction": x_hat, "geneae": latent}
    spaces["pca"] = results.obsm["X_pca"]
    tl.maps(
        results,
        spaces,
        methods=methods,
        neighbour_spaces=neighbour_spaces,
        max_cells=max_cells,
        seed=seed,
    )
    tl.histograms(results, raw=sp.csr_matrix(counts) if raw else None, input=x)
    tl.profiles(results, input=x, reconstruction=x_hat, seed=seed)
    return results, {"x": x, "x_hat": x_hat, "counts": counts, "groups": groups}


@pytest.fixture(scope="session")
def results_factory():
    """:func:`make_results`, as a fixture (tests call it with their own options)."""
    return make_results
