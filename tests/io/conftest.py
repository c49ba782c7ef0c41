"""Fixtures for the io tests: the shared real data and writers of small synthetic files."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

# ---- 10x Genomics files -------------------------------------------------------------------


def _ascii(values: Sequence[str]) -> np.ndarray:
    return np.array([v.encode() for v in values])


def _write_csc(group: h5py.Group, cells_by_genes: np.ndarray) -> None:
    """10x stores genes x cells in CSC, i.e. the CSR arrays of the cells x genes matrix."""
    csr = sp.csr_matrix(cells_by_genes)
    group["data"] = csr.data.astype(np.int32)
    group["indices"] = csr.indices.astype(np.int64)
    group["indptr"] = csr.indptr.astype(np.int64)
    group["shape"] = np.array([cells_by_genes.shape[1], cells_by_genes.shape[0]], dtype=np.int32)


def write_10x_v3(
    path: Path,
    counts: np.ndarray,
    barcodes: Sequence[str],
    ids: Sequence[str],
    names: Sequence[str],
    types: Sequence[str],
) -> Path:
    with h5py.File(path, "w") as f:
        matrix = f.create_group("matrix")
        _write_csc(matrix, counts)
        matrix["barcodes"] = _ascii(barcodes)
        features = matrix.create_group("features")
        features["id"] = _ascii(ids)
        features["name"] = _ascii(names)
        features["feature_type"] = _ascii(types)
        features["genome"] = _ascii(["GRCh38"] * len(ids))
        features["_all_tag_keys"] = _ascii(["genome"])
    return path


def write_10x_v2(
    path: Path,
    genomes: dict[str, tuple[np.ndarray, Sequence[str], Sequence[str]]],
    barcodes: Sequence[str],
) -> Path:
    """``genomes``: name -> (cells x genes counts, gene ids, gene names)."""
    with h5py.File(path, "w") as f:
        for genome, (counts, ids, names) in genomes.items():
            group = f.create_group(genome)
            _write_csc(group, counts)
            group["barcodes"] = _ascii(barcodes)
            group["genes"] = _ascii(ids)
            group["gene_names"] = _ascii(names)
    return path


def write_10x_mtx(
    folder: Path,
    counts: np.ndarray,
    barcodes: Sequence[str],
    features: Sequence[Sequence[str]],
    *,
    gz: bool,
    prefix: str = "",
    features_name: str = "features.tsv",
) -> Path:
    """A Cell Ranger mtx folder; ``features`` rows are (id, name[, type])."""
    folder.mkdir(parents=True, exist_ok=True)
    opener: Callable[..., object] = gzip.open if gz else open
    ext = ".gz" if gz else ""
    with opener(folder / f"{prefix}matrix.mtx{ext}", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(counts.T), field="integer")
    with opener(folder / f"{prefix}barcodes.tsv{ext}", "wt") as fh:
        fh.write("".join(f"{b}\n" for b in barcodes))
    with opener(folder / f"{prefix}{features_name}{ext}", "wt") as fh:
        fh.write("".join("\t".join(row) + "\n" for row in features))
    return folder


@pytest.fixture
def tenx() -> SimpleNamespace:
    """A small 10x data set: 6 cells, 4 genes + 2 antibody features, and its writers."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(6, 6)).astype(np.int64)
    counts[0, 0] = 0
    return SimpleNamespace(
        counts=counts,
        barcodes=[f"{'ACGT' * 4}-{i}" for i in range(6)],
        ids=["ENSG00000000001", "ENSG00000000002", "ENSG00000000003", "ENSG00000000004"]
        + ["CD3", "CD4"],
        names=["GENE1", "GENE2", "GENE3", "GENE4", "CD3_TotalSeqB", "CD4_TotalSeqB"],
        types=["Gene Expression"] * 4 + ["Antibody Capture"] * 2,
        write_v3=write_10x_v3,
        write_v2=write_10x_v2,
        write_mtx=write_10x_mtx,
    )
