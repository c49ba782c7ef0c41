"""Bulk counts with co-expressed gene modules, as in a tissue atlas (the GTEx use case)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd


def gene_modules(
    n_samples: int = 300,
    n_modules: int = 6,
    genes_per_module: int = 40,
    n_tissues: int = 4,
    seed: int = 0,
) -> ad.AnnData:
    """Raw counts of samples from a few tissues whose genes form co-expressed modules.

    Every module has an activity per sample: a tissue effect (normal, sd 1) plus the
    sample's own variation (normal, sd 0.7). A gene of module m has a log-normal base
    expression and rises with m's activity (log fold change per unit of activity uniform in
    [0.6, 1.2]); samples get log-normal library sizes (sd 0.3) and negative-binomial counts
    (inverse dispersion 10). Genes of one module therefore co-vary across the samples and
    genes of different modules do not, apart from shared tissue effects.

    Returns
    -------
    Samples x genes raw counts (dense float32 with integer values), also in
    ``layers["counts"]``; ``obs["label"]`` the tissue (``tissue_0`` ..); ``var["module"]``
    the module of each gene (``module_0`` ..), the ground truth of gene similarity.
    """
    from geneae.datasets import _check_positive, _names, _negative_binomial

    _check_positive(
        n_samples=n_samples,
        n_modules=n_modules,
        genes_per_module=genes_per_module,
        n_tissues=n_tissues,
    )
    rng = np.random.default_rng(seed)
    n_genes = n_modules * genes_per_module
    tissue = rng.integers(0, n_tissues, size=n_samples)
    effect = rng.normal(0.0, 1.0, size=(n_tissues, n_modules))
    activity = effect[tissue] + rng.normal(0.0, 0.7, size=(n_samples, n_modules))
    module = rng.permutation(np.repeat(np.arange(n_modules), genes_per_module))
    base = rng.normal(np.log(50.0), 1.0, size=n_genes)
    slope = rng.uniform(0.6, 1.2, size=n_genes)
    library = rng.lognormal(0.0, 0.3, size=n_samples)
    mean = library[:, None] * np.exp(base + slope * activity[:, module])
    counts = _negative_binomial(rng, mean, np.full(n_genes, 10.0)).astype(np.float32)
    tissues = np.array([f"tissue_{t}" for t in range(n_tissues)])
    modules = np.array([f"module_{m}" for m in range(n_modules)])
    obs = pd.DataFrame(
        {"label": pd.Categorical(tissues[tissue], categories=tissues)},
        index=_names("sample", n_samples),
    )
    var = pd.DataFrame(
        {"module": pd.Categorical(modules[module], categories=modules)},
        index=_names("gene", n_genes),
    )
    out = ad.AnnData(X=counts, obs=obs, var=var)
    out.layers["counts"] = counts.copy()
    return out
