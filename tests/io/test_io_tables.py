"""CSV / TSV tables in both orientations, compared with an independent pandas read."""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import geneae.io as gio
from geneae.errors import DataWarning, InputError

RNG = np.random.default_rng(1)
COUNTS = RNG.poisson(3.0, size=(5, 8))  # 5 samples x 8 genes: wide, as expression tables are
ENSEMBL = [f"ENSG{i:011d}.{i % 3 + 1}" for i in range(1, 9)]
SYMBOLS = ["CD3E", "MS4A1", "LYZ", "NKG7", "GNLY", "CD14", "FCGR3A", "PPBP"]
BARCODES = [f"AAACCTGAGAAG{s}-1" for s in ("GCCT", "ACAG", "TTGG", "CCAA", "GTGT")]
TCGA = [f"TCGA-A1-A0S{i}-01A" for i in range(5)]


def _write(path: Path, frame: pd.DataFrame, sep: str = ",", **kwargs: object) -> Path:
    frame.to_csv(path, sep=sep, **kwargs)
    return path


def _check(adata, values: np.ndarray, samples: list[str], genes: list[str]) -> None:
    assert adata.shape == values.shape
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X, values.astype(np.float32))
    assert adata.obs_names.tolist() == samples
    assert adata.var_names.tolist() == genes


def test_samples_by_genes_with_barcodes(tmp_path: Path) -> None:
    # 10 cells x 3 genes: by shape alone rows would be genes; the barcodes decide.
    values = RNG.poisson(2.0, size=(10, 3))
    cells = ["".join("ACGT"[(i >> (2 * k)) & 3] for k in range(16)) + "-1" for i in range(10)]
    frame = pd.DataFrame(values, index=cells, columns=SYMBOLS[:3])
    path = _write(tmp_path / "cells.csv", frame)
    ref = pd.read_csv(path, index_col=0)
    adata = gio.read(path)
    _check(adata, ref.to_numpy(), ref.index.tolist(), ref.columns.tolist())
    assert adata.layers["counts"] is adata.X
    assert adata.uns["geneae_source"] == {"path": str(path), "format": "csv"}


def test_genes_by_samples_with_ensembl_ids(tmp_path: Path) -> None:
    # 8 genes x 5 samples would be read as samples by shape alone; Ensembl IDs decide.
    frame = pd.DataFrame(COUNTS.T, index=pd.Index(ENSEMBL, name="gene_id"), columns=TCGA)
    path = _write(tmp_path / "bulk.tsv", frame, sep="\t")
    ref = pd.read_csv(path, sep="\t", index_col=0)
    adata = gio.read(path)
    _check(adata, ref.to_numpy().T, ref.columns.tolist(), ref.index.tolist())


def test_genes_by_samples_with_few_genes_and_ensembl_ids(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS[:, :3].T, index=ENSEMBL[:3], columns=[f"s{i}" for i in range(5)])
    path = _write(tmp_path / "few_genes.csv", frame)
    adata = gio.read(path)
    assert adata.shape == (5, 3)
    assert adata.var_names.tolist() == ENSEMBL[:3]


def test_samples_by_genes_with_ensembl_header(tmp_path: Path) -> None:
    frame = pd.DataFrame(np.vstack([COUNTS] * 3), columns=ENSEMBL)  # 15 x 8, header decides
    frame.index = [f"sample_{i}" for i in range(15)]
    path = _write(tmp_path / "tall.csv", frame)
    adata = gio.read(path)
    assert adata.shape == (15, 8)
    assert adata.var_names.tolist() == ENSEMBL


def test_genes_by_samples_with_symbols_and_tcga_ids_gzipped(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS.T / 3.0, index=SYMBOLS, columns=TCGA)
    path = tmp_path / "expr.tsv.gz"
    frame.to_csv(path, sep="\t", compression="gzip")
    ref = pd.read_csv(path, sep="\t", index_col=0)
    adata = gio.read(path)
    _check(adata, ref.to_numpy().T, TCGA, SYMBOLS)
    assert "counts" not in adata.layers
    assert adata.uns["geneae_source"]["format"] == "tsv"


