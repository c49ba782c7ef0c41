"""A model's genes found in new data by name, then by Ensembl ID without its version."""

import numpy as np
import pandas as pd
import pytest

from geneae import datasets
from geneae.errors import DataWarning, InputError
from geneae.pp import Preprocessor
from geneae.pp.gene_matching import gene_columns


def test_names_first_then_the_unversioned_ensembl_id():
    genes = pd.Index(["ENSG00000000001.3", "ENSG00000000002.1", "CD3E", "ENSG00000000004.7"])
    names = pd.Index(["CD3E", "ENSG00000000002.1", "ENSG00000000001.5", "ENSG00000000009.1"])
    with pytest.warns(DataWarning, match=r"1 genes matched .*ENSG00000000001\.3 as .*\.5"):
        cols = gene_columns(genes, names)
    np.testing.assert_array_equal(cols, [2, 1, 0, -1])  # .4 has no gene of its ID: missing


def test_an_id_two_genes_share_is_not_matched_and_names_alone_warn_nothing(recwarn):
    genes = pd.Index(["ENSG00000000001.3"])
    twice = pd.Index(["ENSG00000000001.4", "ENSG00000000001.5"])  # which one? neither
    np.testing.assert_array_equal(gene_columns(genes, twice), [-1])
    np.testing.assert_array_equal(gene_columns(pd.Index(["A", "B"]), pd.Index(["B", "A"])), [1, 0])
    assert not recwarn.list


def test_a_fitted_preprocessor_takes_data_of_another_annotation_release():
    adata = datasets.synthetic_counts(n_cells=120, n_genes=30, n_clusters=3, seed=1)
    adata.var_names = [f"ENSG{i:011d}.{i % 4 + 1}" for i in range(30)]
    pre = Preprocessor(n_top_genes=0).fit(adata)
    newer = adata.copy()
    newer.var_names = [f"ENSG{i:011d}.{i % 4 + 2}" for i in range(30)]
    with pytest.warns(DataWarning, match="30 genes matched by their Ensembl ID"):
        moved = pre.transform(newer)
    np.testing.assert_array_equal(np.asarray(moved.X), np.asarray(pre.transform(adata).X))
    other = adata.copy()
    other.var_names = [f"ENSG{i + 100:011d}.1" for i in range(30)]  # other genes entirely
    with pytest.raises(InputError, match="30 of the 30 genes"):
        pre.transform(other)
