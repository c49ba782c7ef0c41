"""GEO series matrix files (``GSExxxx_series_matrix.txt[.gz]``): probes x samples.

Layout: ``!Series_*`` lines about the study; ``!Sample_<field>`` lines, a tab, then one
quoted value per sample; then the data between ``!series_matrix_table_begin`` and
``!series_matrix_table_end``: a header (``ID_REF`` and the samples' GSM accessions) and
one probe or gene per line. Samples become rows named by accession. Every ``!Sample_``
field with one value per sample becomes an obs column; characteristics written as
``key: value`` (``subtype: LumA``) become one column per key with spaces as underscores
(``cell type`` -> ``cell_type``), so that ``--labels subtype`` names them and a cell type
is found as labels on its own. The genes are the platform's probe IDs; the platform's
annotation table (``GPLxxx.txt`` from GEO) given as the genes file (``--genes-file``) names
them by gene symbol (:mod:`geneae.io.genes_file`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import anndata as ad
import pandas as pd

from geneae.io.finalize import build_anndata
from geneae.io.messages import input_error
from geneae.io.tables import READ_ERRORS, not_text_error, numeric_matrix
from geneae.io.textfile import open_text

TABLE_BEGIN = "!series_matrix_table_begin"
TABLE_END = "!series_matrix_table_end"
_FIX = "Download the series matrix again from GEO, or export the table as a TSV."


def read_geo(path: Path) -> ad.AnnData:
    """Read a GEO series matrix file as samples x probes (see the module docstring)."""
    try:
        with open_text(path) as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from exc
    except READ_ERRORS as exc:
        raise input_error(path, f"cannot read the file ({exc})", _FIX) from exc
    starts = [i for i, line in enumerate(lines) if line.strip().lower() == TABLE_BEGIN]
    if not starts:
        raise input_error(path, f"no '{TABLE_BEGIN}' line: the data table is missing", _FIX)
    begin = starts[0] + 1
    end = next(
        (i for i in range(begin, len(lines)) if lines[i].strip().lower() == TABLE_END),
        len(lines),
    )
    table = [line for line in lines[begin:end] if line.strip()]
    if len(table) < 2:
        raise input_error(
            path,
            "the series matrix holds no expression values (GEO keeps the data of many "
            "sequencing studies in the series' supplementary files instead)",
            "Download the supplementary count or expression table and read that.",
        )
    try:
        body = pd.read_csv(
            io.StringIO("\n".join(table)), sep="\t", dtype={0: str}, na_values=["null"]
        )
    except (*READ_ERRORS, pd.errors.ParserError) as exc:
        raise input_error(path, f"cannot parse the data table ({exc})", _FIX) from exc
    probes = body.iloc[:, 0].fillna("").astype(str).str.strip().tolist()
    values = body.iloc[:, 1:]
    samples = [str(c).strip() for c in values.columns]
    n_before = sum(1 for line in lines[:begin] if line.strip()) + 1  # the table's header
    x = numeric_matrix(path, "\t", values.set_axis(range(len(samples)), axis=1), samples, n_before)
    obs = _sample_columns(lines[: starts[0]], len(samples))
    return build_anndata(x.T.copy(), samples, probes, obs=obs)


def _sample_columns(preamble: list[str], n: int) -> dict[str, list[str]]:
    """The obs columns of the ``!Sample_`` lines that give one value per sample."""
    columns: dict[str, list[str]] = {}
    rows = csv.reader((line for line in preamble if line.startswith("!Sample_")), delimiter="\t")
    for row in rows:
        field, values = row[0].removeprefix("!Sample_"), [v.strip() for v in row[1:]]
        if len(values) != n:
            continue
        keys = {v.split(":", 1)[0].strip() for v in values if ":" in v}
        if field.startswith("characteristics") and len(keys) == 1 and all(":" in v for v in values):
            name = keys.pop().replace(" ", "_")
            values = [v.split(":", 1)[1].strip() for v in values]
        else:
            name = field
        base, k = name, 2
        while name in columns:  # a field repeated (several characteristics lines)
            name, k = f"{base}_{k}", k + 1
        columns[name] = values
    return columns
