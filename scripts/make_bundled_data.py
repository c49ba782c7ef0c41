"""Rebuild ``src/geneae/datasets/pbmc_10x_2100.npz`` from the scDCC source file.

Usage::

    python scripts/make_bundled_data.py [SOURCE_H5] [--out PATH]

``SOURCE_H5`` defaults to ``$GENEAE_SHARED_DATA/pbmc_10x/10X_PBMC_select_2100_top2000.h5``
(``GENEAE_SHARED_DATA`` defaults to ``<repo>/../shared/data``). The source is checked
against its published sha256; the counts are stored unchanged as CSR arrays of integer
dtype, the labels as integers. The npz is written with fixed zip timestamps, so the same
source always gives byte-identical output (its sha256 is in ``src/geneae/datasets/README.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
SOURCE_NAME = "pbmc_10x/10X_PBMC_select_2100_top2000.h5"
SOURCE_SHA256 = "96af3385b2f9e3c059cc51b724319dd62c4ef713be3667632a10012de272af09"
DEFAULT_OUT = REPO / "src" / "geneae" / "datasets" / "pbmc_10x_2100.npz"


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_source(path: Path) -> tuple[sp.csr_matrix, np.ndarray]:
    """Counts (CSR, int32) and labels (uint8) of the scDCC h5 file, values unchanged."""
    with h5py.File(path, "r") as f:
        x = f["X"][()]
        y = f["Y"][()]
    if not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > np.iinfo(np.int32).max:
        raise SystemExit(f"{path}: X is not non-negative integer counts")
    if not np.array_equal(y, np.round(y)) or y.min() < 0 or y.max() > 255:
        raise SystemExit(f"{path}: Y is not small non-negative integer labels")
    counts = sp.csr_matrix(x.astype(np.int32))
    counts.sort_indices()
    return counts, y.astype(np.uint8)


def arrays_of(counts: sp.csr_matrix, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The npz members: CSR parts and shape as integer dtypes, and the labels."""
    return {
        "data": counts.data.astype(np.int32),
        "indices": counts.indices.astype(np.int32),
        "indptr": counts.indptr.astype(np.int64),
        "shape": np.asarray(counts.shape, dtype=np.int64),
        "labels": labels,
    }


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A compressed npz (readable by np.load) with fixed timestamps: reproducible bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue(), compresslevel=9)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)  # atomic: never a half-written data file


def main(argv: list[str] | None = None) -> int:
    """Convert, verify the round trip, and print both checksums."""
    shared = Path(os.environ.get("GENEAE_SHARED_DATA", REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=shared / SOURCE_NAME)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    if not args.source.is_file():
        raise SystemExit(f"{args.source}: source file not found (set GENEAE_SHARED_DATA)")
    digest = sha256(args.source)
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{args.source}: sha256 {digest} differs from {SOURCE_SHA256}")
    counts, labels = read_source(args.source)
    write_npz(args.out, arrays_of(counts, labels))

    with np.load(args.out, allow_pickle=False) as z:  # round trip: the values are unchanged
        back = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        if (back != counts).nnz or not np.array_equal(z["labels"], labels):
            raise SystemExit(f"{args.out}: round trip changed the values")
    print(f"source {args.source.name} sha256 {digest}")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes) sha256 {sha256(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
