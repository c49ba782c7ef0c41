"""What the header names of an expression table mean.

Which first-cell words name an identifier column, which columns beside the gene
identifiers are gene annotations (featureCounts' Chr ... Length, GENCODE / biomart names,
types and descriptions) rather than samples, which columns beside the genes annotate the
samples (Seurat / scanpy metadata, text columns) rather than measure a gene, which rows
are a read counter's summaries (HTSeq's ``__no_feature``, STAR's ``N_unmapped``) rather
than genes (moved into obs here), which second header line names what every column holds
(Firehose's ``gene_id normalized_count ...``), and how sample columns named after read files
(``/data/S1.bam``) are named. Used by :mod:`geneae.io.tables`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from geneae.io.messages import input_error

logger = logging.getLogger(__name__)

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
# Per-sample annotations that single-cell exports carry beside the genes when rows are
# cells: Seurat's meta.data (orig.ident, nCount_RNA, nFeature_RNA, percent.mt,
# seurat_clusters, S.Score, Phase), scanpy's obs (n_counts, n_genes_by_counts,
# total_counts, pct_counts_mt, leiden, louvain), doublet scores and embedding coordinates.
# They are numbers but no gene's: read into obs, never into the matrix, where a cluster
# number would hand the model the answer and a library size would swamp the genes.
SAMPLE_ANNOTATIONS = {
    "orig.ident",
    "seurat_clusters",
    "s.score",
    "g2m.score",
    "s_score",
    "g2m_score",
    "phase",
    "n_counts",
    "n_genes",
    "n_genes_by_counts",
    "total_counts",
    "leiden",
    "louvain",
    "cluster",
    "clusters",
    "batch",
    "doublet_score",
    "predicted_doublet",
    "scrublet_score",
}
SAMPLE_ANNOTATION_PREFIXES = (
    "ncount_",
    "nfeature_",
    "percent.",
    "percent_",
    "pct_counts_",
    "total_counts_",
    "log1p_total_counts",
    "log1p_n_genes",
    "umap_",
    "tsne_",
)
# The summary counters that read counters write beside the genes: HTSeq-count's reads
# counted nowhere (``__no_feature`` ...) and STAR's ReadsPerGene (``N_unmapped`` ...).
# Each holds 1e5-1e7 reads of a sample, no gene's: in the matrix it would dominate every
# sample's library size. Read into obs (per-sample QC), never into the matrix.
READ_COUNTER_SUMMARIES = {
    "__no_feature",
    "__ambiguous",
    "__too_low_aqual",
    "__not_aligned",
    "__alignment_not_unique",
    "n_unmapped",
    "n_multimapping",
    "n_nofeature",
    "n_ambiguous",
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


def sample_annotations(names: list[str], body: pd.DataFrame) -> list[int]:
    """Positions of the columns that annotate samples rather than measure a gene.

    Those named like :data:`SAMPLE_ANNOTATIONS` (or a prefix of
    :data:`SAMPLE_ANNOTATION_PREFIXES`) and those that hold only text (a cell's sample,
    condition or type), for a table whose rows are samples. A column with some numbers and
    some text is no annotation: it stays, to be refused with the line of its first text.
    """
    found = []
    for pos, name in enumerate(names):
        key = str(name).strip().lower()
        if key in SAMPLE_ANNOTATIONS or key.startswith(SAMPLE_ANNOTATION_PREFIXES):
            found.append(pos)
            continue
        values = body.iloc[:, pos]
        if values.dtype.kind in "iufb" or not values.notna().any():
            continue
        present = values[values.notna()]
        if pd.to_numeric(present, errors="coerce").isna().all():
            found.append(pos)
    return found


def sample_names_from_read_files(names: list[str]) -> list[str] | None:
    """Sample names that are read-file paths (``/data/S1.bam``) as their file's stem.

    None when they are not all such paths, or the stems would not be unique.
    """
    if not names or not all(n.lower().endswith(_READ_FILE_SUFFIXES) for n in names):
        return None
    stems = [Path(n.replace("\\", "/")).name.rsplit(".", 1)[0] for n in names]
    return stems if len(set(stems)) == len(stems) and all(stems) else None


def read_counter_summaries(names: pd.Index) -> np.ndarray:
    """Positions of the genes named like a read counter's summary.

    See :data:`READ_COUNTER_SUMMARIES`; case and surrounding blanks aside.
    """
    keys = pd.Index(names).astype(str).str.strip().str.lower()
    return np.flatnonzero(keys.isin(list(READ_COUNTER_SUMMARIES)))


def quantity_row(row: list[str], is_number: Callable[[str], bool]) -> str | None:
    """The quantity a second header line names above every value column, else None.

    Firehose's TCGA Level 3 tables put the samples in their first line (``Hybridization
    REF``, barcodes) and what each column holds in a second (``gene_id``, then
    ``normalized_count`` for every sample): one word, the same in every value column.
    """
    words = {field.strip() for field in row[1:]}
    if len(row) < 2 or len(words) != 1 or is_number(row[0]):
        return None
    word = words.pop()
    return word if word and not is_number(word) else None


def summaries_to_obs(path: Path, adata: ad.AnnData) -> ad.AnnData:
    """``adata`` with a read counter's summary counts moved from the genes into obs."""
    found = read_counter_summaries(adata.var_names)
    if not found.size:
        return adata
    names = [str(adata.var_names[j]) for j in found]
    if found.size == adata.n_vars:
        raise input_error(
            path,
            f"every row or column is a read counter's summary ({preview(names)}), no gene",
            "Give the table of counts per gene (HTSeq-count / STAR write it beside these).",
        )
    summaries = np.asarray(adata.X[:, found])
    keep = np.setdiff1d(np.arange(adata.n_vars), found)
    out = adata[:, keep].copy()
    for pos, name in enumerate(names):
        out.obs[name] = summaries[:, pos]
    logger.info(
        "%s: %s %s the read counter's summar%s, not genes: kept as sample annotations "
        "(obs), not trained on",
        path,
        preview(names),
        "are" if len(names) > 1 else "is",
        "ies" if len(names) > 1 else "y",
    )
    return out


def preview(names: list[str], n: int = 8) -> str:
    """The first few names and how many there are, for error messages."""
    shown = ", ".join(str(x) for x in names[:n])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > n else shown or "none"
