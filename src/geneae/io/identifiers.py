"""Guess whether a table's rows are genes or samples from the identifiers it carries.

Expression tables come in both orientations and rarely say which. Identifiers are the
best clue: Ensembl IDs and TCGA's symbol|Entrez IDs are genes, 10x barcodes and TCGA/GTEx
IDs are samples. Gene symbols are only weak evidence because short sample names ("A1", "WT",
"KO") look like symbols too; when the clues are weak or contradict each other the table's
shape decides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

AxisKind = Literal["genes", "samples"]

#: An Ensembl gene's stable ID (any species' prefix), without its ``.version``.
ENSEMBL_GENE_ID = r"ENS[A-Z]*G\d{6,}"
_ENSEMBL = re.compile(rf"^{ENSEMBL_GENE_ID}(\.\d+)?([_|].*)?$", re.IGNORECASE)
# TCGA's legacy gene IDs (Firehose, the GDC's legacy RSEM files): symbol|Entrez ID
# ("A1BG|1", "?|100130426").
_SYMBOL_ENTREZ = re.compile(r"^[^|\s]+\|\d+$")
# 10x / Drop-seq barcodes, possibly prefixed with a sample name ("pbmc1_AAAC...-1").
_BARCODE = re.compile(r"(^|[_:.\-])[ACGTN]{12,}(-\d+)?$")
_SAMPLE_ID = re.compile(
    r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}|GTEX-[A-Z0-9]+|TARGET-\d{2}-|"
    r"(GSM|SRR|ERR|DRR|SRX|SRS|SAMN|SAME|SAMD)\d{4,})",
    re.IGNORECASE,
)
_SAMPLE_WORD = re.compile(
    r"^(sample|cell|patient|donor|subject|ctrl|control|case|rep|replicate|well|s|c)"
    r"[_\-. ]?\d+",
    re.IGNORECASE,
)
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-._@/]{0,24}$")
_MAX_TOKENS = 500


def _sample(tokens: Sequence[str]) -> list[str]:
    """At most ``_MAX_TOKENS`` evenly spaced tokens: enough to classify, cheap to scan."""
    step = max(1, len(tokens) // _MAX_TOKENS)
    return [str(t).strip().strip('"') for t in list(tokens)[::step]]


def _fraction(tokens: list[str], pattern: re.Pattern[str]) -> float:
    return sum(bool(pattern.search(t)) for t in tokens) / len(tokens) if tokens else 0.0


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def strong_kind(tokens: Sequence[str]) -> AxisKind | None:
    """``"genes"`` for Ensembl or symbol|Entrez IDs, ``"samples"`` for barcodes, TCGA / GTEx IDs."""
    sample = _sample(tokens)
    if max(_fraction(sample, _ENSEMBL), _fraction(sample, _SYMBOL_ENTREZ)) >= 0.5:
        return "genes"
    if max(_fraction(sample, _BARCODE), _fraction(sample, _SAMPLE_ID)) >= 0.5:
        return "samples"
    return None


def weak_kind(tokens: Sequence[str]) -> AxisKind | None:
    """``"samples"`` for names like sample_1 / S1, ``"genes"`` for symbol-like names."""
    sample = _sample(tokens)
    if not sample:
        return None
    if _fraction(sample, _SAMPLE_WORD) >= 0.5:
        return "samples"
    symbols = [
        t for t in sample if _SYMBOL.match(t) and not _SAMPLE_WORD.match(t) and not _is_number(t)
    ]
    if len(symbols) / len(sample) >= 0.8:
        return "genes"
    return None


def _decide(row_kind: AxisKind | None, col_kind: AxisKind | None) -> bool | None:
    """True: rows are genes; False: rows are samples; None: no (consistent) evidence."""
    says_rows_genes = row_kind == "genes" or col_kind == "samples"
    says_rows_samples = row_kind == "samples" or col_kind == "genes"
    if says_rows_genes == says_rows_samples:
        return None
    return says_rows_genes


def rows_are_genes(
    row_ids: Sequence[str] | None, col_ids: Sequence[str] | None, n_rows: int, n_cols: int
) -> bool:
    """Decide a table's orientation.

    Parameters
    ----------
    row_ids
        Identifiers in the first column, or None when the table has none.
    col_ids
        Identifiers in the header (data columns only), or None without a header.
    n_rows, n_cols
        Shape of the numeric part of the table.

    Returns
    -------
    bool
        True when rows are genes (the table must be transposed to samples x genes).
    """
    rows, cols = list(row_ids or []), list(col_ids or [])
    strong = _decide(strong_kind(rows), strong_kind(cols))
    if strong is not None:
        return strong
    weak_rows, weak_cols = weak_kind(rows), weak_kind(cols)
    if weak_rows == weak_cols:
        weak = None  # both symbol-like (e.g. short sample names) says nothing
    else:
        weak = _decide(weak_rows, weak_cols)
    if weak is not None:
        return weak
    # Expression tables are wide in their natural orientation: many more genes than samples.
    return n_rows >= n_cols
