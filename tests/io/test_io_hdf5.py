"""Plain HDF5 (X / Y) and h5ad files written here, read back and checked with h5py."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import geneae.io as gio
from geneae.errors import DataWarning, InputError


def test_plain_h5_with_names_and_per_cell_data(tmp_path: Path) -> None:
    path = tmp_path / "named.h5"
    x = np.arange(12, dtype=np.int32).reshape(4, 3)
    with h5py.File(path, "w") as f:
        f["X"] = x
        f["Y"] = np.array([0.0, 1.0, 1.0, 0.0])
        f["barcodes"] = np.array([b"c1", b"c2", b"c3", b"c4"])
        f["gene_names"] = np.array([b"A", b"B", b"C"])
        f["batch"] = np.array([b"b1", b"b1", b"b2", b"b2"])
        f["protein"] = np.ones((4, 2))
        f["unrelated"] = np.ones(7)
    adata = gio.read(path)
    np.testing.assert_array_equal(adata.X, x.astype(np.float32))
    assert adata.obs_names.tolist() == ["c1", "c2", "c3", "c4"]
    assert adata.var_names.tolist() == ["A", "B", "C"]
    assert adata.obs["batch"].tolist() == ["b1", "b1", "b2", "b2"]
    assert adata.obs["label"].tolist() == ["0", "1", "1", "0"]
    assert adata.obsm["protein"].shape == (4, 2)


def test_plain_h5_sparse_x(tmp_path: Path) -> None:
    path = tmp_path / "sparse.h5"
    m = sp.random(5, 4, density=0.5, format="csr", random_state=0)
    with h5py.File(path, "w") as f:
        g = f.create_group("X")
        g.attrs["h5sparse_format"] = "csr"
        g.attrs["h5sparse_shape"] = m.shape
        g["data"], g["indices"], g["indptr"] = m.data, m.indices, m.indptr
    adata = gio.read(path)
    assert adata.X.format == "csr"
    np.testing.assert_allclose(adata.X.toarray(), m.toarray(), rtol=1e-6)


def test_plain_h5_labels_of_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "badY.h5"
    with h5py.File(path, "w") as f:
        f["X"] = np.ones((4, 3))
        f["Y"] = np.ones(3)
    with pytest.raises(InputError, match=r"badY\.h5: labels 'Y' have shape \(3,\).*4 cells"):
        gio.read(path)


def test_plain_h5_x_not_2d(tmp_path: Path) -> None:
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f["X"] = np.ones(4)
    with pytest.raises(InputError, match=r"flat\.h5: dataset 'X' has shape \(4,\)"):
        gio.read(path)


def test_labels_file_overrides_y(tmp_path: Path) -> None:
    path = tmp_path / "xy.h5"
    with h5py.File(path, "w") as f:
        f["X"] = np.ones((3, 2))
        f["Y"] = np.array([1, 2, 3])
    labels = tmp_path / "names.txt"
    labels.write_text("T\nB\nNK\n")
    adata = gio.read(path, labels=str(labels))
    assert adata.obs["label"].tolist() == ["T", "B", "NK"]
    assert adata.obs["Y"].tolist() == [1, 2, 3]


def _small_adata() -> ad.AnnData:
    x = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 3], [4, 5, 0], [0, 1, 1]], dtype=np.float64))
    obs = pd.DataFrame(
        {"CellType": pd.Categorical(["T", "B", "T", "NK"]), "batch": ["a", "a", "b", "b"]},
        index=[f"c{i}" for i in range(4)],
    )
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=["g1", "g2", "g3"]))


def test_h5ad_roundtrip_keeps_sparse_and_labels(tmp_path: Path) -> None:
    path = gio.write_h5ad(_small_adata(), tmp_path / "small.h5ad")
    adata = gio.read(path)
    assert sp.issparse(adata.X) and adata.X.format == "csr" and adata.X.dtype == np.float32
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(adata.X.data, f["X/data"][()])
        assert f["X/data"].compression == "gzip"
    assert adata.obs["label"].tolist() == ["T", "B", "T", "NK"]  # CellType, case-insensitive
    assert adata.uns["geneae_source"]["label_key"] == "CellType"
    assert adata.layers["counts"] is adata.X
    assert gio.read(path, labels="batch").obs["label"].tolist() == ["a", "a", "b", "b"]


def test_h5ad_unknown_label_column_lists_columns(tmp_path: Path) -> None:
    path = gio.write_h5ad(_small_adata(), tmp_path / "small.h5ad")
    with pytest.raises(InputError, match=r"small\.h5ad: no label column 'celltype'.*CellType"):
        gio.read(path, labels="celltype")


def test_h5ad_duplicate_names_warn(tmp_path: Path) -> None:
    adata = _small_adata()
    path = tmp_path / "dups.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # anndata's own duplicate-name notice
        adata.obs_names = ["c0", "c0", "c1", "c1"]
        adata.write_h5ad(path)
    with pytest.warns(DataWarning, match=r"dups\.h5ad: 2 duplicated sample name"):
        read = gio.read(path)
    assert read.obs_names.tolist() == ["c0", "c0-1", "c1", "c1-1"]


def test_h5ad_unreadable_layout(tmp_path: Path) -> None:
    path = tmp_path / "weird.h5ad"
    with h5py.File(path, "w") as f:
        f["obs"] = np.ones(3)
        f["var"] = np.ones(2)
    with pytest.raises(InputError, match=r"weird\.h5ad: not readable as h5ad.*anndata"):
        gio.read(path)


def test_raw_counts_in_raw_become_the_counts_layer(tmp_path: Path) -> None:
    # scanpy's habit: counts kept in .raw (all genes), X log-normalised on a gene subset
    rng = np.random.default_rng(5)
    counts = rng.poisson(2.0, size=(20, 12)).astype(np.float32)
    full = ad.AnnData(sp.csr_matrix(counts), var=pd.DataFrame(index=[f"g{j}" for j in range(12)]))
    order = [7, 2, 9, 0, 4]  # X keeps five genes, in another order
    lognorm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)[:, order]
    adata = ad.AnnData(lognorm, var=pd.DataFrame(index=full.var_names[order]))
    adata.raw = full
    path = tmp_path / "with_raw.h5ad"
    adata.write_h5ad(path)
    read = gio.read(path)
    np.testing.assert_array_equal(read.layers["counts"].toarray(), counts[:, order])
    np.testing.assert_allclose(read.X, lognorm, rtol=1e-6)  # X itself is left as it is
    # .raw without counts, or without every gene of X: nothing is taken from it
    adata.raw = ad.AnnData(np.log1p(counts), var=full.var)
    adata.write_h5ad(path)
    assert "counts" not in gio.read(path).layers
    adata.raw = full[:, :6].copy()
    adata.write_h5ad(path)
    assert "counts" not in gio.read(path).layers


def _scanpy_processed(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """scanpy's workflow: ``adata.raw = adata`` after log1p, then HVGs and ``sc.pp.scale``."""
    import scanpy as sc

    rng = np.random.default_rng(6)
    counts = rng.poisson(rng.gamma(1.0, 2.0, size=(1, 30)), size=(40, 30)).astype(np.float32)
    full = ad.AnnData(counts, var=pd.DataFrame(index=[f"g{j}" for j in range(30)]))
    sc.pp.normalize_total(full, target_sum=1e4)
    sc.pp.log1p(full)
    full.raw = full
    order = [12, 3, 25, 7, 19, 0]  # the genes X keeps, in another order
    adata = full[:, order].copy()
    sc.pp.scale(adata, max_value=10)
    path = tmp_path / "processed.h5ad"
    adata.write_h5ad(path)
    return path, np.asarray(full.X)[:, order], np.asarray(adata.X)


