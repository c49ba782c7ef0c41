"""Expression as each sample's shares (RSEM's scaled estimates, TPM / 1e6): unlogged values.

Values below the log scale's range were taken for log values, and kept unlogged through the
model. Shares are told by their samples' totals (at most 1), and then take the path of the
same samples in TPM. Checked: the kind of values against numpy's row sums, dense, sparse and
streamed; what the data decide and the preprocessed values, against the same TPM; the line
that says so.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from geneae import RunConfig, matrix_values
from geneae.facts import FactsAccumulator, describe
from geneae.matrix_values import FRACTIONS_TOTAL, largest_total, value_type
from geneae.pp import Preprocessor
from geneae.resolve import resolve


def bulk_tpm(n_samples: int = 90, n_genes: int = 600, seed: int = 0) -> np.ndarray:
    """TPM of three sample types: log-normal abundances, a tenth of the genes moved per type."""
    rng = np.random.default_rng(seed)
    types = np.arange(n_samples) % 3
    log_fc = np.zeros((3, n_genes))
    for t in range(3):
        genes = rng.choice(n_genes, n_genes // 10, replace=False)
        log_fc[t, genes] = rng.normal(0.0, 1.0, genes.size)
    rate = np.exp(rng.normal(0.0, 2.0, n_genes) + log_fc[types])
    rate *= rng.lognormal(0.0, 0.2, (n_samples, n_genes))
    return rate / rate.sum(axis=1, keepdims=True) * 1e6


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [64, 1 << 20])
def test_largest_total_against_numpy(seed: int, block: int, monkeypatch) -> None:
    monkeypatch.setattr(matrix_values, "CHECK_BLOCK", block)  # 64: many blocks of rows
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (50, 30)) * (rng.random((50, 30)) < 0.3)
    x[rng.random(x.shape) < 0.01] = np.nan
    x[rng.random(x.shape) < 0.01] = np.inf
    expected = float(np.sum(np.where(np.isfinite(x), x, 0.0), axis=1).max())
    for stored in (x, x.astype(np.float32), sp.csr_matrix(x), sp.coo_matrix(x)):
        assert largest_total(stored) == pytest.approx(expected, rel=1e-6)
    assert largest_total(np.zeros((0, 3))) == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_shares_are_unlogged_expression_and_logs_of_them_are_not(seed: int) -> None:
    tpm = bulk_tpm(seed=seed)
    shares = tpm / 1e6
    subset = shares[:, :200]  # shares of the whole, on some of the genes
    loose = shares * np.random.default_rng(seed).uniform(0.8, 1.2, (shares.shape[0], 1))
    for values in (shares, subset, loose, sp.csr_matrix(shares)):
        assert value_type(values) == "unlogged expression"
    logged = np.log1p(shares * 1e4)
    minmax = (logged - logged.min()) / (logged.max() - logged.min())  # log values in [0, 1]
    for values in (logged, minmax, np.log2(tpm + 1.0)):
        assert np.nansum(values, axis=1).min() >= FRACTIONS_TOTAL
        assert value_type(values) == "log-normalised"
    assert value_type(tpm) == "unlogged expression"  # above the log range, as before


def test_facts_of_shares_dense_sparse_and_streamed() -> None:
    shares = (bulk_tpm() / 1e6).astype(np.float32)
    facts = describe(ad.AnnData(shares))
    assert facts.value_type == "unlogged expression" and facts.log_scale is None
    said = "every sample totals under 2: shares of its expression)"
    assert facts.describe_values().endswith(said)
    assert describe(ad.AnnData(sp.csr_matrix(shares))).value_type == "unlogged expression"
    streamed = FactsAccumulator(shares.shape[1], has_counts_layer=False)
    for start in range(0, shares.shape[0], 25):
        streamed.add(shares[start : start + 25], None)
    assert streamed.facts() == facts  # on disk as in memory
    # The running largest total is a sample's, not a block's: blocks of small totals whose
    # sum is large stay shares.
    assert np.sum(shares[:25], axis=1).max() < FRACTIONS_TOTAL < np.sum(shares[:25])


def test_shares_resolve_and_preprocess_as_the_same_tpm(caplog) -> None:
    tpm = bulk_tpm()
    as_tpm = ad.AnnData(tpm.astype(np.float32))
    as_shares = ad.AnnData((tpm / 1e6).astype(np.float32))
    with caplog.at_level("INFO", logger="geneae.resolve"):
        shares_config = resolve(RunConfig(), describe(as_shares))
    tpm_config = resolve(RunConfig(), describe(as_tpm))
    assert shares_config.model == tpm_config.model and shares_config.train == tpm_config.train
    assert shares_config.preprocess == tpm_config.preprocess
    pp = shares_config.preprocess
    assert (pp.normalize, pp.log1p, pp.target_sum) == (True, True, 1e4)
    assert "values look unlogged (unlogged expression (max" in caplog.text
    assert "shares of its expression)): each sample scaled to 10,000" in caplog.text
    from_shares = Preprocessor.from_config(pp).fit(as_shares)
    from_tpm = Preprocessor.from_config(tpm_config.preprocess).fit(as_tpm)
    assert list(from_shares.genes_) == list(from_tpm.genes_)
    transformed = np.asarray(from_shares.transform(as_shares).X)
    np.testing.assert_allclose(transformed, from_tpm.transform(as_tpm).X, rtol=1e-4, atol=1e-4)
    # The reference: log1p of each sample scaled to 1e4 over the genes kept (unscaled: the
    # standardised term scales each gene).
    assert not pp.scale and len(from_tpm.genes_) == tpm.shape[1]
    reference = np.log1p(tpm / tpm.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(transformed, reference, rtol=1e-4, atol=1e-4)
