"""Decide which reader a path needs, from its content first and its name second.

Content wins over the extension because files are often misnamed (a TSV saved as
``.csv``, an h5ad renamed ``.h5``); the extension only breaks ties between formats that
the first bytes cannot tell apart (CSV vs TSV vs GCT are all text).
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from pathlib import Path

import h5py

from geneae.io.messages import input_error

FORMATS: tuple[str, ...] = (
    "h5ad",
    "zarr",
    "10x_h5",
    "10x_mtx",
    "h5",
    "loom",
    "csv",
    "tsv",
    "gct",
    "geo",
    "npy",
    "npz",
)
"""Format names accepted by ``read(..., fmt=...)``."""

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls

_HDF5_SUFFIXES = {".h5", ".h5ad", ".hdf5", ".hdf", ".he5", ".loom"}
#: Files of R objects, which geneae does not read (Seurat, SingleCellExperiment, ...).
_R_SUFFIXES = {".rds", ".rdata", ".rda", ".h5seurat"}
_TEXT_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".gct": "gct"}
_SUPPORTED = (
    "h5ad, AnnData .zarr store, 10x Genomics .h5 or matrix.mtx directory, loom, plain "
    "HDF5 with X (and Y), "
    "CSV/TSV/TXT (optionally .gz), GCT, GEO series matrix, .npy, .npz"
)


def is_zarr_store(path: Path) -> bool:
    """Whether the folder ``path`` is a zarr store (an AnnData written by write_zarr)."""
    markers = (".zgroup", ".zattrs", "zarr.json")
    return path.suffix.lower() == ".zarr" or any((path / m).is_file() for m in markers)


def detect_format(path: Path, fmt: str | None = None) -> str:
    """Return the format name (one of :data:`FORMATS`) to read ``path`` with.

    Parameters
    ----------
    path
        File or directory (a 10x matrix.mtx directory) to read.
    fmt
        Explicit format; skips detection but is still validated.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    InputError
        If the path does not exist, is empty, is a corrupt HDF5 file, or matches no format.
    """
    if not path.exists():
        raise input_error(
            path,
            "no such file or directory",
            "Check the path (relative paths start from the current directory).",
        )
    if fmt is not None:
        key = fmt.lower().replace("-", "_")
        if key not in FORMATS:
            raise input_error(
                path,
                f"unknown format {fmt!r}",
                f"Use fmt= one of {', '.join(FORMATS)}, or leave fmt=None to detect it.",
            )
        return key
    if path.is_dir():
        if is_zarr_store(path):
            return "zarr"
        find_mtx(path)  # raises a helpful error when there is none
        return "10x_mtx"
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise input_error(path, "the file is empty (0 bytes)", "Re-create or re-download it.")
    name = path.name.lower()
    suffix = Path(name[:-3] if name.endswith(".gz") else name).suffix
    if suffix in _R_SUFFIXES:
        raise input_error(
            path,
            "this is an R object (Seurat, SingleCellExperiment, ...), which geneae does not read",
            "Convert it to .h5ad in R (SeuratDisk's SaveH5Seurat + Convert, or zellkonverter's "
            "writeH5AD), or write the counts with Matrix::writeMM / write.csv.",
        )
    if head.startswith(HDF5_MAGIC) or (suffix in _HDF5_SUFFIXES and h5py.is_hdf5(path)):
        return hdf5_layout(path)
    if head.startswith(GZIP_MAGIC) and _gzipped_head(path).startswith(HDF5_MAGIC):
        raise input_error(
            path,
            "this is a gzip-compressed HDF5 file, which HDF5 cannot read in place",
            f"Decompress it first (gunzip -k {path.name}) and read the file that gives.",
        )
    if suffix in _HDF5_SUFFIXES:
        raise input_error(
            path,
            f"the name ends in {suffix} but the file is not HDF5 (corrupt, truncated, or "
            "another format renamed)",
            "Re-download or re-export the file, or give it its real format's extension (fmt= in "
            "Python).",
        )
    if head.startswith(NPY_MAGIC):
        return "npy"
    if _is_spreadsheet(path, head, suffix):
        raise input_error(
            path,
            "this is an Excel workbook, which geneae does not read",
            "Save the sheet that holds the expression matrix as CSV or TSV (in Excel: File > "
            "Save As > CSV) and read that; rows may be genes or samples.",
        )
    archive = _archive_members(path, head)
    if archive is not None:
        kind, members = archive
        shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
        command = "unzip" if kind == "zip" else "tar -xf"
        raise input_error(
            path,
            f"this is a {kind} archive of {len(members)} file(s) ({shown or 'empty'}), not a "
            "data file",
            f"Extract it first ({command} {path.name}) and give the data file, or the folder "
            "of a 10x matrix.mtx, that it holds.",
        )
    if head.startswith(ZIP_MAGIC):
        return "npz"
    if suffix in {".npy", ".npz"}:
        raise input_error(
            path,
            f"the name ends in {suffix} but the file is not a NumPy {suffix} file",
            "Save it with numpy.save / numpy.savez / scipy.sparse.save_npz.",
        )
    if name.endswith(("matrix.mtx", "matrix.mtx.gz")) or suffix == ".mtx":
        return "10x_mtx"
    first = _first_text_line(path, gzipped=head.startswith(GZIP_MAGIC))
    if first.startswith("#1."):
        return "gct"
    if first.startswith("!Series_"):
        return "geo"
    if suffix in _TEXT_SUFFIXES:
        by_name = _TEXT_SUFFIXES[suffix]
        return by_name if by_name == "gct" else _sniff_separator(first, by_name)
    if suffix == ".txt" or (suffix == "" and first.isprintable() and first):
        return _sniff_separator(first, "tsv")
    raise input_error(
        path,
        "unknown file format",
        f"Supported: {_SUPPORTED}. Rename the file with its format's extension (in Python, "
        f"or pass fmt= one of {', '.join(FORMATS)}).",
    )


def _archive_members(path: Path, head: bytes) -> tuple[str, list[str]] | None:
    """``(kind, member names)`` of an archive that is not a data file, else None.

    Tar archives, compressed or not, and zip archives without NumPy arrays (an .npz is a
    zip of .npy files), as 10x matrix folders are often shared.
    """
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if not n.endswith("/")]
        except (zipfile.BadZipFile, OSError):
            return None
        return None if any(n.endswith(".npy") for n in names) else ("zip", names)
    try:
        if not tarfile.is_tarfile(path):
            return None
        with tarfile.open(path) as tar:
            return "tar", [m.name for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, OSError, EOFError, zlib.error):
        return None


def _gzipped_head(path: Path) -> bytes:
    """The first bytes of a gzip file's content (empty when the stream is unreadable)."""
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read(8)
    except (OSError, EOFError, zlib.error):
        return b""