def test_genes_by_samples_with_tcga_legacy_gene_ids_and_plain_sample_names(
    tmp_path: Path,
) -> None:
    # Firehose's RSEM tables name genes symbol|Entrez; sample names renamed to P01... look
    # like symbols (weak evidence for genes), which must not outweigh the gene IDs.
    genes = [f"{s}|{i + 1}" for i, s in enumerate(SYMBOLS[:-1])] + ["?|100130426"]
    samples = [f"P{i:02d}" for i in range(5)]
    frame = pd.DataFrame(COUNTS.T + 0.25, index=pd.Index(genes, name="gene_id"), columns=samples)
    path = _write(tmp_path / "rsem.tsv", frame, sep="\t")
    ref = pd.read_csv(path, sep="\t", index_col=0)
    _check(gio.read(path), ref.to_numpy().T, samples, genes)


def test_gzipped_csv_with_barcode_header(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS.T, index=SYMBOLS, columns=BARCODES)
    path = tmp_path / "genes_x_cells.csv.gz"
    frame.to_csv(path, compression="gzip")
    adata = gio.read(path)
    _check(adata, COUNTS, BARCODES, SYMBOLS)


def test_symbols_in_rows_without_strong_ids(tmp_path: Path) -> None:
    # 8 gene symbols x 10 sample_N names: symbols and sample words agree: genes x samples.
    values = RNG.poisson(2.0, size=(8, 10))
    samples = [f"sample_{i}" for i in range(10)]
    path = _write(tmp_path / "bulk.csv", pd.DataFrame(values, index=SYMBOLS, columns=samples))
    adata = gio.read(path)
    _check(adata, values.T, samples, SYMBOLS)


@pytest.mark.parametrize(("n_rows", "n_cols"), [(3, 6), (6, 3)])
def test_ambiguous_tables_follow_shape(tmp_path: Path, n_rows: int, n_cols: int) -> None:
    values = RNG.normal(size=(n_rows, n_cols))
    rows = [f"row_{i}" for i in range(n_rows)]
    cols = [f"col_{i}" for i in range(n_cols)]
    path = _write(tmp_path / "t.csv", pd.DataFrame(values, index=rows, columns=cols))
    adata = gio.read(path)
    if n_rows < n_cols:  # wide: rows are samples
        _check(adata, values, rows, cols)
    else:
        _check(adata, values.T, cols, rows)
    transpose = n_rows < n_cols  # the opposite of the guess
    flipped = gio.read(path, transpose=transpose)
    assert flipped.shape == ((n_cols, n_rows) if transpose else (n_rows, n_cols))


def test_transpose_overrides_identifiers(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA)
    path = _write(tmp_path / "bulk.csv", frame)
    adata = gio.read(path, transpose=False)
    _check(adata, COUNTS.T, ENSEMBL, TCGA)


def test_r_style_header_one_field_short(tmp_path: Path) -> None:
    lines = ["\t".join(SYMBOLS)] + [
        "\t".join([b, *map(str, row)]) for b, row in zip(BARCODES, COUNTS, strict=True)
    ]
    path = tmp_path / "r_write_table.txt"
    path.write_text("\n".join(lines) + "\n")
    _check(gio.read(path), COUNTS, BARCODES, SYMBOLS)


def test_no_header_no_ids(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    np.savetxt(path, COUNTS, delimiter=",", fmt="%d")
    adata = gio.read(path)
    _check(
        adata, COUNTS, [f"sample_{i:04d}" for i in range(5)], [f"gene_{j:04d}" for j in range(8)]
    )


def test_header_without_id_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "noindex.csv", pd.DataFrame(COUNTS, columns=SYMBOLS), index=False)
    _check(gio.read(path), COUNTS, [f"sample_{i:04d}" for i in range(5)], SYMBOLS)


def test_sample_ids_keep_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("id," + ",".join(SYMBOLS) + "\n001,1,2,3,4,5,6,7,8\n002,8,7,6,5,4,3,2,1\n")
    assert gio.read(path).obs_names.tolist() == ["001", "002"]


