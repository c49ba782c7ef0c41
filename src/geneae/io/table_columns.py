"""What the header names of an expression table mean.

Which first-cell words name an identifier column, which columns beside the gene
identifiers are gene annotations (featureCounts' Chr ... Length, GENCODE / biomart names,
types and descriptions) rather than samples, and how sample columns named after read files
(``/data/S1.bam``) are named. Used by :mod:`geneae.io.tables`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# First-cell words that name an identifier column rather than a gene or sample.
ID_HEADERS = {
    "",
    "id",
    "ids",
    "index",
    "name",
    "names",
    "gene",
    "genes",
    "gene_id",
    "gene_ids",
    "geneid",
    "gene_name",
    "gene_symbol",
    "symbol",
    "hugo_symbol",
    "ensembl",
    "ensembl_id",
    "feature",
    "features",
    "sample",
    "samples",
    "sample_id",
    "cell",
    "cells",
    "cell_id",
    "barcode",
    "barcodes",
    "rownames",
    "unnamed: 0",
}
# Gene annotation columns that bulk tables carry between the gene identifiers and the
# samples (featureCounts: Chr, Start, End, Strand, Length; GENCODE / biomart exports: gene
# name, type, description; cBioPortal's Hugo_Symbol, Entrez_Gene_Id). Read into var, never
# into the matrix (Length and Entrez IDs are numeric).
GENE_ANNOTATIONS = {
    "chr",
    "chrom",
    "chromosome",
    "seqname",
    "start",
    "end",
    "strand",
    "length",
    "gene_name",
    "gene_symbol",
    "symbol",
    "hgnc_symbol",
    "external_gene_name",
    "description",
    "gene_description",
    "gene_type",
    "gene_biotype",
    "biotype",
    "entrez",
    "entrez_id",
    "entrezid",
    "entrezgene_id",
    "entrez_gene_id",
}
# Aligned-read files that count tools name their sample columns after.
_READ_FILE_SUFFIXES = (".bam", ".sam", ".cram")


def gene_annotations(names: list[str], body: pd.DataFrame) -> dict[str, np.ndarray]:
    """The leading columns named like gene annotations (:data:`GENE_ANNOTATIONS`)."""
    found: dict[str, np.ndarray] = {}
    for pos, name in enumerate(names[:-1]):  # at least one column of values stays
        if name.strip().lower() not in GENE_ANNOTATIONS or name in found:
            break
        column = body.iloc[:, pos]
        numeric = column.dtype.kind in "iuf"
        found[name] = column.to_numpy() if numeric else column.fillna("").astype(str).to_numpy()
    return found


def sample_names_from_read_files(names: list[str]) -> list[str] | None:
    """Sample names that are read-file paths (``/data/S1.bam``) as their file's stem.

    None when they are not all such paths, or the stems would not be unique.
    """
    if not names or not all(n.lower().endswith(_READ_FILE_SUFFIXES) for n in names):
        return None
    stems = [Path(n.replace("\\", "/")).name.rsplit(".", 1)[0] for n in names]
    return stems if len(set(stems)) == len(stems) and all(stems) else None
