"""summarize / format_summary on small data with known answers."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from rich.console import Console

import geneae.io as gio


def _render(table: object) -> str:
    console = Console(record=True, width=120)
    console.print(table)
    return console.export_text()


def test_summary_of_sparse_counts_with_labels() -> None:
    x = sp.csr_matrix(np.array([[1, 0, 0, 2], [0, 0, 0, 5], [3, 3, 0, 0]], dtype=np.float32))
    adata = ad.AnnData(
        x, obs=pd.DataFrame({"label": pd.Categorical(["b", "a", "b"])}, index=["c1", "c2", "c3"])
    )
    adata.obsm["X_pca"] = np.zeros((3, 2))
    adata.layers["counts"] = adata.X
    summary = gio.summarize(adata)
    assert summary["n_cells"] == 3 and summary["n_genes"] == 4
    assert summary["value_type"] == "raw counts"
    assert summary["storage"] == "sparse" and summary["dtype"] == "float32"
    assert summary["sparsity"] == pytest.approx(1 - 5 / 12)
    assert summary["library_size"] == {"min": 3, "median": 5, "max": 6}
    assert summary["label_key"] == "label"
    assert list(summary["class_sizes"].items()) == [("b", 2), ("a", 1)]
    assert summary["obsm"] == ["X_pca"] and summary["layers"] == ["counts"]
    text = _render(gio.format_summary(summary, "data/counts.h5ad"))
    for fragment in (
        "data/counts.h5ad",
        "3 samples x 4 genes",
        "raw counts",
        "sparse float32, 58.3% zeros",
        "min 3, median 5, max 6",
        "2 classes - b: 2, a: 1",
        "X_pca",
    ):
        assert fragment in text


def test_summary_of_dense_log_data_without_labels() -> None:
    adata = ad.AnnData(np.log1p(np.arange(12, dtype=np.float32).reshape(3, 4) / 3))
    summary = gio.summarize(adata)
    assert summary["value_type"] == "log-normalised"
    assert summary["storage"] == "dense" and summary["library_size"] is None
    assert summary["label_key"] is None and summary["class_sizes"] == {}
    assert summary["sparsity"] == pytest.approx(1 / 12)
    assert "labels" in _render(gio.format_summary(summary, "x"))


def test_summary_names_the_log_of_values_with_a_pseudo_count() -> None:
    tpm = np.array([[0.0, 12.5, 3.0], [7.0, 0.0, 150.0]])
    adata = ad.AnnData(np.round(np.log2(tpm + 0.001), 4).astype(np.float32))  # UCSC Xena's
    summary = gio.summarize(adata)
    assert summary["value_type"] == "other" and summary["log_scale"] == "log2(x+0.001)"
    assert "other: log2(x+0.001), undone by default" in _render(gio.format_summary(summary, "x"))
    assert gio.summarize(ad.AnnData(np.log2(tpm + 0.5)))["log_scale"] is None  # not a round one


def test_many_classes_are_abbreviated() -> None:
    labels = [f"type{i}" for i in range(12) for _ in range(i + 1)]
    adata = ad.AnnData(
        np.ones((len(labels), 2), dtype=np.float32),
        obs=pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(len(labels))]),
    )
    summary = gio.summarize(adata)
    assert next(iter(summary["class_sizes"])) == "type11"
    assert "(4 more)" in _render(gio.format_summary(summary, "x"))


def test_cells_without_a_label_are_counted_apart_not_as_a_class() -> None:
    labels = pd.Categorical(["b", None, "a", "b", None])
    obs = pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(5)])
    obs["cell_type"] = obs["cell_type"].astype(object)
    obs.loc["c0", "cell_type"] = " "  # a blank annotation is missing too
    summary = gio.summarize(ad.AnnData(np.ones((5, 3), np.float32), obs=obs))
    assert summary["class_sizes"] == {"b": 1, "a": 1} and summary["n_classes"] == 2
    assert summary["n_unlabelled"] == 3
    assert "3 without a label" in _render(gio.format_summary(summary, "t"))


def test_other_obs_columns_are_listed_as_annotations() -> None:
    obs = pd.DataFrame(
        {"cell_type": ["a", "b"], "batch": ["1", "2"], "percent.mt": [0.5, 1.0]},
        index=["c1", "c2"],
    )
    obs = obs.assign(**{f"qc{i}": [0, 1] for i in range(10)})
    summary = gio.summarize(ad.AnnData(np.ones((2, 3), dtype=np.float32), obs=obs))
    # the label column is not an annotation; the others are, in file order
    assert summary["label_key"] == "cell_type"
    assert summary["annotations"] == ["batch", "percent.mt", *(f"qc{i}" for i in range(10))]
    text = _render(gio.format_summary(summary, "x"))
    assert "batch, percent.mt, qc0, qc1, qc2, qc3, qc4, qc5, ... (4 more)" in text
