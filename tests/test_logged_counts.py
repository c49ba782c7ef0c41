"""Counts kept as their logs in X are taken back as the counts (``sc.pp.log1p`` alone).

``log(x + 1)`` of whole numbers — scanpy's log1p of counts that were never normalised,
log2(count + 1) of bulk tables — is told by every value being the log of a whole number;
the counts then serve as ``layers["counts"]`` and the count models train on them, as on
the same counts given as they are.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from geneae.facts import FactsAccumulator, describe
from geneae.io import read
from geneae.io.backed import open_backed
from geneae.io.raw import as_read_from_a_file
from geneae.logcounts import COUNT_LOG_EVIDENCE, counts_of, counts_under_log
from geneae.logscale import LogScale
from geneae.model_inputs import as_the_model_reads, prepare_training_input
from tests.test_ln_small_totals import log_table, shallow_counts

LN, LOG2, LOG10 = LogScale("ln", 1.0), LogScale("log2", 1.0), LogScale("log10", 1.0)


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def umi_counts(n_cells: int = 300, n_genes: int = 400, seed: int = 0) -> np.ndarray:
    """Shallow UMI-like counts with a few deep genes (counts from 0 to thousands)."""
    counts = shallow_counts(n_cells, n_genes, seed)
    rng = np.random.default_rng(seed)
    counts[:, :5] += rng.poisson(rng.uniform(100, 5000, (n_cells, 5)))  # some deep genes
    return counts


def logged(counts: np.ndarray, scale: LogScale) -> np.ndarray:
    """``scale`` of the counts, stored as float32 as files hold them."""
    return scale.redo(counts).astype(np.float32)


def as_adata(x: np.ndarray | sp.csr_matrix) -> ad.AnnData:
    n, g = x.shape
    return ad.AnnData(
        x,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{j}" for j in range(g)]),
    )


# -- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [LN, LOG2, LOG10], ids=str)
def test_every_log_of_whole_numbers_gives_its_counts_back(scale: LogScale) -> None:
    counts = umi_counts()
    assert counts.max() > 1000
    found = counts_under_log(logged(counts, scale).ravel())
    assert found is not None
    assert found[0] == scale
    np.testing.assert_array_equal(found[1], counts.ravel())


def test_logs_written_to_four_decimals_give_the_counts_back() -> None:
    counts = umi_counts()
    written = np.round(LN.redo(counts), 4)
    found = counts_under_log(written.ravel())
    assert found is not None
    np.testing.assert_array_equal(found[1], counts.ravel())


def test_normalised_log_values_are_no_logs_of_counts() -> None:
    counts = shallow_counts()
    for target in (1e4, None):  # scanpy's classic total and its median total
        values = _dense(log_table(counts, target).X)
        assert counts_under_log(values.ravel()) is None
    libraries = counts.sum(1, keepdims=True)
    assert counts_under_log(np.log2(counts / libraries * 1e6 + 1).ravel()) is None  # log2 CPM
    assert counts_under_log(np.log2(counts + 0.5).ravel()) is None  # another pseudo-count


def test_values_that_fit_any_log_near_their_size_are_no_evidence() -> None:
    # Deep values written to 4 decimals land on the log of some whole number whatever they
    # are (their whole numbers lie closer than the decimals): no counts are read from them.
    rng = np.random.default_rng(1)
    deep = np.round(rng.uniform(np.log(1e5), np.log(1e6), 2 * COUNT_LOG_EVIDENCE), 4)
    assert counts_under_log(deep) is None
    # A few small logs of whole numbers beside them are not enough either.
    assert counts_under_log(np.concatenate([deep, np.log1p(np.arange(1.0, 50.0))])) is None


def test_one_value_off_the_logs_of_whole_numbers_keeps_its_fraction() -> None:
    values = logged(umi_counts(), LN).ravel()
    values[123] += 0.01
    assert counts_under_log(values) is None
    undone = counts_of(values, LN)
    assert undone[123] != np.round(undone[123])
    assert np.all(np.delete(undone, 123) == np.round(np.delete(undone, 123)))


# -- files, on disk and in Python ----------------------------------------------------------
def test_a_file_of_log1p_counts_is_read_with_its_counts(tmp_path: Path, caplog) -> None:
    counts = umi_counts()
    path = tmp_path / "log1p_counts.h5ad"
    as_adata(sp.csr_matrix(logged(counts, LN))).write_h5ad(path)
    with caplog.at_level(logging.INFO, logger="geneae.io.logged_counts"):
        adata = read(path, labels_required=False)
    assert "holds ln(x+1) of whole numbers" in caplog.text and "e^v - 1" in caplog.text
    np.testing.assert_array_equal(_dense(adata.layers["counts"]), counts)
    np.testing.assert_array_equal(_dense(adata.X), logged(counts, LN))  # X as it was
    assert adata.uns["geneae_source"]["counts_from"] == "e^v - 1 of X's ln(x+1)"
    facts = describe(adata)
    assert facts.counts_in == "layers['counts']"


def test_a_text_table_of_log2_counts_is_read_with_its_counts(tmp_path: Path) -> None:
    counts = umi_counts(n_cells=60)
    path = tmp_path / "log2_counts.csv"
    frame = pd.DataFrame(logged(counts, LOG2), index=[f"c{i}" for i in range(60)])
    frame.columns = [f"g{j}" for j in range(counts.shape[1])]
    frame.to_csv(path, float_format="%.4f")
    adata = read(path, labels_required=False, transpose=False)
    np.testing.assert_array_equal(_dense(adata.layers["counts"]), counts)


def test_a_store_read_by_rows_gives_the_same_counts(tmp_path: Path) -> None:
    counts = umi_counts()
    path = tmp_path / "log1p_counts.h5ad"
    as_adata(sp.csr_matrix(logged(counts, LN))).write_h5ad(path)
    with open_backed(path, labels_required=False) as data:
        assert data.counts is not None and data.counts.log_of_counts == LN
        np.testing.assert_array_equal(_dense(data.counts.rows(0, 300)), counts)
        acc = FactsAccumulator(data.x.shape[1], has_counts_layer=True)
        for start in range(0, 300, 64):
            stop = min(start + 64, 300)
            acc.add(data.x.rows(start, stop), data.counts.rows(start, stop))
    assert acc.facts() == describe(read(path, labels_required=False))


def test_a_store_whose_later_rows_are_no_logs_of_counts_gets_no_counts(tmp_path: Path) -> None:
    # The first rows decide how the store is read; the pass over every row finds the rest.
    counts = umi_counts(n_cells=1100)
    values = logged(counts, LN)
    values[1050:] = _dense(log_table(counts[1050:], 1e4).X)
    path = tmp_path / "mixed.h5ad"
    as_adata(sp.csr_matrix(values)).write_h5ad(path)
    with open_backed(path, labels_required=False) as data:
        assert data.counts is not None
        acc = FactsAccumulator(data.x.shape[1], has_counts_layer=True)
        for start in range(0, 1100, 500):
            stop = min(start + 500, 1100)
            acc.add(data.x.rows(start, stop), data.counts.rows(start, stop))
    assert acc.facts().counts_in is None
    assert "counts" not in read(path, labels_required=False).layers  # in memory alike


def test_an_anndata_in_python_is_read_as_its_file_and_not_changed() -> None:
    counts = umi_counts()
    adata = as_adata(sp.csr_matrix(logged(counts, LN)))
    seen = as_read_from_a_file(adata, None)
    np.testing.assert_array_equal(_dense(seen.layers["counts"]), counts)
    assert "counts" not in adata.layers


# -- what the model trains on --------------------------------------------------------------
def _model_input(adata: ad.AnnData):
    """The resolved configuration, genes, input and target the default model trains on."""
    import torch

    from geneae import RunConfig

    given = prepare_training_input(RunConfig(), as_the_model_reads(adata, None, None), None)
    tensors = given.data.tensors
    assert tensors.target is not None
    rows = torch.arange(tensors.n_obs)
    x = tensors.x.rows_and_stored(rows)[0].numpy()
    return given, x, tensors.target.rows_and_stored(rows)[0].numpy()


def test_the_model_trains_on_the_counts_as_if_they_were_given() -> None:
    counts = umi_counts()
    from_logs, x_logs, target_logs = _model_input(as_adata(sp.csr_matrix(logged(counts, LN))))
    from_counts, x_counts, target_counts = _model_input(as_adata(sp.csr_matrix(counts)))
    assert from_logs.config.model.likelihood == from_counts.config.model.likelihood == "nb"
    assert from_logs.genes == from_counts.genes
    np.testing.assert_allclose(x_logs, x_counts, atol=1e-5)
    np.testing.assert_array_equal(target_logs, target_counts)


# -- on the command line -------------------------------------------------------------------
def test_info_names_the_counts_and_a_run_says_so_once(tmp_path: Path, capsys) -> None:
    from geneae.cli import main

    path = tmp_path / "log1p_counts.h5ad"
    as_adata(sp.csr_matrix(logged(umi_counts(), LN))).write_h5ad(path)
    assert main(["info", str(path)]) == 0
    assert "e^v - 1 of X's ln(x+1)" in capsys.readouterr().out
    config = tmp_path / "short.yaml"
    config.write_text("train:\n  max_epochs: 1\nevaluate:\n  report: false\n")
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # the store is sized on disk and read in memory: its note is said once all the same
    assert out.count("holds ln(x+1) of whole numbers") == 1
    assert "likelihood: nb (the data hold raw counts in layers['counts'])" in out
