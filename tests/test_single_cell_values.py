"""Unlogged values of single cells (CPM of cells, counts after ambient-RNA removal): told
from bulk by their zeros, scaled to 1e4 per cell before log1p (design round 70)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import scipy.sparse as sp
from sklearn.preprocessing import StandardScaler

from geneae.facts import CELLS_ZEROS, FactsAccumulator, describe
from geneae.pp import Preprocessor
from geneae.resolve_preprocess import PRESET_STEPS
from geneae.resolve_values import UNLOGGED_TARGET


def sparse_cells(n_cells: int = 300, n_genes: int = 200, seed: int = 0) -> np.ndarray:
    """UMI-like counts of cells: about 90% zeros, a few hundred counts per cell."""
    rng = np.random.default_rng(seed)
    means = rng.lognormal(-2.3, 1.2, size=n_genes)
    depth = rng.lognormal(0.0, 0.4, size=(n_cells, 1))
    x = rng.poisson(means * depth).astype(np.float64)
    x[x.sum(axis=1) == 0, 0] = 1.0
    return x


def cpm(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=1, keepdims=True) * 1e6


def floor_share(x: np.ndarray) -> float:
    """The reference: numpy's share of finite entries at the finite minimum."""
    finite = x[np.isfinite(x)]
    return float(np.sum(x == finite.min()) / x.size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_floor_fraction_against_numpy_dense_sparse_and_streamed(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = sparse_cells(seed=seed) * rng.uniform(0.8, 1.0, size=(300, 200))  # not integers
    x[rng.random(x.shape) < 0.001] = np.nan
    logged = np.log2(np.where(np.isnan(x), x, x + 0.001))  # the floor, not 0, is the minimum
    for values in (x, logged):
        expected = floor_share(values)
        for stored in (values, sp.csr_matrix(np.nan_to_num(values, nan=7.0))):
            reference = expected if stored is values else floor_share(stored.toarray())
            facts = describe(ad.AnnData(stored.astype(np.float32)))
            assert facts.floor_fraction == pytest.approx(reference, abs=1e-12)
            streamed = FactsAccumulator(values.shape[1], has_counts_layer=False)
            for start in range(0, values.shape[0], 70):
                streamed.add(stored[start : start + 70].astype(np.float32), None)
            assert streamed.facts() == facts  # on disk as in memory


def test_stored_zeros_count_as_zeros() -> None:
    x = sp.csr_matrix(np.array([[0.0, 2.5], [1.5, 0.0]]))
    x.data[0] = 0.0  # an explicit 0 where 2.5 was
    assert describe(ad.AnnData(x)).floor_fraction == pytest.approx(0.75)


def test_single_cells_in_cpm_are_scaled_to_1e4_bulk_tpm_to_a_million() -> None:
    cells = cpm(sparse_cells()).astype(np.float32)
    facts = describe(ad.AnnData(cells))
    assert facts.value_type == "unlogged expression"
    assert facts.floor_fraction > CELLS_ZEROS and facts.single_cells
    pre = Preprocessor("auto", n_top_genes=0, clip=0.0)
    out = pre.fit_transform(ad.AnnData(sp.csr_matrix(cells)))
    assert pre.steps_.target_sum == PRESET_STEPS["counts"]["target_sum"] == 1e4
    # the input is scanpy's log1p(normalize_total(1e4)) of the cells, z-scored
    reference = ad.AnnData(cells.astype(np.float64))
    sc.pp.normalize_total(reference, target_sum=1e4)
    sc.pp.log1p(reference)
    expected = StandardScaler().fit_transform(reference.X)
    np.testing.assert_allclose(np.asarray(out.X), expected, atol=2e-4)
    # bulk: TPM of samples that express most genes keep the million
    rng = np.random.default_rng(1)
    tpm = cpm(rng.lognormal(2.0, 1.5, size=(60, 200)) * (rng.random((60, 200)) > 0.1))
    bulk = describe(ad.AnnData(tpm.astype(np.float32)))
    assert bulk.value_type == "unlogged expression" and not bulk.single_cells
    pre = Preprocessor("auto", n_top_genes=0).fit(ad.AnnData(tpm.astype(np.float32)))
    assert pre.steps_.target_sum == UNLOGGED_TARGET == 1e6


def test_a_log_of_cells_undone_is_scaled_as_the_cells_are() -> None:
    # log2(CPM + 1) of the same cells: undone, then the path of their CPM
    cells = cpm(sparse_cells()).astype(np.float32)
    logged = np.round(np.log2(cells.astype(np.float64) + 1), 4).astype(np.float32)
    pre = Preprocessor("auto", n_top_genes=0)
    out = pre.fit_transform(ad.AnnData(logged))
    ref = Preprocessor("auto", n_top_genes=0).fit_transform(ad.AnnData(cells))
    assert pre.steps_.unlog == "log2(x+1)" and pre.steps_.target_sum == 1e4
    np.testing.assert_allclose(out.X, ref.X, atol=2e-3)  # 4 decimals of log2


def test_counts_after_ambient_rna_removal_are_single_cells_at_1e4() -> None:
    # DecontX / SoupX without rounding: each count shrunk by the cell's contamination
    rng = np.random.default_rng(4)
    counts = sparse_cells(seed=4)
    counts[:, 0] += rng.poisson(80.0, size=counts.shape[0])  # a gene of high expression
    cleaned = counts * (1 - rng.beta(2, 18, size=(counts.shape[0], 1)))
    cleaned *= rng.uniform(0.85, 1.0, size=counts.shape)
    cleaned = cleaned[:, cleaned.sum(axis=0) > 0]
    adata = ad.AnnData(sp.csr_matrix(cleaned.astype(np.float32)))
    facts = describe(adata)
    assert facts.value_type == "unlogged expression" and not facts.has_counts
    assert facts.floor_fraction == pytest.approx(np.mean(cleaned == 0)) and facts.single_cells
    pre = Preprocessor("auto", n_top_genes=0)
    pre.fit(adata)
    assert pre.steps_.normalize and pre.steps_.log1p and pre.steps_.target_sum == 1e4
