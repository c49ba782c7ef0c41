"""Gene names from a file: one name per line, or an annotation table keyed by the matrix's IDs.

A plain list gives one name per line, in the order of the matrix's columns (the file beside
a ``.npy`` matrix). An annotation table names the genes the matrix already has by another
name: a CSV / TSV whose first column holds the matrix's identifiers (probe IDs of a GEO
series matrix, Ensembl IDs) and one of whose columns holds gene symbols — a GEO platform's
annotation (``GPL570-55999.txt``: ``#`` lines, then ``ID`` ... ``Gene Symbol``), or an
Ensembl-to-symbol table. Identifiers without a symbol keep their name; for a probe of
several genes (Affymetrix's ``DDR1 /// MIR4640``) the first is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from geneae.io.messages import input_error
from geneae.io.textfile import read_lines, side_table

__all__ = ["SYMBOL_COLUMNS", "gene_names_from_file"]

logger = logging.getLogger(__name__)

#: Column names of gene symbols in annotation tables, in order of preference (any case).
SYMBOL_COLUMNS = (
    "gene symbol",
    "gene_symbol",
    "symbol",
    "gene_name",
    "gene name",
    "genesymbol",
    "hgnc_symbol",
    "external_gene_name",
)
#: Separator between the genes of a multi-gene probe in GEO's annotations.
MULTI_GENE = " /// "


def gene_names_from_file(path: Path, genes: pd.Index, data_path: Path) -> tuple[list[str], bool]:
    """One name per gene of ``genes``, read from ``path`` (see the module docstring).

    Returns
    -------
    (names, keyed)
        ``keyed``: the file was an annotation table keyed by ``genes`` (the names are
        other names of the same genes), not a list of names in column order.
    """
    lines = [line for line in read_lines(path, "gene names") if not line.startswith("#")]
    table = _annotation_table(lines, genes, path)
    if table is not None:
        return table, True
    if len(lines) != len(genes):
        raise input_error(
            path,
            f"the gene names file has {len(lines)} lines but {data_path} has {len(genes)} genes",
            "Give one gene name per line, in the order of the matrix columns, or an "
            "annotation table whose first column holds the matrix's gene IDs.",
        )
    return lines, False


def _annotation_table(lines: list[str], genes: pd.Index, path: Path) -> list[str] | None:
    """Symbols of ``genes`` from a table keyed by them, or None when ``lines`` are no such."""
    rows = side_table(lines)
    known = set(genes)
    if rows is None or not any(row[0].strip() in known for row in rows[1:]):
        return None  # not keyed by the matrix's gene IDs: a list of names
    header = [c.strip() for c in rows[0]]
    by_lower = {name.lower(): i for i, name in reversed(list(enumerate(header)))}
    column = next((by_lower[k] for k in SYMBOL_COLUMNS if k in by_lower), None)
    if column is None or column == 0:
        raise input_error(
            path,
            "the table's first column holds the matrix's gene IDs but no column is "
            f"named like gene symbols (columns: {', '.join(header[:8])})",
            "Name the symbol column 'Gene Symbol' or 'symbol', or give one name per line.",
        )
    symbols: dict[str, str] = {}
    for row in rows[1:]:
        if len(row) > column and row[0].strip() in known:
            symbol = row[column].split(MULTI_GENE)[0].strip()
            if symbol:
                symbols.setdefault(row[0].strip(), symbol)
    rest = "" if len(symbols) == len(genes) else "; the others keep their IDs"
    logger.info(
        "gene names: %d of %d genes named by the %r column of %s%s",
        len(symbols),
        len(genes),
        header[column],
        path,
        rest,
    )
    return [symbols.get(g, g) for g in genes]
