"""GEO series matrix files, written here and compared with an independent pandas read."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import geneae.io as gio
from geneae.errors import InputError

RNG = np.random.default_rng(7)
N, G = 6, 9
VALUES = RNG.normal(8.0, 2.0, size=(G, N)).round(3)  # probes x samples, log2 intensities
GSM = [f"GSM10{i}" for i in range(N)]
SUBTYPE = ["LumA", "Basal", "LumA", "Her2", "Basal", "LumA"]


def _series(values=VALUES, *, table=True, extra="") -> str:
    q = lambda items: "\t".join(f'"{v}"' for v in items)  # noqa: E731 - GEO quotes values
    lines = ['!Series_title\t"A study"', '!Series_geo_accession\t"GSE1"', ""]
    lines.append("!Sample_title\t" + q(f"tumour {i}" for i in range(N)))
    lines.append("!Sample_geo_accession\t" + q(GSM))
    lines.append("!Sample_characteristics_ch1\t" + q(f"subtype: {s}" for s in SUBTYPE))
    lines.append("!Sample_characteristics_ch1\t" + q(f"cell type: tumour{i % 2}" for i in range(N)))
    lines.append("!Sample_characteristics_ch1\t" + q(["age: 50", "tissue", *["x"] * (N - 2)]))
    lines.append("!series_matrix_table_begin")
    if table:
        lines.append('"ID_REF"\t' + q(GSM))
        lines += [f'"{1000 + j}_at"\t' + "\t".join(map(str, row)) for j, row in enumerate(values)]
    lines.append("!series_matrix_table_end")
    return "\n".join(lines) + "\n" + extra


def test_series_matrix_samples_probes_and_characteristics(tmp_path: Path) -> None:
    path = tmp_path / "GSE1_series_matrix.txt.gz"
    with gzip.open(path, "wt") as f:
        f.write(_series())
    adata = gio.read(path, labels="subtype")
    assert adata.uns["geneae_source"]["format"] == "geo"
    text = _series()
    table = text[text.index('"ID_REF"') : text.index("!series_matrix_table_end")]
    expected = pd.read_csv(pd.io.common.StringIO(table), sep="\t", index_col=0)
    np.testing.assert_allclose(adata.X, expected.T.to_numpy(np.float32))
    assert adata.obs_names.tolist() == GSM
    assert adata.var_names.tolist() == [f"{1000 + j}_at" for j in range(G)]
    assert adata.obs["label"].tolist() == SUBTYPE
    assert adata.obs["title"].tolist()[1] == "tumour 1"
    # mixed characteristics (not all "key: value") keep their field name
    assert adata.obs["characteristics_ch1"].tolist()[:2] == ["age: 50", "tissue"]
    # "cell type" becomes cell_type, which is found as labels without naming it
    assert gio.read(path).obs["label"].tolist() == [f"tumour{i % 2}" for i in range(N)]


def test_series_matrix_problems(tmp_path: Path) -> None:
    path = tmp_path / "GSE2_series_matrix.txt"
    path.write_text(_series(table=False))
    with pytest.raises(InputError, match="no expression values.*supplementary"):
        gio.read(path)
    values = VALUES.astype(object)
    values[2, 3] = "abc"
    path.write_text(_series(values))
    with pytest.raises(InputError, match=r"non-numeric value 'abc' on line 13"):
        gio.read(path)
    path.write_text(_series().replace("!series_matrix_table_begin\n", ""))
    with pytest.raises(InputError, match="no '!series_matrix_table_begin' line"):
        gio.read(path)


def test_probes_named_by_the_platform_annotation(tmp_path: Path, caplog) -> None:
    # GEO's platform table (GPLxxx.txt): '#' lines, then ID ... Gene Symbol; a probe of two
    # genes ("A /// B") takes the first, a probe without a symbol keeps its ID, two probes
    # of one gene are made unique, rows for probes the matrix lacks are ignored.
    path = tmp_path / "GSE1_series_matrix.txt"
    path.write_text(_series())
    probes = [f"{1000 + j}_at" for j in range(G)]
    symbols = ["TP53", "ESR1", "", "ERBB2 /// MIR4728", "GATA3", "ESR1", "KRT5", "MKI67", "FOXA1"]
    gpl = tmp_path / "GPL570-55999.txt"
    rows = ["#ID = Affymetrix probe set", "#Gene Symbol = symbol", "ID\tGB_ACC\tGene Symbol"]
    rows += [f"{p}\tNM_{i}\t{s}" for i, (p, s) in enumerate(zip(probes, symbols, strict=True))]
    rows.append("9999_at\tNM_9\tOTHER")
    gpl.write_text("\n".join(rows) + "\n")
    with caplog.at_level("INFO", logger="geneae.io.genes_file"), pytest.warns(Warning):
        adata = gio.read(path, genes=gpl)
    expected = ["TP53", "ESR1", "1002_at", "ERBB2", "GATA3", "ESR1", "KRT5", "MKI67", "FOXA1"]
    assert [n.split("-")[0] if n.startswith("ESR1") else n for n in adata.var_names] == expected
    assert adata.var_names.is_unique  # the second ESR1 probe is renamed, with a warning
    assert adata.var["gene_ids"].tolist() == probes  # the probe IDs are kept
    ref = pd.read_csv(path, sep="\t", comment="!", index_col=0)
    np.testing.assert_allclose(adata.X, ref.to_numpy().T.astype(np.float32))
    assert "8 of 9 genes named by the 'Gene Symbol' column" in caplog.text


def test_annotation_table_without_a_symbol_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "GSE1_series_matrix.txt"
    path.write_text(_series())
    table = tmp_path / "annot.csv"
    table.write_text("ID,description\n" + "".join(f"{1000 + j}_at,x\n" for j in range(G)))
    with pytest.raises(InputError, match=r"annot\.csv: .*gene IDs but no column.*'Gene Symbol'"):
        gio.read(path, genes=table)