def test_label_column_is_taken_out(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    frame.insert(3, "cell_type", ["T", "B", "T", "NK", "T"])
    path = _write(tmp_path / "labelled.csv", frame)
    for labels in ("cell_type", None):  # named, or found by its name
        adata = gio.read(path, labels=labels)
        _check(adata, COUNTS, BARCODES, SYMBOLS)
        assert adata.obs["label"].tolist() == ["T", "B", "T", "NK", "T"]
        assert adata.obs["label"].cat.categories.tolist() == ["B", "NK", "T"]
        assert adata.uns["geneae_source"]["label_key"] == "cell_type"


def test_numeric_label_column_by_name(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    frame["cluster"] = [2, 10, 2, 1, 1]
    path = _write(tmp_path / "clusters.csv", frame)
    adata = gio.read(path, labels="cluster")
    _check(adata, COUNTS, BARCODES, SYMBOLS)
    assert adata.obs["label"].cat.categories.tolist() == ["1", "2", "10"]


def test_label_row_in_genes_by_samples(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA).astype(object)
    frame.loc["subtype"] = ["LumA", "Basal", "LumA", "Her2", "Basal"]
    path = _write(tmp_path / "with_label_row.csv", frame)
    adata = gio.read(path, labels="subtype")
    _check(adata, COUNTS, TCGA, ENSEMBL)
    assert adata.obs["label"].tolist() == ["LumA", "Basal", "LumA", "Her2", "Basal"]


def test_featurecounts_output(tmp_path: Path) -> None:
    # featureCounts: a comment line, then Geneid, five annotation columns (Length numeric)
    # and one column per BAM file, named by its path.
    bams = [f"/data/run1/{s}.sorted.bam" for s in TCGA]
    lines = ['# Program:featureCounts v2.0.1; Command:"featureCounts" "-a" "genes.gtf"']
    lines.append("\t".join(["Geneid", "Chr", "Start", "End", "Strand", "Length", *bams]))
    for j, gene in enumerate(ENSEMBL):
        where = [
            f"chr{j + 1};chr{j + 1}",
            f"{100 * j};{100 * j + 60}",
            f"{100 * j + 50};{100 * j + 90}",
            "+;+",
            str(80 + j),
        ]
        lines.append("\t".join([gene, *where, *map(str, COUNTS[:, j])]))
    path = tmp_path / "counts.txt"
    path.write_text("\n".join(lines) + "\n")
    expected = pd.read_csv(path, sep="\t", comment="#", index_col=0).iloc[:, 5:].T
    adata = gio.read(path)
    _check(adata, expected.to_numpy(), [f"{s}.sorted" for s in TCGA], ENSEMBL)
    assert adata.var["Length"].tolist() == [80 + j for j in range(8)]
    assert adata.var["Chr"].iloc[0] == "chr1;chr1"
    assert "counts" in adata.layers  # the counts stay counts: no annotation column in X


@pytest.mark.parametrize(
    ("summaries", "rows_are_genes"),
    [
        (["__no_feature", "__ambiguous", "__too_low_aQual", "__not_aligned"], True),  # HTSeq
        (["N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"], True),  # STAR
        (["__no_feature", "__alignment_not_unique"], False),  # merged, then transposed
    ],
)
def test_read_counter_summaries_are_sample_annotations_not_genes(
    tmp_path: Path, caplog, summaries, rows_are_genes
) -> None:
    # HTSeq-count / STAR write their reads counted nowhere beside the genes: millions of
    # reads per sample that would swamp every library size
    extra = np.arange(1, len(TCGA) + 1)[None, :] * 1e6 + np.arange(len(summaries))[:, None]
    frame = pd.DataFrame(np.vstack([COUNTS.T, extra]), index=[*ENSEMBL, *summaries], columns=TCGA)
    frame = frame if rows_are_genes else frame.T
    path = tmp_path / "htseq.tsv"
    frame.to_csv(path, sep="\t", index_label="gene" if rows_are_genes else "sample")
    with caplog.at_level("INFO", logger="geneae.io"):
        adata = gio.read(path)
    _check(adata, COUNTS, TCGA, ENSEMBL)
    for pos, name in enumerate(summaries):
        np.testing.assert_array_equal(adata.obs[name].to_numpy(), extra[pos])
    assert "the read counter's summar" in caplog.text and summaries[0] in caplog.text
    assert "counts" in adata.layers  # the genes' counts stay counts


def test_cbioportal_table_keeps_its_entrez_ids_out_of_the_samples(tmp_path: Path) -> None:
    # cBioPortal's data_mrna_seq_v2_rsem.txt: Hugo_Symbol, Entrez_Gene_Id (numbers), then
    # one column per TCGA sample. The Entrez IDs were read as one more sample.
    frame = pd.DataFrame(COUNTS.T * 10.5, columns=TCGA)
    frame.insert(0, "Entrez_Gene_Id", [915, 931, 4069, 4818, 10578, 929, 2214, 5473])
    frame.insert(0, "Hugo_Symbol", SYMBOLS)
    path = tmp_path / "data_mrna_seq_v2_rsem.txt"
    frame.to_csv(path, sep="\t", index=False)
    adata = gio.read(path)
    _check(adata, COUNTS * 10.5, TCGA, SYMBOLS)
    assert adata.var["Entrez_Gene_Id"].tolist() == [915, 931, 4069, 4818, 10578, 929, 2214, 5473]


def test_gene_name_column_beside_the_identifiers(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA)
    frame.insert(0, "gene_name", SYMBOLS)
    frame.insert(1, "gene_type", "protein_coding")
    path = _write(tmp_path / "annotated.csv", frame, index_label="gene_id")
    adata = gio.read(path)
    _check(adata, COUNTS, TCGA, ENSEMBL)
    assert adata.var["gene_name"].tolist() == SYMBOLS
    # a text column that is no known annotation is still refused, naming it
    frame.insert(2, "notes", "x")
    with pytest.raises(InputError, match="non-numeric value 'x'.*column 'notes'"):
        gio.read(_write(tmp_path / "notes.csv", frame, index_label="gene_id"))


SUBTYPES = ["LumA", "Basal", "LumA", "Her2", "Basal"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # what pandas' Series.to_csv writes: a header, then sample,label rows
        (
            "sample,subtype\n" + "".join(f"{s},{t}\n" for s, t in zip(TCGA, SUBTYPES, strict=True)),
            "header",
        ),
        # tab-separated, no header, in another order, with a sample the matrix does not hold
        (
            "".join(f"{TCGA[i]}\t{SUBTYPES[i]}\n" for i in (4, 2, 0, 3, 1))
            + "TCGA-ZZ-0000-01A\tNormal\n",
            "reordered, extra row",
        ),
        # a sample sheet: several columns, the label one named; sample names not first
        (
            "age,id,cell_type,batch\n"
            + "".join(
                f"{40 + i},{s},{t},b1\n"
                for i, (s, t) in enumerate(zip(TCGA, SUBTYPES, strict=True))
            ),
            "sheet",
        ),
    ],
)
def test_labels_table_is_matched_by_sample_name(tmp_path: Path, text: str, why: str) -> None:
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    labels = tmp_path / "labels.csv"
    labels.write_text(text)
    adata = gio.read(path, labels=labels)
    _check(adata, COUNTS, TCGA, ENSEMBL)
    assert adata.obs["label"].tolist() == SUBTYPES, why


def test_samples_a_labels_table_leaves_out_have_no_label(tmp_path: Path) -> None:
    # cells left out of an annotation sheet are unlabelled, not an error
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    labels = tmp_path / "labels.csv"
    rows = [(s, t) for s, t in zip(TCGA, SUBTYPES, strict=True)][::-1][:3]
    labels.write_text("sample,subtype\n" + "".join(f"{s},{t}\n" for s, t in rows))
    obs = gio.read(path, labels=labels).obs["label"]
    assert obs.tolist()[2:] == SUBTYPES[2:]
    assert obs.isna().tolist() == [True, True, False, False, False]


def test_labels_table_problems_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    labels = tmp_path / "labels.csv"
    labels.write_text("".join(f"{s},{t}\n" for s, t in zip(TCGA[:2], SUBTYPES[:2], strict=True)))
    with pytest.raises(InputError, match=r"labels\.csv: 3 of the 5 samples have no row.*A0S2"):
        gio.read(path, labels=labels)
    labels.write_text("id,stage,grade\n" + "".join(f"{s},II,3\n" for s in TCGA))
    with pytest.raises(InputError, match=r"several columns.*'stage', 'grade'.*--labels COLUMN"):
        gio.read(path, labels=labels)
    rows = [f"{s},{t}" for s, t in zip(TCGA, SUBTYPES, strict=True)] + [f"{TCGA[0]},Her2"]
    labels.write_text("\n".join(rows))
    with pytest.raises(InputError, match=r"A0S0-01A' is listed twice.*'LumA' and 'Her2'"):
        gio.read(path, labels=labels)
    # labels that hold commas but no sample names: still one label per line
    labels.write_text("\n".join(f"{t}, grade {i}" for i, t in enumerate(SUBTYPES)))
    assert gio.read(path, labels=labels).obs["label"].tolist()[0] == "LumA, grade 0"


def test_the_label_column_of_a_phenotype_sheet_can_be_named(tmp_path: Path) -> None:
    # UCSC Xena / GEO phenotype tables: sample IDs and many columns, none called label
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    sheet = tmp_path / "pheno.tsv"
    rows = zip(TCGA, SUBTYPES, strict=True)
    sheet.write_text(
        "sampleID\tgender\t_primary_disease\tage\n"
        + "".join(f"{s}\tFEMALE\t{t}\t{50 + i}\n" for i, (s, t) in enumerate(rows))
    )
    adata = gio.read(path, labels=gio.LabelsSheet(sheet, "_Primary_Disease"))
    assert adata.obs["label"].tolist() == SUBTYPES
    with pytest.raises(InputError, match=r"no column 'disease' \(its columns.*'_primary_disease'"):
        gio.read(path, labels=gio.LabelsSheet(sheet, "disease"))


@pytest.mark.parametrize("column", ["CANCER_TYPE", "Cancer Type", "#Cancer Type"])
def test_a_cbioportal_clinical_sheet_gives_labels(tmp_path: Path, column: str) -> None:
    # data_clinical_sample.txt: four '#' lines (display names, descriptions, types,
    # priorities) above the column IDs; its column was read by the first '#' line's names
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    sheet = tmp_path / "data_clinical_sample.txt"
    rows = zip(TCGA, SUBTYPES, strict=True)
    sheet.write_text(
        "#Patient Identifier\tSample Identifier\tCancer Type\n"
        "#Identifier of a patient.\tA sample identifier.\tCancer type.\n"
        "#STRING\tSTRING\tSTRING\n#1\t1\t1\n"
        "PATIENT_ID\tSAMPLE_ID\tCANCER_TYPE\n" + "".join(f"{s[:12]}\t{s}\t{t}\n" for s, t in rows)
    )
    adata = gio.read(path, labels=gio.LabelsSheet(sheet, column))
    assert adata.obs["label"].tolist() == SUBTYPES
    with pytest.raises(InputError, match=r"no column 'type' \(its columns.*'PATIENT_ID', 'CANCER"):
        gio.read(path, labels=gio.LabelsSheet(sheet, "type"))


def test_training_names_a_column_of_its_labels_file(tmp_path: Path) -> None:
    from geneae.config import RunConfig
    from geneae.run import load_data

    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    sheet = tmp_path / "pheno.csv"
    rows = zip(TCGA, SUBTYPES, strict=True)
    sheet.write_text("id,stage,subtype\n" + "".join(f"{s},II,{t}\n" for s, t in rows))
    config = RunConfig.from_dict({"data": {"label_column": "subtype"}})  # --labels subtype
    assert load_data(path, config, labels=sheet).obs["label"].tolist() == SUBTYPES


@pytest.mark.parametrize("r_side", ["labels", "data"])
def test_labels_match_sample_names_as_r_writes_them(tmp_path: Path, caplog, r_side) -> None:
    # read.csv turns TCGA-A1-A0SB-01A into TCGA.A1.A0SB.01A (make.names), in a sheet
    # written from R or in the matrix's own column names
    r_names = [s.replace("-", ".") for s in TCGA]
    data_names, sheet_names = (TCGA, r_names) if r_side == "labels" else (r_names, TCGA)
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=data_names))
    sheet = tmp_path / "labels.tsv"
    rows = zip(sheet_names, SUBTYPES, strict=True)
    sheet.write_text("sample\tsubtype\n" + "".join(f"{s}\t{t}\n" for s, t in rows))
    with caplog.at_level("INFO", logger="geneae.io.labels_file"):
        adata = gio.read(path, labels=sheet)
    assert adata.obs["label"].tolist() == SUBTYPES
    assert f"as R writes them ('{sheet_names[0]}' for '{data_names[0]}')" in caplog.text


