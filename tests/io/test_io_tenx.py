"""10x Genomics .h5 (v3, v2) and matrix.mtx folders, written here with h5py / scipy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

import geneae.io as gio
from geneae.errors import InputError


def _check_gex(adata, tenx: SimpleNamespace) -> None:
    assert sp.issparse(adata.X) and adata.X.format == "csr"
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X.toarray(), tenx.counts[:, :4])
    assert adata.obs_names.tolist() == tenx.barcodes
    assert adata.var_names.tolist() == tenx.names[:4]
    assert adata.var["gene_ids"].tolist() == tenx.ids[:4]
    assert adata.layers["counts"] is adata.X


def test_10x_v3_keeps_gene_expression(tmp_path: Path, tenx: SimpleNamespace) -> None:
    path = tenx.write_v3(
        tmp_path / "filtered_feature_bc_matrix.h5",
        tenx.counts,
        tenx.barcodes,
        tenx.ids,
        tenx.names,
        tenx.types,
    )
    adata = gio.read(path)
    _check_gex(adata, tenx)
    assert set(adata.var["feature_types"]) == {"Gene Expression"}
    assert set(adata.var["genome"]) == {"GRCh38"}
    assert adata.uns["geneae_source"]["format"] == "10x_h5"
    assert gio.read(path, fmt="10x_h5").shape == (6, 4)


def test_10x_v3_only_antibodies_is_an_error(tmp_path: Path, tenx: SimpleNamespace) -> None:
    path = tenx.write_v3(
        tmp_path / "adt.h5",
        tenx.counts[:, 4:],
        tenx.barcodes,
        tenx.ids[4:],
        tenx.names[4:],
        tenx.types[4:],
    )
    with pytest.raises(InputError, match=r"adt\.h5.*no 'Gene Expression' features"):
        gio.read(path)


def test_10x_v2_single_and_two_genomes(tmp_path: Path, tenx: SimpleNamespace) -> None:
    gex = tenx.counts[:, :4]
    one = tenx.write_v2(
        tmp_path / "v2.h5", {"hg19": (gex, tenx.ids[:4], tenx.names[:4])}, tenx.barcodes
    )
    _check_gex(gio.read(one), tenx)
    two = tenx.write_v2(
        tmp_path / "barnyard.h5",
        {
            "hg19": (gex[:, :2], tenx.ids[:2], tenx.names[:2]),
            "mm10": (gex[:, 2:], tenx.ids[2:4], tenx.names[2:4]),
        },
        tenx.barcodes,
    )
    adata = gio.read(two)
    _check_gex(adata, tenx)
    assert adata.var["genome"].tolist() == ["hg19", "hg19", "mm10", "mm10"]


def test_10x_v2_genomes_with_different_barcodes(tmp_path: Path, tenx: SimpleNamespace) -> None:
    path = tmp_path / "mixed.h5"
    tenx.write_v2(path, {"hg19": (tenx.counts[:, :2], tenx.ids[:2], tenx.names[:2])}, tenx.barcodes)
    with h5py.File(path, "a") as f:
        f.copy("hg19", "mm10")
        del f["mm10/barcodes"]
        f["mm10/barcodes"] = np.array([b"X"] * 6)
    with pytest.raises(InputError, match=r"mixed\.h5.*different cell barcodes"):
        gio.read(path)


def test_10x_h5_inconsistent_arrays(tmp_path: Path, tenx: SimpleNamespace) -> None:
    path = tenx.write_v3(
        tmp_path / "broken.h5", tenx.counts, tenx.barcodes, tenx.ids, tenx.names, tenx.types
    )
    with h5py.File(path, "a") as f:
        del f["matrix/indptr"]
        f["matrix/indptr"] = np.array([0, 1, 2])
    with pytest.raises(InputError, match=r"broken\.h5.*inconsistent"):
        gio.read(path)


def test_10x_h5_missing_dataset(tmp_path: Path, tenx: SimpleNamespace) -> None:
    path = tenx.write_v3(
        tmp_path / "nobarcodes.h5", tenx.counts, tenx.barcodes, tenx.ids, tenx.names, tenx.types
    )
    with h5py.File(path, "a") as f:
        del f["matrix/features/id"]
    with pytest.raises(InputError, match=r"nobarcodes\.h5.*lacks 'id'"):
        gio.read(path)


@pytest.mark.parametrize("gz", [True, False])
def test_10x_mtx_folder(tmp_path: Path, tenx: SimpleNamespace, gz: bool) -> None:
    features = list(zip(tenx.ids, tenx.names, tenx.types, strict=True))
    folder = tenx.write_mtx(tmp_path / "mtx", tenx.counts, tenx.barcodes, features, gz=gz)
    adata = gio.read(folder)
    _check_gex(adata, tenx)
    assert adata.uns["geneae_source"]["format"] == "10x_mtx"
    matrix = "matrix.mtx.gz" if gz else "matrix.mtx"
    assert gio.read(folder / matrix).shape == (6, 4)


def test_10x_mtx_legacy_genes_tsv_with_prefix(tmp_path: Path, tenx: SimpleNamespace) -> None:
    features = list(zip(tenx.ids[:4], tenx.names[:4], strict=True))
    folder = tenx.write_mtx(
        tmp_path / "geo",
        tenx.counts[:, :4],
        tenx.barcodes,
        features,
        gz=True,
        prefix="GSM1_",
        features_name="genes.tsv",
    )
    adata = gio.read(folder)
    _check_gex(adata, tenx)
    assert "feature_types" not in adata.var


def test_10x_mtx_missing_barcodes(tmp_path: Path, tenx: SimpleNamespace) -> None:
    features = list(zip(tenx.ids, tenx.names, tenx.types, strict=True))
    folder = tenx.write_mtx(tmp_path / "mtx", tenx.counts, tenx.barcodes, features, gz=False)
    (folder / "barcodes.tsv").unlink()
    with pytest.raises(InputError, match=r"matrix\.mtx: barcodes\.tsv\[\.gz\] not found beside"):
        gio.read(folder)


def test_10x_mtx_wrong_number_of_barcodes(tmp_path: Path, tenx: SimpleNamespace) -> None:
    features = list(zip(tenx.ids, tenx.names, tenx.types, strict=True))
    folder = tenx.write_mtx(tmp_path / "mtx", tenx.counts, tenx.barcodes[:5], features, gz=False)
    with pytest.raises(InputError, match=r"barcodes\.tsv: 5 lines but matrix\.mtx has 6 cells"):
        gio.read(folder)


def test_10x_mtx_corrupt_matrix(tmp_path: Path, tenx: SimpleNamespace) -> None:
    features = list(zip(tenx.ids, tenx.names, tenx.types, strict=True))
    folder = tenx.write_mtx(tmp_path / "mtx", tenx.counts, tenx.barcodes, features, gz=False)
    (folder / "matrix.mtx").write_text("not a matrix market file\n1 2 3\n")
    with pytest.raises(InputError, match=r"matrix\.mtx.*Matrix Market"):
        gio.read(folder)


def test_folder_without_matrix(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="no matrix.mtx"):
        gio.read(tmp_path)