def _is_spreadsheet(path: Path, head: bytes, suffix: str) -> bool:
    """An Excel workbook: .xlsx (a zip holding xl/workbook.xml) or legacy .xls (OLE2)."""
    if head.startswith(OLE2_MAGIC):
        return True
    if not head.startswith(ZIP_MAGIC):
        return False
    if suffix in {".xlsx", ".xlsm"}:
        return True
    try:
        with zipfile.ZipFile(path) as z:
            return "xl/workbook.xml" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def hdf5_layout(path: Path) -> str:
    """Classify an HDF5 file as ``"h5ad"``, ``"10x_h5"``, ``"loom"`` or plain ``"h5"`` by keys.

    Raises
    ------
    InputError
        If the file cannot be opened or its layout is none of the three.
    """
    try:
        with h5py.File(path, "r") as f:
            keys = list(f.keys())
            encoding = f.attrs.get("encoding-type")
            if encoding in ("anndata", b"anndata") or {"obs", "var"} <= set(keys):
                return "h5ad"
            if isinstance(f.get("matrix"), h5py.Group) and "barcodes" in f["matrix"]:
                return "10x_h5"
            for key in keys:
                group = f[key]
                if isinstance(group, h5py.Group) and {"barcodes", "data", "genes"} <= set(group):
                    return "10x_h5"  # Cell Ranger v2: one group per genome
            if isinstance(f.get("matrix"), h5py.Dataset) and "row_attrs" in f:
                return "loom"
            if "X" in f:
                return "h5"
    except OSError as exc:
        raise input_error(
            path,
            f"the HDF5 file cannot be opened ({exc})",
            "The file is probably corrupt or truncated; re-download or re-export it.",
        ) from exc
    raise input_error(
        path,
        f"no known layout in this HDF5 file (top-level keys: {keys or 'none'})",
        "Expected an AnnData .h5ad (obs, var, X), a 10x Genomics .h5 (matrix/ or a genome "
        "group), a loom file (matrix, row_attrs, col_attrs) or a plain HDF5 file with a "
        "cells x genes dataset 'X' (and labels 'Y').",
    )


def find_mtx(path: Path) -> Path:
    """The matrix.mtx[.gz] file of a 10x directory (or ``path`` itself if it is one).

    Raises
    ------
    InputError
        If there is no such file, or several with different prefixes.
    """
    if path.is_file():
        return path
    found = sorted(
        p for p in path.iterdir() if p.name.lower().endswith(("matrix.mtx", "matrix.mtx.gz"))
    )
    if not found:
        listing = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
        raise input_error(
            path,
            f"this directory holds no matrix.mtx or matrix.mtx.gz (it holds: {listing})",
            "Point read() at a 10x Genomics matrix directory or at a data file.",
        )
    exact = [p for p in found if p.name.lower() in {"matrix.mtx", "matrix.mtx.gz"}]
    if len(exact) >= 1:
        return exact[0]
    if len(found) > 1:
        raise input_error(
            path,
            f"several matrix files: {', '.join(p.name for p in found)}",
            "Pass the path of the one matrix.mtx file to read.",
        )
    return found[0]


def _first_text_line(path: Path, *, gzipped: bool) -> str:
    """First non-blank line, decoded leniently (detection only; readers decode strictly)."""
    try:
        opener = gzip.open if gzipped else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for _, line in zip(range(50), fh, strict=False):
                if line.strip():
                    return line.lstrip("\ufeff").rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as exc:
        raise input_error(
            path,
            f"the gzip stream is corrupt ({exc})",
            "Re-download the file or decompress it to check it.",
        ) from exc
    return ""


def _sniff_separator(first_line: str, default: str) -> str:
    """``"tsv"`` or ``"csv"`` from the header line; the name's guess when there is no clue."""
    tabs, commas = first_line.count("\t"), first_line.count(",")
    if tabs and tabs >= commas:
        return "tsv"
    # ';' (not in a comment line such as featureCounts'): a spreadsheet's CSV where the
    # decimal mark is a comma.
    semicolons = ";" in first_line and not first_line.startswith("#")
    if (commas or semicolons) and not tabs:
        return "csv"
    return default