def test_a_sheet_naming_other_samples_is_refused_as_such(tmp_path: Path) -> None:
    # not "is the first line a header? remove it", which then read each line as a label
    path = _write(tmp_path / "expr.csv", pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA))
    sheet = tmp_path / "labels.tsv"
    rows = [f"other-{i}\t{t}" for i, t in enumerate(SUBTYPES)]
    for text in ("sample\tsubtype\n" + "\n".join(rows), "\n".join(rows)):
        sheet.write_text(text)
        with pytest.raises(InputError, match=r"no column of the labels table holds the sample"):
            gio.read(path, labels=sheet)


def test_labels_and_transpose_conflict(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    frame["cell_type"] = list("ABABA")
    path = _write(tmp_path / "conflict.csv", frame)
    with pytest.raises(InputError, match=r"conflict\.csv.*transpose=True"):
        gio.read(path, labels="cell_type", transpose=True)


def test_label_column_not_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS))
    with pytest.raises(InputError, match=r"x\.csv.*no column or row 'celltype'.*CD3E, MS4A1"):
        gio.read(path, labels="celltype")


def test_text_column_beside_the_genes_is_a_sample_annotation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    frame["tissue"] = ["blood", "blood", "marrow", "blood", "marrow"]
    path = _write(tmp_path / "tissue.csv", frame)
    with caplog.at_level(logging.INFO, logger="geneae.io"):
        adata = gio.read(path)
    _check(adata, COUNTS, BARCODES, SYMBOLS)
    assert adata.obs["tissue"].tolist() == frame["tissue"].tolist()
    assert "column tissue annotates the samples, not genes" in caplog.text
    # and it can be the labels, by name
    assert gio.read(path, labels="tissue").obs["label"].tolist() == frame["tissue"].tolist()


