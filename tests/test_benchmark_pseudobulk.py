"""Bulk samples mixed from cell types' profiles (benchmarks/pseudobulk.py)."""

import numpy as np
import scipy.sparse as sp

from benchmarks.pseudobulk import pseudobulk, type_profiles


def _cells(seed=0):
    # 3 types of 30 / 20 / 10 cells; gene 0 is seen in type "a" only.
    rng = np.random.default_rng(seed)
    types = np.array(["a"] * 30 + ["b"] * 20 + ["c"] * 10)
    counts = rng.poisson(2.0, (60, 50)).astype(np.float32)
    counts[:, 0] = 0
    counts[:5, 0] = 4
    return sp.csr_matrix(counts), types


def test_type_profiles_are_summed_counts_shrunk_towards_all_cells():
    counts, types = _cells()
    dense = counts.toarray().astype(np.float64)
    kinds, sizes, profiles = type_profiles(counts, types, prior_counts=100.0)
    assert list(kinds) == ["a", "b", "c"] and list(sizes) == [30, 20, 10]
    overall = dense.sum(0) / dense.sum()
    for row, kind in zip(profiles, kinds, strict=True):
        summed = dense[types == kind].sum(0)
        np.testing.assert_allclose(row, (summed + 100.0 * overall) / (summed.sum() + 100.0))
    np.testing.assert_allclose(profiles.sum(1), 1.0)
    # A gene seen in one type only is not exactly absent from the others ...
    assert (profiles[1:, 0] > 0).all()
    # ... but far below its own type, and with no prior it is absent.
    assert profiles[0, 0] > 10 * profiles[1, 0]
    assert (type_profiles(counts, types, prior_counts=0.0)[2][1:, 0] == 0).all()


def test_pseudobulk_is_tpm_of_mixtures_labelled_by_the_largest_types():
    counts, types = _cells()
    args = {"n_types": 2, "purity": (0.6, 0.9), "prior_counts": 100.0, "depth": 1e7}
    tpm, labels = pseudobulk(counts, types, n_samples=300, noise_sd=0.0, seed=1, **args)
    assert tpm.shape == (300, 50) and tpm.dtype == np.float32
    np.testing.assert_allclose(tpm.sum(1), 1e6, rtol=1e-5)
    assert set(labels) == {"a", "b"}  # the two most numerous types, never "c"
    # Without biological noise a sample is its mixture of profiles up to Poisson reads: a
    # sample of type a holds at least 60% of a, one of b at most 40%, so gene 0 (type a's)
    # is higher in every sample of a than in any sample of b.
    assert tpm[labels == "a", 0].min() > tpm[labels == "b", 0].max()
    again, same = pseudobulk(counts, types, n_samples=300, noise_sd=0.0, seed=1, **args)
    np.testing.assert_array_equal(tpm, again)
    np.testing.assert_array_equal(labels, same)
    other, _ = pseudobulk(counts, types, n_samples=300, noise_sd=0.0, seed=2, **args)
    assert not np.array_equal(tpm, other)


def test_pseudobulk_counts_are_the_reads_behind_the_tpm():
    counts, types = _cells()
    args = {"n_types": 2, "purity": (0.3, 0.8), "prior_counts": 100.0, "depth": 1e6}
    tpm, labels = pseudobulk(counts, types, n_samples=40, noise_sd=0.3, seed=4, **args)
    reads, same = pseudobulk(
        counts, types, n_samples=40, noise_sd=0.3, seed=4, values="counts", **args
    )
    np.testing.assert_array_equal(labels, same)
    assert np.array_equal(reads, np.round(reads)) and reads.min() >= 0
    np.testing.assert_allclose(reads / reads.sum(1, keepdims=True) * 1e6, tpm, rtol=1e-4)
    with np.testing.assert_raises(ValueError):
        pseudobulk(counts, types, n_samples=4, noise_sd=0.0, seed=0, values="fpkm", **args)


def test_pseudobulk_sets_are_bulk_sets_of_known_sources_whose_peers_log_per_million():
    from benchmarks.common import BULK_DATASETS, DATASETS, PSEUDOBULK_SETS, dataset_kind, unlogged

    for name, (source, values) in PSEUDOBULK_SETS.items():
        assert name in BULK_DATASETS and source in DATASETS and values in ("tpm", "counts")
        # log TPM / log CPM for the PCA peers, as on the synthetic bulk sets
        assert dataset_kind(name) == "bulk" and unlogged(name) == 1e6
