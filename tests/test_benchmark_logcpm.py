"""benchmarks.logcpm: edgeR's TMM factors and log-CPM, checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.logcpm import log_cpm, tmm_factors


def test_samples_of_one_composition_get_factors_of_one():
    rng = np.random.default_rng(0)
    base = rng.integers(1, 1000, size=500).astype(np.float64)
    depth = np.exp(rng.normal(0.0, 0.5, 6))
    np.testing.assert_allclose(tmm_factors(depth[:, None] * base), 1.0, rtol=1e-10)


def test_a_sample_whose_few_genes_rise_gets_the_factor_of_the_rest():
    # Sample 1 is sample 0 with 10% of the genes three times higher. Those genes are trimmed
    # as extreme log ratios, so its factor against sample 0 is what the other genes' share
    # fell by: 1 / (1 + 2 s), s the raised genes' share of sample 0's reads.
    rng = np.random.default_rng(1)
    base = rng.uniform(50.0, 5000.0, size=1000)
    raised = base.copy()
    raised[:100] *= 3.0
    share = base[:100].sum() / base.sum()
    factors = tmm_factors(np.vstack([base, raised, base * 2.0]))
    assert factors[1] / factors[0] == pytest.approx(1.0 / (1.0 + 2.0 * share), rel=1e-10)
    assert factors[2] == pytest.approx(factors[0], rel=1e-10)
    assert np.exp(np.log(factors).mean()) == pytest.approx(1.0, rel=1e-12)


def test_log_cpm_is_edgers_formula_with_the_prior_scaled_to_each_library():
    counts = np.array([[0.0, 10.0, 90.0], [0.0, 20.0, 180.0]])  # one composition: factors 1
    libraries = np.array([100.0, 200.0])
    prior = 2.0 * libraries / libraries.mean()
    expected = np.log2((counts + prior[:, None]) / (libraries + 2 * prior)[:, None] * 1e6)
    np.testing.assert_allclose(log_cpm(counts), expected, rtol=1e-6)


def test_every_samples_zero_sits_at_one_floor_and_the_rest_totals_a_million_over_its_factor():
    rng = np.random.default_rng(2)
    counts = rng.poisson(rng.gamma(0.3, 200.0, size=(40, 800))).astype(np.float64)
    values = log_cpm(counts).astype(np.float64)
    libraries = counts.sum(axis=1) * tmm_factors(counts)
    floor = np.log2(2.0 * 1e6 / (libraries.mean() + 4.0))
    np.testing.assert_allclose(values[counts == 0], floor, atol=1e-5)
    # 2^v - 2^floor is counts / (L + 2 p) x 1e6: each sample's reads over its library.
    above = (2.0**values - 2.0**floor).sum(axis=1)
    share = counts.sum(axis=1) / (libraries * (1.0 + 4.0 / libraries.mean()))
    np.testing.assert_allclose(above, share * 1e6, rtol=1e-4)
