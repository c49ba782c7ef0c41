import numpy as np
import pytest

from geneae.errors import InputError
from geneae.evaluate import top_genes, top_similar_genes


@pytest.fixture
def planted():
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(50)]
    w = rng.normal(scale=0.05, size=(50, 3))
    w[[4, 9, 17], 0] = [2.0, -3.0, 1.5]
    w[[30, 31], 1] = [-1.0, 2.5]
    w[[40], 2] = [5.0]
    return w, genes


def test_top_genes_recovers_planted(planted):
    w, genes = planted
    table = top_genes(w, genes, n=3)
    assert list(table.columns) == ["dim", "rank", "gene", "loading"]
    assert len(table) == 9
    dim0 = table[table.dim == 0]
    assert list(dim0.gene) == ["g9", "g4", "g17"]
    assert list(dim0.loading) == [-3.0, 2.0, 1.5]
    assert list(table[table.dim == 1].gene[:2]) == ["g31", "g30"]
    assert table[table.dim == 2].gene.iloc[0] == "g40"


def test_top_similar_genes(planted):
    w, genes = planted
    w = w.copy()
    w[5] = 2 * w[4]  # same direction as g4
    w[6] = -w[4]  # opposite
    table = top_similar_genes("g4", 3, loadings=w, genes=genes)
    assert table.gene.iloc[0] == "g5"
    assert table.similarity.iloc[0] == pytest.approx(1.0)
    assert "g4" not in set(table.gene)
    full = top_similar_genes("g4", 100, loadings=w, genes=genes)
    assert full.gene.iloc[-1] == "g6" and full.similarity.iloc[-1] == pytest.approx(-1.0)
    with pytest.raises(InputError, match="g4"):
        top_similar_genes("G4x", 3, loadings=w, genes=genes)
    # Another case that names one gene only is that gene (cd3e for CD3E).
    assert top_similar_genes("G4", 3, loadings=w, genes=genes).equals(table)
    twice = [*genes[:-2], "Ab", "AB"]  # two genes in other cases: none is guessed
    with pytest.raises(InputError, match="'ab' is not among"):
        top_similar_genes("ab", 3, loadings=w, genes=twice)
    assert len(top_similar_genes("AB", 3, loadings=w, genes=twice)) == 3  # named exactly


def test_top_genes_shape_mismatch(planted):
    w, genes = planted
    with pytest.raises(InputError, match="transpose"):
        top_genes(w.T, genes)