def test_seurat_metadata_beside_the_genes_is_not_trained_on(tmp_path: Path) -> None:
    # Seurat's FetchData / meta.data joined to the counts: numbers, but no gene's
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    meta = {
        "orig.ident": ["pbmc"] * 5,
        "nCount_RNA": COUNTS.sum(axis=1),
        "nFeature_RNA": (COUNTS > 0).sum(axis=1),
        "percent.mt": [1.5, 2.0, 0.5, 3.25, 1.0],
        "seurat_clusters": [0, 1, 0, 2, 1],
    }
    path = _write(tmp_path / "seurat.csv", frame.assign(**meta))
    adata = gio.read(path)
    _check(adata, COUNTS, BARCODES, SYMBOLS)
    assert adata.obs["seurat_clusters"].tolist() == meta["seurat_clusters"]
    assert adata.obs["percent.mt"].tolist() == meta["percent.mt"]
    assert "label" not in adata.obs  # metadata are kept, but no column is taken as labels


def test_whole_number_label_column_is_the_labels(tmp_path: Path) -> None:
    # a column named like labels that holds class codes: labels, not a gene
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    path = _write(tmp_path / "coded.csv", frame.assign(label=[3, 1, 3, 0, 1]))
    adata = gio.read(path)
    _check(adata, COUNTS, BARCODES, SYMBOLS)
    assert adata.obs["label"].tolist() == ["3", "1", "3", "0", "1"]
    # fractions are a measurement: read as a column of the matrix
    values = frame.assign(label=[0.5, 1.25, 0.0, 2.5, 1.0])
    adata = gio.read(_write(tmp_path / "fraction.csv", values))
    assert adata.var_names[-1] == "label"
    assert "label" not in adata.obs


