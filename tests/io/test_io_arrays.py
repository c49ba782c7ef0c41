"""npy / npz matrices with labels and gene-name files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import geneae.io as gio
from geneae.errors import InputError

RNG = np.random.default_rng(2)
COUNTS = RNG.poisson(1.0, size=(6, 5))
LABELS = ["b", "a", "b", "c", "a", "b"]
GENES = ["g1", "g2", "g3", "g4", "g5"]


@pytest.fixture
def side_files(tmp_path: Path) -> tuple[Path, Path]:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n\n")  # trailing blank lines are ignored
    genes = tmp_path / "genes.txt"
    genes.write_text("\n".join(GENES) + "\n")
    return labels, genes


def test_npy_dense_with_labels_and_genes(tmp_path: Path, side_files: tuple[Path, Path]) -> None:
    path = tmp_path / "x.npy"
    np.save(path, COUNTS)
    labels, genes = side_files
    adata = gio.read(path, labels=labels, genes=genes)
    np.testing.assert_array_equal(adata.X, np.load(path).astype(np.float32))
    assert adata.X.dtype == np.float32
    assert adata.var_names.tolist() == GENES
    assert adata.obs_names[0] == "sample_0000"
    assert adata.obs["label"].tolist() == LABELS
    assert adata.obs["label"].cat.categories.tolist() == ["a", "b", "c"]
    assert adata.layers["counts"] is adata.X
    assert adata.uns["geneae_source"] == {
        "path": str(path),
        "format": "npy",
        "label_key": str(labels),
    }


def test_npy_float_is_not_counts(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, RNG.normal(size=(4, 3)))
    adata = gio.read(path)
    assert adata.X.dtype == np.float32 and "counts" not in adata.layers


def test_npz_sparse(tmp_path: Path, side_files: tuple[Path, Path]) -> None:
    path = tmp_path / "x.npz"
    sp.save_npz(path, sp.csc_matrix(COUNTS))
    labels, genes = side_files
    adata = gio.read(path, labels=labels, genes=genes)
    assert sp.issparse(adata.X) and adata.X.format == "csr"
    np.testing.assert_array_equal(adata.X.toarray(), sp.load_npz(path).toarray())
    assert adata.obs["label"].tolist() == LABELS


@pytest.mark.parametrize("kind", [sp.csr_matrix, sp.csc_matrix])
def test_npz_of_sparse_parts_saved_with_savez(tmp_path: Path, kind: type) -> None:
    # The parts of a sparse matrix saved one by one, without scipy's 'format' entry (how
    # the bundled PBMC file and many hand-made archives store counts), with labels beside.
    path = tmp_path / "parts.npz"
    m = kind(COUNTS)
    y = np.array([1, 2, 1, 3, 3, 10])
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape, labels=y)
    adata = gio.read(path)
    assert sp.issparse(adata.X)
    np.testing.assert_array_equal(adata.X.toarray(), COUNTS)
    assert adata.obs["label"].tolist() == [str(v) for v in y]
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape)
    turned = gio.read(path, transpose=True)  # a genes x samples archive read the other way
    np.testing.assert_array_equal(turned.X.toarray(), COUNTS.T)


def test_npz_of_sparse_parts_that_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "parts.npz"
    m = sp.csr_matrix(COUNTS)
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr[:-2], shape=m.shape)
    with pytest.raises(InputError, match=r"parts\.npz.*'indptr' has \d+ entries.*save_npz"):
        gio.read(path)
    square = sp.csr_matrix(np.eye(3))
    np.savez(path, data=square.data, indices=square.indices, indptr=square.indptr, shape=(3, 3))
    with pytest.raises(InputError, match=r"square.*rows or columns.*save_npz"):
        gio.read(path)


def test_npz_sparse_labels_of_the_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    m = sp.csr_matrix(COUNTS)
    np.savez(path, data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape, Y=[1, 2])
    with pytest.raises(InputError, match=r"labels 'Y' have shape \(2,\).*6 samples"):
        gio.read(path)


def test_npz_dense_with_y(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    y = np.array([1, 2, 1, 3, 3, 10])
    np.savez(path, X=COUNTS, Y=y)
    adata = gio.read(path)
    np.testing.assert_array_equal(adata.X, COUNTS)
    assert adata.obs["label"].tolist() == ["1", "2", "1", "3", "3", "10"]
    assert adata.obs["label"].cat.categories.tolist() == ["1", "2", "3", "10"]


def test_npz_single_unnamed_array(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, COUNTS)
    assert gio.read(path).shape == COUNTS.shape


def test_npz_ambiguous_arrays(tmp_path: Path) -> None:
    path = tmp_path / "many.npz"
    np.savez(path, a=COUNTS, b=COUNTS)
    with pytest.raises(InputError, match=r"many\.npz.*arrays: \['a', 'b'\].*'X'"):
        gio.read(path)


def test_labels_file_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, COUNTS)
    labels = tmp_path / "short_labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(InputError, match=r"short_labels\.txt.*2 lines but .*x\.npy has 6 samples"):
        gio.read(path, labels=labels)
    labels.write_text("label\n" + "\n".join(LABELS))
    with pytest.raises(InputError, match="7 lines.*6 samples.*header"):
        gio.read(path, labels=labels)


def test_labels_saved_by_pandas_with_row_numbers(tmp_path: Path) -> None:
    # pd.Series(labels, name="label").to_csv(...): a header, then "0,b", "1,a", ...
    path = tmp_path / "x.npy"
    np.save(path, COUNTS)
    labels = tmp_path / "labels.csv"
    labels.write_text(",label\n" + "".join(f"{i},{t}\n" for i, t in enumerate(LABELS)))
    assert gio.read(path, labels=labels).obs["label"].tolist() == LABELS
    labels.write_text("".join(f"{i + 1}\t{t}\n" for i, t in enumerate(LABELS)))  # 1 to n
    assert gio.read(path, labels=labels).obs["label"].tolist() == LABELS
    labels.write_text("".join(f"{i},{t}\n" for i, t in enumerate(LABELS[::-1]) if i != 2))
    with pytest.raises(InputError, match="5 lines but .*6 samples"):  # not every row numbered
        gio.read(path, labels=labels)


def test_missing_values_in_a_labels_file_are_samples_without_a_label(tmp_path: Path) -> None:
    # As R's writeLines / write.csv and pandas' to_csv write a missing value.
    path = tmp_path / "x.npy"
    np.save(path, COUNTS)
    labels = tmp_path / "labels.txt"
    written = ["b", "NA", "a", "", "nan", "a"]
    labels.write_text("\n".join(written) + "\n")
    obs = gio.read(path, labels=labels).obs["label"]
    assert obs.isna().tolist() == [False, True, False, True, True, False]
    assert obs.cat.categories.tolist() == ["a", "b"]


def test_labels_file_missing_for_npy(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, COUNTS)
    with pytest.raises(InputError, match=r"nolabels\.txt: the labels file does not exist"):
        gio.read(path, labels=tmp_path / "nolabels.txt")
    with pytest.raises(InputError, match=r"cell_type: the labels file does not exist"):
        gio.read(path, labels="cell_type")


def test_genes_file_wrong_length(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, COUNTS)
    genes = tmp_path / "genes.txt"
    genes.write_text("g1\ng2\n")
    with pytest.raises(InputError, match=r"genes\.txt.*2 lines but .*x\.npy has 5 genes"):
        gio.read(path, genes=genes)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.arange(5), r"shape \(5,\); a 2-D"),
        (np.zeros((2, 2, 2)), r"shape \(2, 2, 2\)"),
        (np.array([["a", "b"]]), "not numbers"),
        (np.zeros((0, 4)), r"empty \(0 samples x 4 genes\)"),
    ],
)
def test_npy_bad_arrays(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=r"bad\.npy.*" + message):
        gio.read(path)


def test_npy_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npy"
    np.save(path, np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=r"pickled\.npy.*pickle"):
        gio.read(path)


def test_npy_with_nan(tmp_path: Path) -> None:
    path = tmp_path / "nan.npy"
    x = COUNTS.astype(float)
    x[2, 3] = np.nan
    np.save(path, x)
    with pytest.raises(InputError, match=r"nan\.npy: 1 NaN.*'sample_0002' \(row 3\).*'gene_0003'"):
        gio.read(path)


def test_transpose_genes_by_samples_arrays(tmp_path: Path, side_files: tuple[Path, Path]) -> None:
    labels, genes = side_files
    npy = tmp_path / "genes_x_samples.npy"
    np.save(npy, COUNTS.T)
    adata = gio.read(npy, transpose=True, labels=labels, genes=genes)
    np.testing.assert_array_equal(adata.X, COUNTS)
    assert adata.obs["label"].tolist() == LABELS
    npz = tmp_path / "genes_x_samples.npz"
    np.savez(npz, X=COUNTS.T, Y=np.arange(6))
    assert gio.read(npz, transpose=True).obs["label"].tolist() == [str(i) for i in range(6)]
    sparse = tmp_path / "sparse_genes_x_samples.npz"
    sp.save_npz(sparse, sp.csr_matrix(COUNTS.T))
    back = gio.read(sparse, transpose=True)
    assert back.X.format == "csr"
    np.testing.assert_array_equal(back.X.toarray(), COUNTS)


@pytest.mark.parametrize(("density", "sparse"), [(0.05, True), (0.39, True), (0.4, False)])
def test_mostly_zero_dense_matrix_is_kept_as_csr(
    tmp_path: Path, density: float, sparse: bool
) -> None:
    """Dense files of mostly zeros become CSR with the same values; counts stay X itself."""
    rng = np.random.default_rng(7)
    x = np.zeros((20, 50), dtype=np.float32)
    nonzero = rng.choice(x.size, size=round(density * x.size), replace=False)
    x.flat[nonzero] = rng.integers(1, 9, size=nonzero.size)
    path = tmp_path / "x.npy"
    np.save(path, x)
    adata = gio.read(path)
    assert sp.isspmatrix_csr(adata.X) is sparse
    dense = adata.X.toarray() if sparse else adata.X
    np.testing.assert_array_equal(dense, x)
    assert adata.X.dtype == np.float32
    assert adata.layers["counts"] is adata.X


def test_mostly_zero_counts_layer_of_h5ad_is_kept_as_csr(tmp_path: Path) -> None:
    """A dense counts layer beside log values is made sparse too, values unchanged."""
    import anndata as ad

    x = np.zeros((30, 40), dtype=np.float32)
    x[::3, ::4] = 5.0
    adata = ad.AnnData(np.log1p(x))
    adata.layers["counts"] = x
    path = tmp_path / "x.h5ad"
    adata.write_h5ad(path)
    read = gio.read(path)
    assert sp.isspmatrix_csr(read.X) and sp.isspmatrix_csr(read.layers["counts"])
    np.testing.assert_array_equal(read.layers["counts"].toarray(), x)
    np.testing.assert_allclose(read.X.toarray(), np.log1p(x))
