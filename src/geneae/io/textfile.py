"""Plain and gzipped text files: opening them, and finding the line behind a parse error.

pandas parses the bulk of a table quickly but reports problems by its own row count. The
slow line-by-line scans here run only after pandas has found something wrong, to tell the
user the exact line of the file.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from pathlib import Path
from typing import TextIO

from geneae.io.detect import GZIP_MAGIC
from geneae.io.messages import input_error


def is_gzipped(path: Path) -> bool:
    """True when the file starts with the gzip signature (whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_text(path: Path) -> TextIO:
    """Open a text file for reading, decompressing gzip and dropping a UTF-8 byte-order mark.

    ``newline=""`` lets the csv module and pandas see quoted line breaks as data.
    """
    if is_gzipped(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


#: A number written with a decimal comma, as spreadsheets of many European locales save it.
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")


def table_dialect(path: Path, sep: str) -> tuple[str, str]:
    """``(separator, decimal mark)`` of a delimited table read with ``sep``.

    A spreadsheet saved as CSV where the decimal mark is a comma separates its fields with
    semicolons (``gene;S1;S2``, then ``TP53;1,5;0,25``). A file taken for comma-separated
    (or for tab-separated, without a tab in its first line) whose first line has
    semicolons, splitting its first two lines into tables of one width, is read with
    ``;``, and with ``,`` as the decimal mark when a field is such a number. Anything else
    keeps ``sep`` and ``.``.
    """
    if sep not in (",", "\t"):
        return sep, "."
    lines: list[str] = []
    try:
        with open_text(path) as fh:
            for line in fh:
                text = line.strip()
                if text and not text.startswith("#"):
                    lines.append(text)
                    if len(lines) == 2:
                        break
    except (UnicodeDecodeError, OSError, EOFError, zlib.error):
        return sep, "."  # the reader itself then says what is wrong with the file
    if not lines or ";" not in lines[0] or (sep == "\t" and "\t" in lines[0]):
        return sep, "."
    rows = [next(csv.reader([text], delimiter=";")) for text in lines]
    if len(rows) == 2 and len(rows[1]) - len(rows[0]) not in (0, 1):  # 1: R's row names
        return sep, "."
    comma = any(_DECIMAL_COMMA.match(field.strip()) for row in rows for field in row)
    return ";", "," if comma else "."


def first_ragged_line(path: Path, sep: str, skip: int = 0) -> tuple[int, int, int] | None:
    """Find the first row whose number of fields differs from the first row's.

    Parameters
    ----------
    path
        The text file.
    sep
        Field separator.
    skip
        Non-blank rows to ignore before the first compared row (GCT's preamble).

    Returns
    -------
    tuple of int or None
        ``(line_number, fields_found, fields_expected)`` (1-based physical line), or None
        when every row has the same length.
    """
    expected = None
    seen = 0
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=sep)
        for row in reader:
            if not row:
                continue  # pandas skips blank lines too
            seen += 1
            if seen <= skip:
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                return reader.line_num, len(row), expected
    return None


def line_of_row(path: Path, sep: str, row: int, skip: int) -> int:
    """Physical line number (1-based) of data row ``row`` after ``skip`` non-blank rows."""
    seen = 0
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=sep)
        for fields in reader:
            if not fields:
                continue
            if seen == skip + row:
                return reader.line_num
            seen += 1
    return skip + row + 1


def side_table(lines: list[str]) -> list[list[str]] | None:
    """The non-blank rows of a side file's ``lines`` as fields, or None when they are a list.

    The separator is the first non-blank line's: a tab, else a comma; a line with neither
    makes the file a plain list of one value per line (labels, gene names).
    """
    first = next((line for line in lines if line), "")
    delimiter = "\t" if "\t" in first else "," if "," in first else None
    if delimiter is None:
        return None
    return [row for row in csv.reader(lines, delimiter=delimiter) if any(c.strip() for c in row)]


def read_lines(path: Path, what: str) -> list[str]:
    """The lines of a text file, stripped, without trailing blank lines.

    Inner blank lines are kept (a missing label or gene name), so that the count still
    matches the samples they belong to.
    """
    if not path.is_file():
        raise input_error(path, f"the {what} file does not exist", "Check the path.")
    try:
        with open_text(path) as fh:
            lines = [line.strip() for line in fh.read().splitlines()]
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise input_error(
            path, f"the {what} file is not UTF-8 text ({exc})", "Save it as plain UTF-8 text."
        ) from exc
    while lines and not lines[-1]:
        lines.pop()
    return lines
