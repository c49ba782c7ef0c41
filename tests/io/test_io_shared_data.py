"""Every file of the shared real data, read by geneae.io and independently by h5py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

import geneae.io as gio
from geneae.io.h5ad import read_legacy_h5ad

# relative path -> (n_cells, n_genes, n_classes, obsm keys), from the data README.
PLAIN_H5 = {
    "worm_neuron/worm_neuron_cell.h5": (4186, 13488, 10, []),
    "worm_neuron/worm_neuron_cell_top2000.h5": (4186, 2000, 10, []),
    "mouse_bladder/mouse_bladder_cell_select_2100.h5": (2100, 20670, 16, []),
    "mouse_bladder/mouse_bladder_cell_top2000.h5": (2746, 2003, 16, []),
    "pbmc_10x/10X_PBMC_top2000.h5": (4271, 2000, 8, []),
    "pbmc_10x/10X_PBMC_select_2100_top2000.h5": (2100, 2000, 8, []),
    "cite_cbmc/CITE_CBMC_counts_top2000.h5": (8617, 2000, 15, ["ADT_X"]),
}
PBMC68K = "pbmc68k_reduced/10x_pbmc68k_reduced.h5ad"
PBMC68K_CLASSES = {
    "Dendritic": 240,
    "CD14+ Monocyte": 129,
    "CD19+ B": 95,
    "CD4+/CD25 T Reg": 68,
    "CD8+ Cytotoxic T": 54,
    "CD8+/CD45RA+ Naive Cytotoxic": 43,
    "CD56+ NK": 31,
    "CD4+/CD45RO+ Memory": 19,
    "CD34+": 13,
    "CD4+/CD45RA+/CD25- Naive T": 8,
}


def test_every_shared_file_is_covered(shared_data: Path) -> None:
    on_disk = {
        p.relative_to(shared_data).as_posix()
        for p in shared_data.rglob("*")
        if p.suffix in {".h5", ".h5ad", ".csv", ".tsv", ".gct", ".npy", ".npz", ".mtx", ".gz"}
    }
    assert on_disk == set(PLAIN_H5) | {PBMC68K}, "add new shared files to these tests"


@pytest.mark.parametrize("rel", sorted(PLAIN_H5))
def test_plain_h5_matches_h5py(shared_file: Callable[[str], Path], rel: str) -> None:
    path = shared_file(rel)
    n_cells, n_genes, n_classes, obsm = PLAIN_H5[rel]
    adata = gio.read(path)
    with h5py.File(path, "r") as f:
        x = f["X"][()]
        y = f["Y"][()]
        extra = {k: f[k][()] for k in obsm}
    assert adata.shape == x.shape == (n_cells, n_genes)
    assert adata.X.dtype == np.float32
    # the files' dense count matrices are mostly zeros: kept as CSR (geneae.io.finalize)
    assert sp.isspmatrix_csr(adata.X)
    np.testing.assert_array_equal(adata.X.toarray(), x.astype(np.float32))
    assert adata.layers["counts"] is adata.X
    expected = [str(int(v)) for v in y]
    assert adata.obs["label"].astype(str).tolist() == expected
    assert len(adata.obs["label"].cat.categories) == n_classes
    # numeric order of the categories, not text order ("10" after "9")
    assert adata.obs["label"].cat.categories.tolist() == [str(i) for i in range(1, n_classes + 1)]
    assert sorted(adata.obsm.keys()) == obsm
    for key, values in extra.items():
        np.testing.assert_array_equal(adata.obsm[key], values)
    assert adata.obs_names[0] == "cell_0000" and adata.var_names[-1].startswith("gene_")
    assert adata.obs_names.is_unique and adata.var_names.is_unique
    assert adata.uns["geneae_source"] == {"path": str(path), "format": "h5", "label_key": "Y"}
    summary = gio.summarize(adata)
    assert summary["value_type"] == "raw counts"
    assert summary["n_classes"] == n_classes
    assert sum(summary["class_sizes"].values()) == n_cells
    assert summary["obsm"] == obsm


def test_worm_class_sizes_match_readme(shared_file: Callable[[str], Path]) -> None:
    adata = gio.read(shared_file("worm_neuron/worm_neuron_cell_top2000.h5"))
    sizes = gio.summarize(adata)["class_sizes"]
    assert sizes == {
        "3": 1015,
        "1": 842,
        "4": 443,
        "5": 400,
        "2": 334,
        "6": 314,
        "7": 305,
        "9": 239,
        "8": 224,
        "10": 70,
    }
    assert list(sizes.values()) == sorted(sizes.values(), reverse=True)


def _pbmc68k_reference(path: Path) -> dict[str, np.ndarray]:
    """Independent h5py read of the legacy layout (as in the data README)."""
    with h5py.File(path, "r") as f:
        obs = f["obs"][()]
        names = [c.decode() for c in f["uns/bulk_labels_categories"][()]]
        raw = f["raw.X"]
        return {
            "X": f["X"][()],
            "labels": np.array([names[i] for i in obs["bulk_labels"]]),
            "cells": np.array([c.decode() for c in obs["index"]]),
            "genes": np.array([g.decode() for g in f["var"][()]["index"]]),
            "raw_data": raw["data"][()],
            "raw_indptr": raw["indptr"][()],
        }


def _check_pbmc68k(adata: ad.AnnData, ref: dict[str, np.ndarray]) -> None:
    assert adata.shape == (700, 765)
    np.testing.assert_array_equal(np.asarray(adata.X), ref["X"])
    assert adata.obs_names.tolist() == ref["cells"].tolist()
    assert adata.var_names.tolist() == ref["genes"].tolist()
    assert adata.obs["label"].astype(str).tolist() == ref["labels"].tolist()
    assert dict(Counter(adata.obs["label"].astype(str))) == PBMC68K_CLASSES


def test_pbmc68k_h5ad(shared_file: Callable[[str], Path]) -> None:
    path = shared_file(PBMC68K)
    ref = _pbmc68k_reference(path)
    adata = gio.read(path, use_raw=False)  # X's z-scores as stored
    _check_pbmc68k(adata, ref)
    assert "counts" not in adata.layers  # scaled data, not counts
    # by default they give way to the log values scanpy's workflow kept in .raw
    logged = gio.read(path)
    assert logged.obs_names.tolist() == ref["cells"].tolist()
    np.testing.assert_array_equal(sp.csr_matrix(logged.X).data, ref["raw_data"])
    np.testing.assert_array_equal(sp.csr_matrix(logged.X).indptr, ref["raw_indptr"])
    assert gio.summarize(logged)["value_type"] == "log-normalised"
    assert adata.uns["geneae_source"]["label_key"] == "bulk_labels"
    np.testing.assert_array_equal(adata.raw.X.data, ref["raw_data"])
    summary = gio.summarize(adata)
    assert summary["value_type"] == "standardised"
    assert summary["class_sizes"] == PBMC68K_CLASSES
    assert summary["library_size"] is None


def test_pbmc68k_legacy_reader(shared_file: Callable[[str], Path]) -> None:
    path = shared_file(PBMC68K)
    ref = _pbmc68k_reference(path)
    adata = read_legacy_h5ad(path)
    with h5py.File(path, "r") as f:
        categories = [c.decode() for c in f["uns/bulk_labels_categories"][()]]
    assert adata.obs["bulk_labels"].cat.categories.tolist() == categories
    assert adata.obsm["X_pca"].shape == (700, 50)
    assert adata.raw.X.shape == (700, 765)
    np.testing.assert_array_equal(adata.raw.X.data, ref["raw_data"])
    np.testing.assert_array_equal(adata.raw.X.indptr, ref["raw_indptr"])
    # louvain codes become their category names
    assert set(adata.obs["louvain"].cat.categories) == {str(i) for i in range(11)}


def test_pbmc68k_falls_back_to_legacy_reader(
    shared_file: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_file(PBMC68K)

    def refuse(*args: object, **kwargs: object) -> None:
        raise KeyError("simulated: anndata cannot read this layout")

    monkeypatch.setattr(ad, "read_h5ad", refuse)
    adata = gio.read(path, use_raw=False)
    _check_pbmc68k(adata, _pbmc68k_reference(path))


def test_pbmc68k_backed(shared_file: Callable[[str], Path]) -> None:
    path = shared_file(PBMC68K)
    adata = gio.read(path, backed=True)
    try:
        assert adata.isbacked
        assert isinstance(adata.X, h5py.Dataset)
        assert adata.obs["label"].value_counts()["Dendritic"] == 240
        summary = gio.summarize(adata)
        assert summary["n_cells"] == 700 and summary["storage"] == "dense"
    finally:
        adata.file.close()
