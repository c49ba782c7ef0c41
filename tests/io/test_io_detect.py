"""Format detection and the errors every reader shares (missing, unknown, corrupt files)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import geneae.io as gio
from geneae.errors import InputError
from geneae.io.detect import FORMATS, detect_format


def _plain_h5(path: Path, x: np.ndarray, **extra: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        f["X"] = x
        for key, value in extra.items():
            f[key] = value
    return path


def test_every_format_can_be_forced_and_another_is_refused_naming_them(tmp_path: Path) -> None:
    assert gio.FORMATS is FORMATS  # the public name is the one list
    path = tmp_path / "data.bin"
    path.write_bytes(b"anything")
    for fmt in FORMATS:  # forced by name, in any case and with dashes for underscores
        assert detect_format(path, fmt.upper().replace("_", "-")) == fmt
    with pytest.raises(InputError, match="unknown format 'xlsx'") as exc:
        detect_format(path, "xlsx")
    assert all(fmt in str(exc.value) for fmt in FORMATS)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothere\.csv: no such file or directory"):
        gio.read(tmp_path / "nothere.csv")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.h5ad"
    path.touch()
    with pytest.raises(InputError, match=r"zero\.h5ad: the file is empty \(0 bytes\)"):
        gio.read(path)


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "data.xyz"
    path.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputError, match=r"data\.xyz: unknown file format.*Supported.*fmt="):
        gio.read(path)


def test_unknown_fmt_argument(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"data\.csv: unknown format 'excel'.*h5ad, zarr, 10x_h5"):
        gio.read(path, fmt="excel")


@pytest.mark.parametrize("name", ["corrupt.h5", "corrupt.h5ad"])
def test_not_hdf5_with_hdf5_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("gene,a\nx,1\n")
    with pytest.raises(InputError, match=rf"{name.replace('.', '.')}: .*not HDF5"):
        gio.read(path)


def test_truncated_hdf5(tmp_path: Path) -> None:
    source = _plain_h5(tmp_path / "full.h5", np.ones((50, 40)))
    path = tmp_path / "truncated.h5"
    path.write_bytes(source.read_bytes()[:1000])
    with pytest.raises(InputError, match=r"truncated\.h5: the HDF5 file cannot be opened"):
        gio.read(path)


def test_hdf5_with_unknown_layout_lists_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["expression"] = np.ones((3, 2))
        f.create_group("meta")
    with pytest.raises(InputError, match=r"other\.h5: no known layout.*\['expression', 'meta'\]"):
        gio.read(path)


def test_content_wins_over_extension(tmp_path: Path) -> None:
    # a plain X/Y file misnamed .h5ad, and an HDF5 file misnamed .csv
    x = np.arange(6.0).reshape(2, 3)
    for name in ("misnamed.h5ad", "misnamed.csv"):
        adata = gio.read(_plain_h5(tmp_path / name, x, Y=np.array([1, 2])))
        assert adata.uns["geneae_source"]["format"] == "h5"
        assert adata.obs["label"].tolist() == ["1", "2"]


def test_fmt_override_reads_misnamed_file(tmp_path: Path) -> None:
    path = tmp_path / "values.bin"
    np.save(tmp_path / "values.npy", np.ones((2, 3)))
    (tmp_path / "values.npy").rename(path)
    assert detect_format(path) == "npy"  # magic bytes
    assert gio.read(path, fmt="npy").shape == (2, 3)


def test_npy_name_with_other_content(tmp_path: Path) -> None:
    path = tmp_path / "fake.npy"
    path.write_text("1,2\n3,4\n")
    with pytest.raises(InputError, match=r"fake\.npy: .*not a NumPy \.npy file"):
        gio.read(path)


def test_transpose_and_backed_only_where_they_apply(tmp_path: Path) -> None:
    path = _plain_h5(tmp_path / "x.h5", np.ones((2, 3)))
    with pytest.raises(InputError, match=r"x\.h5: transpose=True applies to CSV/TSV"):
        gio.read(path, transpose=True)
    assert gio.read(path, transpose=False).shape == (2, 3)  # agrees with the format
    with pytest.raises(InputError, match=r"x\.h5: backed=True needs an \.h5ad"):
        gio.read(path, backed=True)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("source", ["table.csv", "plain.h5", "junk.bin"])
def test_any_fmt_on_any_file_gives_data_or_input_error(
    tmp_path: Path, fmt: str, source: str
) -> None:
    path = tmp_path / source
    if source == "table.csv":
        path.write_text("gene,a,b\nTP53,1,2\nEGFR,3,4\n")
    elif source == "plain.h5":
        _plain_h5(path, np.ones((2, 3)))
    else:
        path.write_bytes(bytes(range(256)) * 3)
    try:
        adata = gio.read(path, fmt=fmt)
    except InputError as exc:
        assert source in str(exc)
    else:
        assert adata.uns["geneae_source"]["format"] == fmt


def test_excel_workbooks_are_named_with_the_way_out(tmp_path: Path) -> None:
    import zipfile

    book = tmp_path / "supplementary_table_1.zip"  # an .xlsx under another name
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    legacy = tmp_path / "counts.xls"
    legacy.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))
    for path in (book, legacy):
        with pytest.raises(InputError, match=r"Excel workbook.*Save the sheet .* as CSV or TSV"):
            gio.read(path)
    arrays = tmp_path / "arrays.npz"  # a real npz is still an npz
    np.savez(arrays, X=np.ones((3, 2)))
    assert gio.read(arrays).shape == (3, 2)


@pytest.mark.parametrize("name", ["matrix.tar.gz", "matrix.tar", "matrix.zip"])
def test_archives_are_named_with_the_way_out(tmp_path: Path, name: str) -> None:
    # A 10x folder shared as an archive (as GEO's supplementary files often are).
    import tarfile
    import zipfile

    folder = tmp_path / "filtered_feature_bc_matrix"
    folder.mkdir()
    for part in ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"):
        (folder / part).write_bytes(b"x")
    path = tmp_path / name
    if name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as z:
            for part in sorted(folder.iterdir()):
                z.write(part, f"{folder.name}/{part.name}")
        command = "unzip"
    else:
        with tarfile.open(path, "w:gz" if name.endswith(".gz") else "w") as tar:
            tar.add(folder, arcname=folder.name)
        command = "tar -xf"
    with pytest.raises(
        InputError, match=rf"{name}: this is a (tar|zip) archive of 3 file.*{command}"
    ):
        gio.read(path)