def test_column_of_numbers_and_text_is_refused_naming_the_line(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS).astype(object)
    frame["CD14"] = [1, 2, "high", 0, 3]
    path = _write(tmp_path / "mixed.csv", frame)
    with pytest.raises(InputError, match=r"mixed\.csv.*'high' on line 4, column 'CD14'"):
        gio.read(path)


def test_non_numeric_cell_names_line_and_column(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS).astype(object)
    frame.iloc[3, 5] = "n/a?"
    path = _write(tmp_path / "typo.csv", frame)
    with pytest.raises(InputError, match=r"typo\.csv.*'n/a\?' on line 5, column 'CD14'"):
        gio.read(path)


def test_value_beyond_float32_names_line_and_column(tmp_path: Path) -> None:
    # Found by the fuzz test: 3.4028235677973366e+38 would become inf as float32.
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS).astype(float)
    frame.iloc[2, 1] = 3.5e38
    path = _write(tmp_path / "huge.csv", frame)
    with pytest.raises(InputError, match=r"huge\.csv.*3\.5e\+38 on line 4, column .*float32"):
        gio.read(path)


@pytest.mark.parametrize(
    ("body", "line"),
    [("g,a,b\nx,1,2\ny,3,4,5\nz,1,1\n", 3), ("g,a,b\nx,1,2\ny,3\nz,1,1\n", 3)],
)
def test_ragged_rows(tmp_path: Path, body: str, line: int) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text(body)
    with pytest.raises(InputError, match=rf"ragged\.csv: ragged table: line {line} "):
        gio.read(path)


