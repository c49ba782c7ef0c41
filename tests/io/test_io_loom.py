"""Loom files: read against the arrays written by h5py, as the loom specification lays out."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import geneae.io as gio
from geneae.errors import InputError
from geneae.io import loom

RNG = np.random.default_rng(4)


def write_loom(path: Path, matrix: np.ndarray, *, genes=None, cells=None, rows=None, cols=None):
    """A loom file by the specification: /matrix genes x cells, /row_attrs, /col_attrs."""
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", data=matrix, chunks=(4, 4))
        f.create_group("layers")
        row_attrs, col_attrs = f.create_group("row_attrs"), f.create_group("col_attrs")
        if genes is not None:
            row_attrs["Gene"] = np.array([g.encode() for g in genes])  # fixed-length bytes
        if cells is not None:
            col_attrs.create_dataset("CellID", data=cells, dtype=h5py.string_dtype())
        for key, values in (rows or {}).items():
            row_attrs[key] = values
        for key, values in (cols or {}).items():
            col_attrs.create_dataset(key, data=values)
    return path


@pytest.mark.parametrize("block", [3, loom.BLOCK_CELLS])
def test_loom_is_read_as_cells_by_genes_with_its_attributes(tmp_path, monkeypatch, block):
    monkeypatch.setattr(loom, "BLOCK_CELLS", block)  # several blocks of cells, or one
    counts = RNG.poisson(0.7, size=(12, 9)).astype(np.float32)  # 12 genes x 9 cells
    genes = [f"GENE{i}" for i in range(12)]
    cells = [f"cell-{i}" for i in range(9)]
    types = np.array(["T", "B", "NK"] * 3, dtype=h5py.string_dtype())
    path = write_loom(
        tmp_path / "x.loom",
        counts,
        genes=genes,
        cells=cells,
        rows={"Chromosome": np.array([b"chr1"] * 12), "Selected": np.arange(12) % 2},
        cols={"cell_type": types, "n_umi": counts.sum(0), "pca": RNG.normal(size=(9, 2))},
    )
    adata = gio.read(path)
    assert adata.uns["geneae_source"]["format"] == "loom"
    np.testing.assert_array_equal(adata.X.toarray(), counts.T)
    assert adata.obs_names.tolist() == cells and adata.var_names.tolist() == genes
    assert adata.obs["label"].astype(str).tolist() == ["T", "B", "NK"] * 3
    np.testing.assert_array_equal(adata.obs["n_umi"], counts.sum(0))
    assert "pca" not in adata.obs  # two-dimensional attributes are not columns
    assert adata.var["Chromosome"].tolist() == ["chr1"] * 12
    assert "counts" in adata.layers  # integer values: the counts


def test_loom_without_names_and_broken_looms(tmp_path):
    values = RNG.gamma(1.0, size=(5, 4)).astype(np.float32)
    adata = gio.read(write_loom(tmp_path / "bare.loom", values))
    np.testing.assert_allclose(adata.X.toarray(), values.T)
    assert adata.var_names[0] == "gene_0000" and adata.obs_names[0] == "cell_0000"
    with h5py.File(tmp_path / "flat.loom", "w") as f:
        f["matrix"] = np.ones(5)
        f.create_group("row_attrs")
    with pytest.raises(InputError, match=r"flat\.loom.*two-dimensional /matrix"):
        gio.read(tmp_path / "flat.loom")


@pytest.mark.parametrize("name", ["seurat.rds", "data.RData", "obj.h5Seurat"])
def test_r_objects_are_named_with_the_way_to_convert_them(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"X\n\x00\x00\x00\x03")
    with pytest.raises(InputError, match=r"R object.*Convert it to \.h5ad"):
        gio.read(path)


@pytest.mark.parametrize("name", ["x.loom.gz", "x.h5ad.gz", "x.gz"])
def test_gzipped_hdf5_is_named_with_the_way_out(tmp_path, name):
    import gzip

    plain = write_loom(tmp_path / "x.loom", np.ones((5, 4), dtype=np.float32))
    packed = tmp_path / name
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(InputError, match=r"gzip-compressed HDF5.*gunzip -k"):
        gio.read(packed)
