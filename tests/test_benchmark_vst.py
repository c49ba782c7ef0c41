"""benchmarks.vst: DESeq2's parametric VST, checked against its closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.vst import (
    dispersion_trend,
    normalised_log2,
    prefiltered,
    size_factors,
    transform,
    vst,
)


def _nb(rng: np.random.Generator, mean: np.ndarray, dispersion: np.ndarray) -> np.ndarray:
    """Negative-binomial draws of these means and dispersions (variance mean + d mean^2)."""
    r = 1.0 / dispersion
    return rng.negative_binomial(r, r / (r + mean)).astype(np.float64)


def test_size_factors_are_each_samples_scale_over_the_geometric_mean():
    rng = np.random.default_rng(0)
    base = rng.integers(1, 500, size=300).astype(np.float64)
    scale = np.exp(rng.normal(0.0, 0.5, 12))
    factors = size_factors(scale[:, None] * base)
    np.testing.assert_allclose(factors, scale / np.exp(np.log(scale).mean()), rtol=1e-10)


def test_size_factors_need_a_gene_read_in_every_sample():
    with pytest.raises(ValueError, match="every sample"):
        size_factors(np.array([[0.0, 3.0], [2.0, 0.0]]))


def test_the_dispersion_trend_is_recovered_from_negative_binomial_reads():
    rng = np.random.default_rng(1)
    asymptotic, extra = 0.05, 1.5
    mean = np.exp(rng.normal(3.0, 2.0, 4000))
    scale = np.exp(rng.normal(0.0, 0.3, 300))
    expected = scale[:, None] * mean
    reads = _nb(rng, expected, np.broadcast_to(asymptotic + extra / mean, expected.shape))
    factors = size_factors(reads)
    fitted = dispersion_trend(reads / factors[:, None], factors)
    assert fitted[0] == pytest.approx(asymptotic, rel=0.1)
    assert fitted[1] == pytest.approx(extra, rel=0.2)


def test_transform_has_its_closed_forms_at_zero_and_for_large_counts():
    a, b = 0.08, 2.0
    assert transform(np.array([0.0]), a, b)[0] == pytest.approx(np.log2((1 + b) / (4 * a)))
    big = np.array([1e5, 1e7])
    np.testing.assert_allclose(transform(big, a, b), np.log2(big), atol=2e-3)
    q = np.linspace(0.0, 1e3, 500)
    assert np.all(np.diff(transform(q, a, b)) > 0)


def test_transform_gives_every_mean_the_same_variance():
    # A VST's whole point: var(h(q)) ~ asymptotic / ln(2)^2 at any mean, where log2(q + 1)
    # is three times as variable at a mean of 20 as at 5,000.
    rng = np.random.default_rng(2)
    a, b = 0.05, 1.5
    target = a / np.log(2) ** 2
    for mean in (20.0, 200.0, 5000.0):
        reads = _nb(rng, np.full(20000, mean), np.full(20000, a + b / mean))
        assert transform(reads, a, b).var() == pytest.approx(target, rel=0.06)


def test_prefiltered_keeps_genes_of_ten_reads_or_more():
    counts = np.array([[0, 5, 9, 0], [0, 5, 0, 30]], dtype=np.float32)
    np.testing.assert_array_equal(prefiltered(counts), [False, True, False, True])


def test_vst_of_reads_is_the_transform_of_the_normalised_reads():
    rng = np.random.default_rng(3)
    mean = np.exp(rng.normal(3.0, 1.5, 800))
    scale = np.exp(rng.normal(0.0, 0.4, 60))
    reads = _nb(rng, scale[:, None] * mean, np.full((60, 800), 0.1))
    factors = size_factors(reads)
    normalised = reads / factors[:, None]
    expected = transform(normalised, *dispersion_trend(normalised, factors))
    out = vst(reads)
    assert out.dtype == np.float32 and out.shape == reads.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_bulk_vst_is_deseq2s_vst_of_the_read_counts_and_peers_take_it_as_logs():
    from benchmarks.common import dataset_kind, load_dataset, unlogged

    reads = load_dataset("bulk_read_counts")
    values = load_dataset("bulk_vst")
    kept = reads.X.sum(axis=0) >= 10
    assert 0 < values.n_vars == kept.sum() < reads.n_vars
    np.testing.assert_array_equal(values.obs["label"], reads.obs["label"])
    np.testing.assert_array_equal(values.var_names, reads.var_names[kept])
    np.testing.assert_allclose(values.X, vst(reads.X[:, kept]), rtol=1e-6)
    assert values.X.std(axis=0, dtype=np.float64).min() > 0
    assert dataset_kind("bulk_vst") == "bulk" and unlogged("bulk_vst") is None
    assert unlogged("bulk_read_counts") == 1e6


def test_normalised_log2_is_log2_of_the_counts_over_their_size_factors_plus_one():
    rng = np.random.default_rng(5)
    base = rng.integers(1, 300, size=200).astype(np.float64)
    base[0] = 0.0  # a gene never read sits at log2(1) = 0
    scale = np.array([0.5, 1.0, 2.0, 4.0])
    values = normalised_log2(scale[:, None] * base)
    # one composition at four depths: each size factor is its depth over the depths'
    # geometric mean, so every sample reads log2(base x that mean + 1)
    expected = np.log2(base * np.exp(np.log(scale).mean()) + 1.0)
    np.testing.assert_allclose(values, np.broadcast_to(expected, values.shape), rtol=1e-6)
    assert values[:, 0] == pytest.approx(0.0)
