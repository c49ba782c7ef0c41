"""``read``: detect the format, call its reader, apply the common post-processing."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad

from geneae.io.arrays import read_npy, read_npz
from geneae.io.detect import detect_format
from geneae.io.finalize import finalize
from geneae.io.gct import read_gct
from geneae.io.geo import read_geo
from geneae.io.h5ad import read_h5ad, read_zarr
from geneae.io.hdf5 import read_plain_h5
from geneae.io.labels_file import Labels
from geneae.io.loom import read_loom
from geneae.io.messages import input_error
from geneae.io.tables import read_delimited
from geneae.io.tenx import read_10x_h5, read_10x_mtx

PathLike = str | os.PathLike[str]


def read(
    path: PathLike,
    *,
    fmt: str | None = None,
    labels: Labels | None = None,
    transpose: bool | None = None,
    backed: bool = False,
    genes: PathLike | None = None,
    labels_required: bool = True,
    use_raw: bool | None = None,
) -> ad.AnnData:
    """Read an expression matrix into a samples x genes AnnData.

    Parameters
    ----------
    path
        A file (``.h5ad``, 10x ``.h5``, ``.loom``, plain ``.h5`` with ``X``/``Y``,
        ``.csv``/``.tsv``/``.txt`` optionally ``.gz``, ``.gct``, a GEO series matrix,
        ``.npy``, ``.npz``) or a 10x matrix.mtx directory. The format is detected from the
        content and the name.
    fmt
        Force a format: one of :data:`geneae.io.detect.FORMATS`.
    labels
        A labels file for any format: one label per line in sample order, or a CSV / TSV
        with a column of sample names and a column of labels, matched by name
        (:mod:`geneae.io.labels_file`); for tables and
        h5ad also the name of the label column (taken out of a table's matrix). None looks
        for a column named label, labels, cell_type, celltype, cell_types,
        cell_ontology_class, bulk_labels or Y.
    transpose
        True when the file's rows are genes, False when they are samples. Tables: None
        decides from identifiers (Ensembl IDs, barcodes, TCGA/GTEx IDs, symbols) and shape.
        npy/npz: None means samples x genes. Other formats fix the orientation themselves
        (True is an error there, False a no-op).
    backed
        h5ad only: leave ``X`` on disk (anndata backed mode "r").
    genes
        A gene-names file (one per line) replacing the file's gene names (e.g. for npy).
    labels_required
        False: ``labels`` names a column to take out of the data if it is there (as when
        encoding new data with a model trained on labelled data); a missing column or a
        labels file is then no error and no labels are read.
    use_raw
        Read ``.raw``'s values of X's genes as X (h5ad; an error where ``.raw`` lacks
        some). None: where X holds z-scores and ``.raw`` their log-normalised values, as
        scanpy's workflow leaves a file; False: X as it is.

    Returns
    -------
    anndata.AnnData
        ``X`` float32, CSR when stored sparse or mostly zero (see
        :func:`geneae.matrix_values.csr_if_mostly_zero`), dense otherwise;
        ``obs["label"]`` categorical when labels exist; ``layers["counts"]`` is ``X``
        itself when ``X`` holds non-negative integers;
        ``uns["geneae_source"] = {"path", "format"[, "label_key"]}``.

    Raises
    ------
    InputError
        For any problem with the input: the message names the file, the problem and a fix.
    """
    file = Path(path)
    kind = detect_format(file, fmt)
    if transpose and kind not in {"csv", "tsv", "npy", "npz"}:
        # h5ad, 10x, GCT and the X/Y layout say which axis holds the genes.
        raise input_error(
            file,
            f"transpose=True applies to CSV/TSV tables and npy/npz arrays; a {kind} file "
            "already says which axis holds the genes",
            "Drop transpose=, or transpose the AnnData after reading (adata.T).",
        )
    if backed and kind != "h5ad":
        raise input_error(
            file,
            f"backed=True needs an .h5ad file, not {kind}",
            "Read it in memory (backed=False), or convert it once with geneae.io.write_h5ad.",
        )
    column = labels if isinstance(labels, str) and not Path(labels).is_file() else None
    if not labels_required:
        labels = column
    if kind == "h5ad":
        adata = read_h5ad(file, backed=backed)
    elif kind == "zarr":
        adata = read_zarr(file)
    elif kind == "10x_h5":
        adata = read_10x_h5(file)
    elif kind == "10x_mtx":
        adata = read_10x_mtx(file)
    elif kind == "h5":
        adata = read_plain_h5(file)
    elif kind == "loom":
        adata = read_loom(file)
    elif kind in {"csv", "tsv"}:
        sep = "," if kind == "csv" else "\t"
        adata = read_delimited(
            file, sep, labels=column, transpose=transpose, labels_required=labels_required
        )
    elif kind == "gct":
        adata = read_gct(file)
    elif kind == "geo":
        adata = read_geo(file)
    elif kind == "npy":
        adata = read_npy(file, transpose=bool(transpose))
    else:
        adata = read_npz(file, transpose=bool(transpose))
    return finalize(
        adata,
        file,
        kind,
        labels=labels,
        genes=genes,
        labels_required=labels_required,
        use_raw=use_raw,
    )
