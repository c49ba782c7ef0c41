"""Atomic writers: round trips through read, and no half-written files."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import geneae.io as gio
from geneae.errors import InputError

LATENT = np.random.default_rng(3).normal(size=(4, 2)).astype(np.float32)
CELLS = ["c1", "c2", "c3", "c4"]


@pytest.mark.parametrize("name", ["latent.csv", "latent.tsv", "latent.csv.gz", "latent.tsv.gz"])
def test_write_matrix_tables(tmp_path: Path, name: str) -> None:
    path = gio.write_matrix(LATENT, tmp_path / name, obs_names=CELLS, columns=["z1", "z2"])
    ref = pd.read_csv(path, sep="\t" if ".tsv" in name else ",", index_col=0)
    assert ref.index.tolist() == CELLS and ref.columns.tolist() == ["z1", "z2"]
    assert ref.index.name == "sample"  # the row-name column has a header
    np.testing.assert_array_equal(ref.to_numpy(dtype=np.float32), LATENT)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_write_matrix_npy_and_h5ad(tmp_path: Path) -> None:
    npy = gio.write_matrix(LATENT, tmp_path / "latent.npy", obs_names=CELLS, columns=["a", "b"])
    np.testing.assert_array_equal(np.load(npy), LATENT)
    h5ad = gio.write_matrix(
        sp.csr_matrix(LATENT), tmp_path / "latent.h5ad", obs_names=CELLS, columns=["a", "b"]
    )
    back = ad.read_h5ad(h5ad)
    assert back.obs_names.tolist() == CELLS and back.var_names.tolist() == ["a", "b"]
    np.testing.assert_array_equal(back.X.toarray(), LATENT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latent.h5ad", "latent.npy"]


def test_write_matrix_default_names(tmp_path: Path) -> None:
    path = gio.write_matrix(LATENT, tmp_path / "z.csv")
    assert pd.read_csv(path, index_col=0).columns.tolist() == ["dim_0000", "dim_0001"]


def test_write_matrix_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"z\.xlsx: unknown file ending.*\.csv, \.tsv"):
        gio.write_matrix(LATENT, tmp_path / "z.xlsx")
    with pytest.raises(InputError, match=r"z\.csv: obs_names has 2 names for 4 rows"):
        gio.write_matrix(LATENT, tmp_path / "z.csv", obs_names=["a", "b"])
    with pytest.raises(InputError, match=r"z\.csv: the array has shape \(4,\)"):
        gio.write_matrix(LATENT[:, 0], tmp_path / "z.csv")
    assert list(tmp_path.iterdir()) == []


def test_write_h5ad_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adata = ad.AnnData(LATENT, obs=pd.DataFrame(index=CELLS))
    target = gio.write_h5ad(adata, tmp_path / "out" / "latent.h5ad")
    first = target.read_bytes()
    assert gio.read(target).obs_names.tolist() == CELLS

    def crash(self: ad.AnnData, *args: object, **kwargs: object) -> None:
        Path(args[0]).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(ad.AnnData, "write_h5ad", crash)
    with pytest.raises(KeyboardInterrupt):
        gio.write_h5ad(adata, target)
    assert target.read_bytes() == first  # the old file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["latent.h5ad"]


def test_read_write_read_keeps_everything(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    pd.DataFrame(
        np.arange(12).reshape(3, 4), index=["s1", "s2", "s3"], columns=list("ABCD")
    ).assign(cell_type=["x", "y", "x"]).to_csv(csv)
    adata = gio.read(csv)
    back = gio.read(gio.write_h5ad(adata, tmp_path / "out.h5ad"))
    np.testing.assert_array_equal(back.X, adata.X)
    assert back.obs["label"].tolist() == ["x", "y", "x"]
    assert "counts" in back.layers
    assert back.uns["geneae_source"]["format"] == "h5ad"
