"""Labels from a file: one label per line, or a table that names the samples.

Users keep labels in one of two shapes: a plain list, one label per line in the order of
the samples (what a script writes with ``np.savetxt``), or a sample sheet, a CSV / TSV with
a column of sample names and a column of labels, with or without a header, often in another
order and with rows for samples the matrix does not hold (what ``Series.to_csv`` or a GEO /
TCGA annotation gives). A table is recognised by a column whose values are the matrix's
sample names; its labels are then matched by name, so the order of the rows does not
matter. A two-column table whose first column numbers the rows 0 to n - 1 (or 1 to n) in
order is read in that order (labels saved with pandas for data without sample names, e.g.
a .npy matrix). Anything else is read as a plain list and must have one line per sample.
A label written as a missing value (``NA``, ``NaN``, ``null``, ... as R and pandas write
one, or nothing) marks a sample without a label, as a blank cell does in a table, and so
does a table without a row for the sample (as long as most samples have one).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from geneae.io.messages import input_error
from geneae.io.textfile import read_lines, side_table

__all__ = ["Labels", "LabelsSheet", "labels_from_file"]

logger = logging.getLogger(__name__)

#: Labels that mean "no label": what R and pandas write for a missing value (pandas reads
#: these as missing in a table, so a labels file means the same by them).
MISSING_LABELS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "<NA>"})


@dataclass(frozen=True)
class LabelsSheet:
    """A labels file and the column of it that holds the labels.

    For a sample sheet with several columns besides the sample names (a GEO / TCGA
    phenotype table: ``sampleID``, ``_primary_disease``, ``gender``, ...), as ``labels=``
    of :func:`geneae.io.read`; ``geneae train --labels-file SHEET --labels COLUMN``.
    """

    path: Path
    column: str


#: What ``labels=`` of the readers takes: a column name, a labels file, or a sheet's column.
Labels = str | os.PathLike[str] | LabelsSheet


def labels_from_file(
    path: Path,
    samples: pd.Index,
    data_path: Path,
    label_keys: Sequence[str],
    column: str | None = None,
) -> list[str | None]:
    """One label per sample of ``samples``, read from ``path`` (see the module docstring).

    None for a sample whose label is a missing value (:data:`MISSING_LABELS`).

    Parameters
    ----------
    path
        The labels file.
    samples
        The matrix's sample names, in its order.
    data_path
        The matrix's file, for messages.
    label_keys
        Column names taken as the label column when a table has several besides the
        sample names (case-insensitive, in order of preference).
    column
        The label column the user named (case-insensitive); a table with several columns
        besides the sample names must have it.
    """
    lines = read_lines(path, "labels")
    by_name = _sample_table(lines, samples, path, label_keys, column)
    if by_name is not None:
        return _missing_as_none(by_name)
    if len(lines) != len(samples):
        hint = " (is the first line a header? remove it)" if len(lines) == len(samples) + 1 else ""
        raise input_error(
            path,
            f"the labels file has {len(lines)} lines but {data_path} has {len(samples)} "
            f"samples{hint}",
            "Give one label per line in the order of the samples, or a table with a column "
            "of sample names and a column of labels.",
        )
    return _missing_as_none(lines)


def _missing_as_none(labels: list[str]) -> list[str | None]:
    return [None if label.strip() in MISSING_LABELS else label for label in labels]


def _sample_table(
    lines: list[str],
    samples: pd.Index,
    path: Path,
    label_keys: Sequence[str],
    column: str | None,
) -> list[str] | None:
    """Labels matched by sample name, when ``lines`` are a table naming the samples."""
    rows = side_table(lines)
    if rows is None or not samples.is_unique:
        return None
    width = len(rows[0])
    if width < 2:
        return None
    sample_of, id_col = _names_column(rows, samples)
    if id_col is None:
        # No column names the samples: row numbers and labels (pandas' to_csv of labels
        # with a default index, for data whose samples have no names), else a plain list
        # whose labels hold commas.
        numbered = _numbered_rows(rows, len(samples))
        if numbered is None and _looks_like_a_sheet(rows, len(samples)):
            raise input_error(
                path,
                f"no column of the labels table holds the sample names of the data (its "
                f"first rows: {_first_fields(rows)}; the data's samples: "
                f"{', '.join(repr(str(s)) for s in samples[:3])}, ...)",
                "Name the samples in the table as the data name them.",
            )
        return numbered
    # The rows before the first sample's are headers: one, or cBioPortal's four '#' lines
    # of names, descriptions, types and priorities above its column IDs.
    first = next(i for i, row in enumerate(rows) if _names_a_sample(row, id_col, sample_of))
    headers, body = rows[:first], rows[first:]
    label_col = _label_column(width, id_col, headers, path, label_keys, column)
    found: dict[str, str] = {}
    for row in body:
        if len(row) <= label_col or not _names_a_sample(row, id_col, sample_of):
            continue
        name, label = sample_of[row[id_col].strip()], row[label_col].strip()
        if name in found and found[name] != label:
            raise input_error(
                path,
                f"sample {name!r} is listed twice with different labels "
                f"({found[name]!r} and {label!r})",
                "Keep one row per sample.",
            )
        found[name] = label
    missing = [s for s in samples if s not in found]
    # A sheet that leaves out some samples (cells left unannotated) gives them no label;
    # one that leaves out most names other samples, or names them otherwise.
    if len(missing) > len(samples) // 2:
        raise input_error(
            path,
            f"{len(missing)} of the {len(samples)} samples have no row in the labels table "
            f"(e.g. {missing[0]!r}; sample names are in column {id_col + 1})",
            "Name the samples as the data do (samples without a row are left unlabelled, "
            "but here most are), or check that the labels belong to this data.",
        )
    return [found.get(s, "") for s in samples]


def _names_column(rows: list[list[str]], samples: pd.Index) -> tuple[dict[str, str], int | None]:
    """How a table's names map to the samples, and the column that holds them (None: none).

    Names as they are; else as R writes them (``read.csv`` / ``make.names``: every
    character but letters, digits, dots and underscores as a dot, so TCGA-A1-A0SB-01 is
    TCGA.A1.A0SB.01), in the table or in the data, when that keeps the samples apart.
    """
    width = len(rows[0])
    for key in (str.strip, _r_name):
        table = {key(str(s)): str(s) for s in samples}
        if len(table) < len(samples):
            continue  # names that would stand for two samples
        hits = [sum(len(row) > c and key(row[c]) in table for row in rows) for c in range(width)]
        id_col = max(range(width), key=hits.__getitem__)
        if not hits[id_col]:
            continue
        sample_of = {
            row[id_col].strip(): table[key(row[id_col])]
            for row in rows
            if len(row) > id_col and key(row[id_col]) in table
        }
        if key is _r_name:
            written, sample = next(iter(sample_of.items()))
            logger.info(
                "labels matched to the samples by their names as R writes them (%r for %r)",
                written,
                sample,
            )
        return sample_of, id_col
    return {}, None


def _names_a_sample(row: list[str], id_col: int, sample_of: dict[str, str]) -> bool:
    return len(row) > id_col and row[id_col].strip() in sample_of


def _r_name(name: str) -> str:
    """``name`` as R's ``make.names`` writes it (without R's de-duplication)."""
    valid = re.sub(r"[^A-Za-z0-9._]", ".", name.strip())
    starts_well = valid[:1].isalpha() or (valid[:1] == "." and not valid[1:2].isdigit())
    return valid if starts_well else "X" + valid


def _looks_like_a_sheet(rows: list[list[str]], n: int) -> bool:
    """Whether rows that name no sample are still a sample sheet (not a list of labels).

    A header line beside one row per sample, or a first column of distinct values as
    sample names are (a list of labels repeats its classes).
    """
    if len(rows) == n + 1:
        return True
    first = [row[0].strip() for row in rows]
    return len(rows) == n and n > 1 and len(set(first)) == n


def _first_fields(rows: list[list[str]]) -> str:
    return ", ".join(repr(row[0].strip()) for row in rows[:3]) + ", ..."


def _numbered_rows(rows: list[list[str]], n: int) -> list[str] | None:
    """Labels of a two-column table that numbers the samples in order, else None.

    The first column must read 0 to n - 1 or 1 to n (after an optional header).
    """
    if len(rows[0]) != 2 or len(rows) not in (n, n + 1):
        return None
    body = rows[len(rows) - n :]
    numbers = [row[0].strip() for row in body]
    if numbers not in ([str(i) for i in range(n)], [str(i) for i in range(1, n + 1)]):
        return None
    if any(len(row) != 2 for row in body):
        return None
    return [row[1].strip() for row in body]


def _label_column(
    width: int,
    id_col: int,
    headers: list[list[str]],
    path: Path,
    label_keys: Sequence[str],
    column: str | None,
) -> int:
    """The column of labels: the only other column, the one named, or a label key's.

    A name is looked up in the header rows from the last (the column IDs) up, a ``#``
    before a name left out (cBioPortal's display names: ``#Patient Identifier``).
    """
    others = [c for c in range(width) if c != id_col]
    if len(others) == 1:
        return others[0]
    by_lower: dict[str, int] = {}
    for header in reversed(headers):
        for c in reversed(others):
            if c < len(header):
                by_lower.setdefault(_header_name(header[c]).lower(), c)
    for key in [column] if column is not None else label_keys:
        if _header_name(key).lower() in by_lower:
            return by_lower[_header_name(key).lower()]
    last = headers[-1] if headers else None
    named = (
        ", ".join(repr(_header_name(last[c])) for c in others if c < len(last))
        if last
        else len(others)
    )
    if column is not None:
        raise input_error(
            path,
            f"the labels table has no column {column!r} (its columns besides the sample "
            f"names: {named})",
            "Name one of them with --labels (data.label_column).",
        )
    raise input_error(
        path,
        f"the labels table has several columns besides the sample names ({named}) and none "
        "is called label or cell_type",
        "Name the label column with --labels COLUMN beside --labels-file (data.label_column), "
        "or keep two columns, the sample names and the labels.",
    )


def _header_name(field: str) -> str:
    return field.strip().removeprefix("#").strip()
