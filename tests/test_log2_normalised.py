"""Log2 of normalised expression (log2(TPM + 1), limma's log-CPM) is undone.

The default was made on natural logs; the same values in log2 units trained a weaker model
(docs/design/default-model.md, round 60). Such tables are told from natural logs by their
samples' totals: those of ``2^v`` are alike (TPM and CPM total a million), those of ``e^v``
are not. Log tables whose totals differ (DESeq2's vst, edgeR's log-CPM after TMM factors)
are kept as they are, and said so: their log taken out scored lower (round 81).
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from geneae.facts import FactsAccumulator, describe
from geneae.logscale import (
    LogScale,
    log2_of_normalised,
    row_power_sums,
    totals_above_floor,
)
from geneae.pp import Preprocessor


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def bulk_expression(n_samples: int = 60, n_genes: int = 600, seed: int = 0) -> np.ndarray:
    """Normalised expression of samples of four types (each moves its own genes), TPM-like."""
    rng = np.random.default_rng(seed)
    base = rng.normal(1.0, 2.0, n_genes)
    types = rng.integers(0, 4, n_samples)
    effects = rng.normal(0.0, 1.5, (4, n_genes)) * (rng.random((4, n_genes)) < 0.2)
    log_mu = base + effects[types] + rng.normal(0.0, 0.3, (n_samples, n_genes))
    reads = rng.poisson(np.exp(log_mu) * 50).astype(np.float64)
    reads[: n_samples // 2, :5] = 0.0  # genes not seen in some samples: the floor is there
    return reads / reads.sum(axis=1, keepdims=True) * 1e6


def as_table(values: np.ndarray) -> ad.AnnData:
    n, g = values.shape
    return ad.AnnData(
        np.round(values, 4).astype(np.float32),
        obs=pd.DataFrame(index=[f"s{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )


def streamed(adata: ad.AnnData, rows: int = 17):
    acc = FactsAccumulator(adata.n_vars, has_counts_layer=False)
    for start in range(0, adata.n_obs, rows):
        acc.add(adata.X[start : start + rows], None)
    return acc.facts()


# -- the rule ------------------------------------------------------------------------------
def test_log2_totals_alike_and_natural_log_totals_not_are_log2_of_normalised() -> None:
    rng = np.random.default_rng(0)
    alike = np.full(50, 1e6) * rng.uniform(0.999, 1.0, 50)
    uneven = rng.lognormal(np.log(5e7), 0.4, 50)
    assert log2_of_normalised(alike, uneven)  # TPM on log2
    assert not log2_of_normalised(uneven, alike)  # natural logs of TPM
    assert not log2_of_normalised(alike, alike)  # quantile-normalised: alike in every base
    assert not log2_of_normalised(uneven, uneven)  # reads with each sample's depth
    assert not log2_of_normalised(alike[:2], uneven[:2])  # too few samples to tell
    assert not log2_of_normalised(np.full(50, np.inf), uneven)  # beyond any expression


@pytest.mark.parametrize("sparse", [False, True])
def test_row_power_sums_read_in_blocks_are_the_direct_sums(monkeypatch, sparse) -> None:
    import geneae.logscale as logscale

    rng = np.random.default_rng(2)
    v = rng.uniform(0.0, 12.0, (23, 40)) * (rng.random((23, 40)) < 0.4)
    x = sp.csr_matrix(v) if sparse else v
    monkeypatch.setattr(logscale, "POWER_BLOCK", 90)  # two rows a block
    for base in (2.0, np.e):
        np.testing.assert_allclose(row_power_sums(x, base), (base**v - 1).sum(1), rtol=1e-12)


@pytest.mark.parametrize("pseudo", [1.0, 16.0, 0.25])
def test_totals_above_the_floor_are_those_of_the_undone_values(pseudo) -> None:
    tpm = bulk_expression()
    v = np.log2(tpm + pseudo)
    floor = float(v.min())
    assert floor == pytest.approx(np.log2(pseudo))  # unseen genes sit on it
    totals = totals_above_floor(row_power_sums(v, 2.0), 2.0, floor, v.shape[1])
    np.testing.assert_allclose(totals, tpm.sum(axis=1), rtol=1e-9)


# -- which tables are recognised ---------------------------------------------------------
def test_log2_tpm_is_recognised_on_disk_as_in_memory_and_stored_sparse() -> None:
    adata = as_table(np.log2(bulk_expression() + 1))
    facts = describe(adata)
    assert facts.value_type == "log-normalised" and facts.log2_normalised
    assert not facts.depth_in_log
    assert facts.log_scale == LogScale("log2", 1.0)
    assert "log2(x+1) of expression normalised per sample" in facts.describe_values()
    assert streamed(adata) == facts
    stored_sparse = ad.AnnData(sp.csr_matrix(adata.X), obs=adata.obs, var=adata.var)
    assert describe(stored_sparse).log_scale == facts.log_scale


def test_a_floor_above_0_and_log_cpm_are_recognised_with_their_floor() -> None:
    expression = bulk_expression()
    shifted = as_table(np.log2(expression + 16))  # no value at 0: the floor is log2(16)
    assert describe(shifted).log_scale == LogScale("log2", 16.0)
    assert streamed(shifted) == describe(shifted)
    # limma-voom's log2-CPM with half a read added: negative, its floor not a round pseudo
    reads = np.round(expression * 30)
    libraries = reads.sum(axis=1, keepdims=True)
    voom = as_table(np.log2((reads + 0.5) / (libraries + 1) * 1e6))
    facts = describe(voom)
    assert facts.value_type == "other" and facts.log2_normalised
    assert facts.log_scale is not None and facts.log_scale.base == "log2"
    assert facts.log_scale.floor == pytest.approx(float(voom.X.min()), abs=1e-4)
    assert streamed(voom) == facts


def test_log_cpm_of_tmm_libraries_is_kept_as_it_is_and_said_so(caplog) -> None:
    # edgeR's cpm(log = TRUE) after TMM factors: each sample's library is its reads times a
    # factor, so the samples' totals of 2^v - 2^floor differ by those factors
    reads = np.round(bulk_expression() * 30)
    factors = np.exp(np.random.default_rng(4).normal(0.0, 0.15, reads.shape[0]))
    libraries = reads.sum(axis=1, keepdims=True) * factors[:, None]
    prior = 2.0 * libraries / libraries.mean()
    log_cpm = as_table(np.log2((reads + prior) / (libraries + 2 * prior) * 1e6))
    facts = describe(log_cpm)
    assert facts.value_type == "other" and not facts.log2_normalised
    pre = Preprocessor("auto", n_top_genes=0)
    with caplog.at_level(logging.INFO, logger="geneae.resolve"):
        out = pre.fit_transform(log_cpm)
    assert pre.steps_.unlog == "no" and not pre.steps_.log1p
    x = log_cpm.X.astype(np.float64)  # the values themselves, each gene z-scored
    np.testing.assert_allclose(_dense(out.X), (x - x.mean(axis=0)) / x.std(axis=0), atol=1e-3)
    said = [r.getMessage() for r in caplog.records if "kept as they are" in r.getMessage()]
    assert len(said) == 1
    assert said[0].startswith(f"values kept as they are ({facts.describe_values()}): ")
    assert "preprocess.unlog" in said[0]


def test_natural_logs_and_subsets_of_genes_are_not_taken_for_log2() -> None:
    expression = bulk_expression()
    assert describe(as_table(np.log1p(expression))).log_scale is None  # log TPM, natural
    # highly variable subsets of natural logs of TPM, whose log2 totals happen to come out
    # alike within 3-5 per cent: not taken for log2
    for seed, n_top in ((0, 200), (1, 200), (2, 200), (0, 400)):
        ln = np.log1p(bulk_expression(seed=seed))
        subset = ln[:, np.argsort(ln.var(axis=0))[-n_top:]]
        assert not describe(as_table(subset)).log2_normalised
    # scanpy's log1p of 1e4 per cell stays below the range that is looked at
    counts = ad.AnnData(np.random.default_rng(3).poisson(2.0, (80, 300)).astype(np.float32))
    sc.pp.normalize_total(counts, target_sum=1e4)
    sc.pp.log1p(counts)
    facts = describe(counts)
    assert facts.value_type == "log-normalised" and facts.log_scale is None


# -- what the preprocessing does with them -------------------------------------------------
@pytest.mark.parametrize("pseudo", [1.0, 16.0])
def test_log2_of_normalised_expression_takes_the_path_of_the_expression(pseudo, caplog) -> None:
    expression = bulk_expression()
    adata = as_table(np.log2(expression + pseudo))
    pre = Preprocessor("auto", n_top_genes=0)
    with caplog.at_level(logging.INFO, logger="geneae.resolve"):
        out = pre.fit_transform(adata)
    assert pre.steps_.unlog == str(LogScale("log2", pseudo))
    assert f"are log2(x+{pseudo:g}) of expression normalised per sample" in caplog.text
    ref_pre = Preprocessor("auto", n_top_genes=0)
    ref = ref_pre.fit_transform(as_table(expression))
    assert ref_pre.steps_.unlog == "no" and pre.genes_ == ref_pre.genes_
    # the same input as the expression's: the 4 decimals of the log2 values aside
    np.testing.assert_allclose(_dense(out.X), _dense(ref.X), atol=2e-3)


def test_reconstructions_are_put_back_in_log2_units() -> None:
    from geneae.model_outputs import in_values_space

    adata = as_table(np.log2(bulk_expression() + 1))
    pre = Preprocessor("standardize", n_top_genes=0, clip=0.0)
    x = _dense(pre.fit_transform(adata).X)
    assert pre.steps_.unlog == "log2(x+1)"
    # a perfect reconstruction of the input is the user's log2 values again
    np.testing.assert_allclose(in_values_space(pre, x, adata), _dense(adata.X), atol=2e-3)


def test_the_preset_none_keeps_the_log2_values() -> None:
    adata = as_table(np.log2(bulk_expression() + 1))
    assert Preprocessor("none").fit(adata).steps_.unlog == "no"