def test_header_longer_than_rows(tmp_path: Path) -> None:
    path = tmp_path / "longhead.csv"
    path.write_text("g,a,b,c,d\nx,1,2\ny,3,4\n")
    with pytest.raises(InputError, match=r"longhead\.csv.*header \(line 1\) has 5 fields"):
        gio.read(path)


def test_nan_values_are_counted_and_located(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS.astype(float), index=BARCODES, columns=SYMBOLS)
    frame.iloc[1, 2] = np.nan
    frame.iloc[4, 0] = np.inf
    path = _write(tmp_path / "holes.csv", frame)
    with pytest.raises(InputError, match=rf"holes\.csv: 2 NaN.*{BARCODES[1]}.*'LYZ'"):
        gio.read(path)


def test_a_firehose_table_has_a_second_header_line(tmp_path: Path, caplog) -> None:
    # TCGA Level 3 from Firehose: the samples, then what each column holds, then the genes
    path = tmp_path / "BRCA.rsem.genes.normalized_results.txt"
    lines = ["Hybridization REF\t" + "\t".join(TCGA)]
    lines.append("gene_id\t" + "\t".join(["normalized_count"] * len(TCGA)))
    lines += [f"{g}\t" + "\t".join(f"{v:.4f}" for v in COUNTS[:, j]) for j, g in enumerate(ENSEMBL)]
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level("INFO", logger="geneae.io"):
        adata = gio.read(path)
    _check(adata, COUNTS, TCGA, ENSEMBL)
    assert "line 2 (gene_id normalized_count ...) names what every column holds" in caplog.text
    # a data line whose values differ is no header: its text is refused where it stands
    lines[1] = "gene_id\t" + "\t".join(["raw_count", "scaled_estimate"] * 2 + ["raw_count"])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"non-numeric value 'raw_count' on line 2"):
        gio.read(path)


def test_genes_and_samples_without_any_value_are_left_out(tmp_path: Path) -> None:
    # cBioPortal's z-scores: NA in every sample for a gene without variance; a failed
    # sample may be NA throughout. Left out with a warning each; holes elsewhere refused.
    frame = pd.DataFrame(COUNTS.T, index=ENSEMBL, columns=TCGA).astype(float)
    frame.iloc[2, :] = np.nan
    frame.iloc[:, 1] = np.nan
    path = _write(tmp_path / "z.tsv", frame, sep="\t")
    with pytest.warns(DataWarning) as caught:
        adata = gio.read(path)
    said = " ".join(str(w.message) for w in caught)
    assert f"1 gene(s) without a value in any sample (e.g. '{ENSEMBL[2]}')" in said
    assert f"1 sample(s) without a value in any gene (e.g. '{TCGA[1]}')" in said
    assert adata.var_names.tolist() == ENSEMBL[:2] + ENSEMBL[3:]
    assert adata.obs_names.tolist() == TCGA[:1] + TCGA[2:]
    expected = np.delete(np.delete(COUNTS, 1, axis=0), 2, axis=1)
    values = adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X
    np.testing.assert_array_equal(values, expected)
    frame.iloc[0, 0] = np.nan
    _write(path, frame, sep="\t")
    with pytest.raises(InputError, match=r"z\.tsv: 1 NaN"), pytest.warns(DataWarning):
        gio.read(path)


