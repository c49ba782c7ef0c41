"""log1p of cells normalised to a small total is undone and scaled to 1e4 (round 61).

scanpy's ``normalize_total`` at its default total (the median of the cells' totals) leaves
shallow cells at a few dozen or hundred per cell, and log1p of that squashes every gene
toward 0; the default was made on log1p of 1e4 per cell (docs/design/default-model.md,
round 61). Such tables are told by their samples' totals: those of ``e^v - 1`` are alike
and small.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from geneae.facts import describe
from geneae.logscale import LN_ONE, SMALL_TOTAL, ln_of_small_totals
from geneae.pp import Preprocessor
from tests.test_log2_normalised import streamed


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def shallow_counts(n_cells: int = 90, n_genes: int = 300, seed: int = 0) -> np.ndarray:
    """UMI-like counts of three cell types at a few dozen to a few hundred UMIs per cell."""
    rng = np.random.default_rng(seed)
    base = rng.normal(-1.0, 1.0, n_genes)
    types = rng.integers(0, 3, n_cells)
    effects = rng.normal(0.0, 1.5, (3, n_genes)) * (rng.random((3, n_genes)) < 0.2)
    depth = rng.lognormal(np.log(0.3), 0.5, n_cells)
    counts = rng.poisson(np.exp(base + effects[types]) * depth[:, None]).astype(np.float32)
    counts[:, 0] += 1  # no empty cell
    genes = np.arange(n_genes)
    counts[genes % n_cells, genes] += 1  # and no gene unseen
    return counts


def log_table(counts: np.ndarray, target_sum: float | None) -> ad.AnnData:
    """``sc.pp.normalize_total(target_sum)`` then ``sc.pp.log1p``, as a user's table."""
    n, g = counts.shape
    adata = ad.AnnData(
        sp.csr_matrix(counts),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    return adata


# -- the rule ------------------------------------------------------------------------------
def test_natural_log_totals_alike_and_small_are_a_small_total() -> None:
    rng = np.random.default_rng(0)
    alike = np.full(50, 140.0) * rng.uniform(0.999, 1.0, 50)
    uneven = rng.lognormal(np.log(300.0), 0.4, 50)
    assert ln_of_small_totals(alike, uneven)  # log1p at the median total
    assert not ln_of_small_totals(alike * 1e4 / 140, uneven)  # scanpy's 1e4 is kept
    assert not ln_of_small_totals(uneven, alike)  # log2 per size factor (scran)
    assert not ln_of_small_totals(alike, alike)  # alike in every base: no base told
    assert not ln_of_small_totals(alike[:2], uneven[:2])  # too few samples to tell


# -- which tables are recognised ---------------------------------------------------------
def test_log1p_at_the_median_total_is_recognised_on_disk_as_in_memory() -> None:
    counts = shallow_counts()
    assert np.median(counts.sum(1)) < SMALL_TOTAL
    adata = log_table(counts, None)
    facts = describe(adata)
    assert facts.value_type == "log-normalised" and facts.ln_small_totals
    assert facts.log_scale == LN_ONE
    assert "ln(x+1) of expression normalised to under 5,000 per sample" in (facts.describe_values())
    assert streamed(adata) == facts
    stored_dense = ad.AnnData(_dense(adata.X), obs=adata.obs, var=adata.var)
    assert describe(stored_dense).log_scale == LN_ONE


def test_1e4_a_million_subsets_and_log2_per_size_factor_are_kept() -> None:
    counts = shallow_counts()
    for target in (1e4, 1e6):  # scanpy's classic total, and log1p of CPM
        facts = describe(log_table(counts, target))
        assert facts.value_type == "log-normalised" and facts.log_scale is None
    # the most variable genes of a table normalised on all of them total unevenly
    whole = log_table(counts, None)
    variable = np.argsort(_dense(whole.X).var(axis=0))[-100:]
    assert describe(whole[:, variable].copy()).log_scale is None
    # scran's logcounts: log2 of counts per size factor (its log2 totals are the alike ones)
    libraries = counts.sum(1, keepdims=True)
    logcounts = ad.AnnData(np.log2(counts / (libraries / libraries.mean()) + 1))
    assert not describe(logcounts).ln_small_totals


# -- what the preprocessing does with them -------------------------------------------------
def test_the_input_is_log1p_of_1e4_per_cell_as_the_counts_give(caplog) -> None:
    counts = shallow_counts()
    pre = Preprocessor("auto", n_top_genes=0)
    with caplog.at_level(logging.INFO, logger="geneae.resolve"):
        out = pre.fit_transform(log_table(counts, None))
    assert pre.steps_.unlog == str(LN_ONE) and pre.steps_.target_sum == 1e4
    assert "the log undone (x = e^v - 1), each sample scaled to 10,000" in caplog.text
    ref_pre = Preprocessor("auto", n_top_genes=0)
    ref = ref_pre.fit_transform(log_table(counts, 1e4))
    assert ref_pre.steps_.unlog == "no" and pre.genes_ == ref_pre.genes_
    np.testing.assert_allclose(_dense(out.X), _dense(ref.X), atol=1e-4)


def test_reconstructions_are_put_back_on_the_users_log1p() -> None:
    from geneae.model_outputs import in_values_space

    adata = log_table(shallow_counts(), None)
    pre = Preprocessor("standardize", n_top_genes=0, clip=0.0)
    x = _dense(pre.fit_transform(adata).X)
    assert pre.steps_.unlog == "ln(x+1)"
    # a perfect reconstruction of the input is the user's values again
    np.testing.assert_allclose(in_values_space(pre, x, adata), _dense(adata.X), atol=1e-4)


def test_preset_none_keeps_the_values_and_lognorm_undoes_them_to_its_1e4() -> None:
    adata = log_table(shallow_counts(), None)
    assert Preprocessor("none").fit(adata).steps_.unlog == "no"
    steps = Preprocessor("lognorm").fit(adata).steps_
    assert steps.unlog == "ln(x+1)" and steps.target_sum == 1e4