def test_z_scored_x_is_read_as_the_log_values_raw_holds(tmp_path: Path, caplog) -> None:
    path, logged, scaled = _scanpy_processed(tmp_path)
    with caplog.at_level("INFO", logger="geneae.io.raw"):
        read = gio.read(path)
    np.testing.assert_allclose(dense(read.X), logged, rtol=1e-6)
    assert "holds z-scores and .raw.X the log-normalised values" in caplog.text
    np.testing.assert_allclose(dense(gio.read(path, use_raw=False).X), scaled, rtol=1e-6)


def test_use_raw_takes_raw_whatever_x_holds_and_needs_it(tmp_path: Path) -> None:
    counts = np.arange(24, dtype=np.float32).reshape(6, 4)
    adata = ad.AnnData(np.log1p(counts), var=pd.DataFrame(index=list("abcd")))
    adata.raw = ad.AnnData(counts * 2, var=adata.var)
    path = tmp_path / "x.h5ad"
    adata.write_h5ad(path)
    np.testing.assert_allclose(dense(gio.read(path).X), np.log1p(counts))  # None: X kept
    np.testing.assert_allclose(dense(gio.read(path, use_raw=True).X), counts * 2)
    del adata.raw
    adata.write_h5ad(path)
    with pytest.raises(InputError, match=r"data\.use_raw is set, but there is no \.raw"):
        gio.read(path, use_raw=True)


def dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)