def test_duplicate_names_are_made_unique(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=["A", "A", *SYMBOLS[2:]])
    path = _write(tmp_path / "dups.csv", frame)
    with pytest.warns(DataWarning, match=r"dups\.csv: 1 duplicated gene name"):
        adata = gio.read(path)
    assert adata.var_names[:2].tolist() == ["A", "A-1"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("blank.csv", "\n\n", "holds no data"),
        ("header_only.csv", "gene,a,b\n", "no data rows"),
        ("single_column.csv", "gene\nA\nB\n", "the matrix is empty"),
        ("latin1.csv", b"g,a\nx\xe9,1\n", "not UTF-8"),
    ],
)
def test_empty_or_unreadable_tables(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError, match=re.escape(name) + ".*" + message):
        gio.read(path)


def test_tsv_named_csv_is_sniffed(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    path = _write(tmp_path / "really_tabs.csv", frame, sep="\t")
    _check(gio.read(path), COUNTS, BARCODES, SYMBOLS)


def test_fmt_override_for_odd_extension(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=BARCODES, columns=SYMBOLS)
    path = _write(tmp_path / "matrix.dat", frame)
    _check(gio.read(path, fmt="csv"), COUNTS, BARCODES, SYMBOLS)


def test_gzip_stream_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    data = gzip.compress(b"g,a,b\nx,1,2\n" * 50)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"broken\.csv\.gz"):
        gio.read(path)


def test_line_numbers_count_the_label_row(tmp_path: Path) -> None:
    path = tmp_path / "after_label_row.csv"
    path.write_text("gene,s1,s2\nsubtype,A,B\nTP53,1,2\nEGFR,3,oops\n")
    with pytest.raises(InputError, match=r"'oops' on line 4, column 's2'"):
        gio.read(path, labels="subtype", transpose=True)


@pytest.mark.parametrize("decimal", [",", "."])
def test_semicolon_tables_as_spreadsheets_save_csv(tmp_path: Path, decimal: str) -> None:
    # A spreadsheet's "CSV" where the decimal mark is a comma: fields separated by ";",
    # numbers like 12,5. It was refused as a ragged table (the header had one comma field).
    tpm = RNG.gamma(0.5, 40.0, size=(8, 5)).round(3)
    frame = pd.DataFrame(tpm, index=pd.Index(ENSEMBL, name="gene_id"), columns=TCGA)
    path = _write(tmp_path / "tpm.csv", frame, sep=";", decimal=decimal)
    ref = pd.read_csv(path, sep=";", decimal=decimal, index_col=0)
    _check(gio.read(path), ref.to_numpy().T, ref.columns.tolist(), ref.index.tolist())
    text = path.rename(tmp_path / "tpm.txt")  # .txt: no tab in the header, so a CSV
    read = gio.read(text)
    _check(read, ref.to_numpy().T, ref.columns.tolist(), ref.index.tolist())
    assert read.uns["geneae_source"]["format"] == "csv"
    # Without a header (numbers only), as written by numpy.savetxt with ";".
    bare = tmp_path / "bare.csv"
    bare.write_text(
        "\n".join(";".join(f"{v:.3f}".replace(".", decimal) for v in row) for row in tpm.T)
    )
    np.testing.assert_allclose(gio.read(bare).X, tpm.T.astype(np.float32), rtol=1e-6)


def test_a_comma_table_with_semicolons_in_names_stays_comma_separated(tmp_path: Path) -> None:
    frame = pd.DataFrame(COUNTS, index=TCGA, columns=["a;b", *SYMBOLS[1:]])
    path = _write(tmp_path / "names.csv", frame)
    ref = pd.read_csv(path, index_col=0)
    _check(gio.read(path), ref.to_numpy(), ref.index.tolist(), ref.columns.tolist())


@pytest.mark.parametrize("rows_are_genes", [False, True])
def test_a_separator_ending_every_line_adds_no_sample_or_gene(
    tmp_path: Path, rows_are_genes
) -> None:
    # spreadsheet and R exports that end each line with the separator: a column with no
    # name and no value, which was read as one more gene (or sample) of missing values
    frame = pd.DataFrame(COUNTS, index=TCGA, columns=ENSEMBL)
    frame = frame.T if rows_are_genes else frame
    text = frame.to_csv(sep="\t", index_label="id")
    path = tmp_path / "trailing.tsv"
    path.write_text("".join(line + "\t\n" for line in text.splitlines()))
    _check(gio.read(path), COUNTS, TCGA, ENSEMBL)
