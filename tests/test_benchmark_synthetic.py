"""The benchmark's synthetic data of one property (benchmarks/synthetic.py)."""

import numpy as np
import pytest

from benchmarks.synthetic import synthetic_hierarchy


def _label_profiles(counts, labels):
    # Each label's mean log-normalised expression (as a PCA user's input would be).
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    names = sorted(set(labels))
    return names, np.stack([logged[labels == name].mean(0) for name in names])


def test_hierarchy_counts_have_subtypes_closer_within_a_lineage_than_across():
    counts, labels = synthetic_hierarchy(n_cells=3000, n_genes=1000, n_lineages=3, subtypes=4)
    assert counts.shape == (3000, 1000) and counts.dtype == np.float32
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    assert 0.5 < (counts == 0).mean() < 0.98  # sparse like droplet UMI counts
    names, profiles = _label_profiles(counts, labels)
    assert len(names) == 12 and all(n.startswith(("L0_", "L1_", "L2_")) for n in names)
    lineage = np.array([n.split("_")[0] for n in names])
    dist = np.linalg.norm(profiles[:, None] - profiles[None], axis=-1)
    same = lineage[:, None] == lineage[None]
    off_diagonal = ~np.eye(len(names), dtype=bool)
    within, across = dist[same & off_diagonal], dist[~same]
    # Two levels: every pair of subtypes of one lineage is closer than any pair across.
    assert within.max() < across.min()
    # ... yet the subtypes are there to find: held-out cells go to the nearest label profile
    # (from the other cells) of their own subtype mostly, and of their lineage almost always.
    half = np.arange(len(labels)) % 2 == 0
    _, fitted = _label_profiles(counts[half], labels[half])
    logged = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)[~half]
    nearest = np.array(names)[((logged[:, None] - fitted[None]) ** 2).sum(-1).argmin(1)]
    truth = labels[~half]
    assert 0.7 < (nearest == truth).mean() < 0.95  # subtle, not trivial
    lineage_of = np.vectorize(lambda name: name.split("_")[0])
    assert (lineage_of(nearest) == lineage_of(truth)).mean() > 0.98


def test_hierarchy_is_reproducible_from_its_seed():
    a = synthetic_hierarchy(n_cells=200, n_genes=100, seed=3)
    b = synthetic_hierarchy(n_cells=200, n_genes=100, seed=3)
    c = synthetic_hierarchy(n_cells=200, n_genes=100, seed=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_bulk_log2_centred_is_the_tpm_table_logged_and_centred_per_gene():
    from benchmarks.common import dataset_kind, load_dataset, unlogged
    from benchmarks.synthetic import synthetic_bulk
    from geneae.facts import describe

    args = {"n_samples": 40, "n_genes": 300, "n_types": 3, "seed": 2}
    tpm, types = synthetic_bulk(**args)
    centred, same_types = synthetic_bulk(**args, values="log2_centred")
    np.testing.assert_array_equal(types, same_types)
    logged = np.log2(tpm.astype(np.float64) + 1.0)
    np.testing.assert_allclose(centred, logged - logged.mean(0), atol=1e-5)
    # geneae reads such a table as centred log values, not z-scores: its genes are ranked
    facts = describe(load_dataset("bulk_log2_centred"))
    assert facts.value_type == "standardised" and not facts.unit_variance
    assert dataset_kind("bulk_log2_centred") == "bulk" and not unlogged("bulk_log2_centred")
    assert unlogged("bulk_tcga_like") == 1e6 and unlogged("pbmc_10x") is None


def test_bulk_read_counts_are_the_same_tumours_as_integer_reads():
    from benchmarks.synthetic import synthetic_bulk

    args = {"n_samples": 40, "n_genes": 300, "n_types": 3, "seed": 2}
    reads, types = synthetic_bulk(**args, values="read_counts")
    estimated, same_types = synthetic_bulk(**args, values="estimated_counts")
    np.testing.assert_array_equal(types, same_types)
    assert np.array_equal(reads, np.round(reads)) and reads.min() >= 0
    # RSEM's estimates are the same reads, each scaled by U(0.9, 1.1) and rounded
    ratio = estimated[reads > 0] / reads[reads > 0]
    assert ratio.min() >= 0.9 - 1e-2 and ratio.max() <= 1.1 + 1e-2
    # depth left in, spread as wide as the estimated counts' (log sd 0.5 around 30 M)
    depth = reads.sum(1)
    assert 1e7 < np.median(depth) < 1e8 and np.std(np.log(depth)) > 0.3
    with pytest.raises(ValueError, match="read_counts"):
        synthetic_bulk(**args, values="reads")
