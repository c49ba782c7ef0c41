"""CSV / TSV expression tables (optionally gzipped), in either orientation.

The layout is guessed from the first two lines (header or not, identifier column or not,
R's one-short header), pandas parses the rest, and the orientation comes from the
identifiers (see :mod:`geneae.io.identifiers`) unless ``transpose`` says it.
"""

from __future__ import annotations

import csv
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from geneae.io.finalize import LABEL_KEYS, build_anndata, generated_names
from geneae.io.identifiers import rows_are_genes
from geneae.io.messages import input_error
from geneae.io.table_columns import (
    ID_HEADERS,
    gene_annotations,
    preview,
    quantity_row,
    sample_annotations,
    sample_names_from_read_files,
    summaries_to_obs,
)
from geneae.io.textfile import first_ragged_line, line_of_row, open_text, table_dialect

logger = logging.getLogger(__name__)

READ_ERRORS = (ValueError, OSError, EOFError, zlib.error, csv.Error, OverflowError)


def is_number(token: str, decimal: str = ".") -> bool:
    """True when ``token`` parses as a float (``"nan"``, ``"inf"``), decimal mark ``decimal``."""
    try:
        float(token.replace(",", ".") if decimal == "," else token)
    except ValueError:
        return False
    return True


@dataclass
class _Layout:
    """What the first two non-blank lines say about the table."""

    header: list[str] | None  # names of every field (identifier column included)
    has_ids: bool  # the first field of each row is an identifier
    skip: int  # physical lines before the data rows (blank and comment lines, header)
    n_header_rows: int  # non-blank lines before the data rows (comment lines and header)


def _peek(path: Path, sep: str) -> tuple[list[list[str]], list[int], int]:
    """The first three non-blank rows (parsed), their physical line numbers, comment lines.

    Comment lines come before the first row: one field starting with ``#``, as the first
    line of featureCounts' output.
    """
    rows: list[list[str]] = []
    lines: list[int] = []
    comments = 0
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=sep)
        for row in reader:
            if row and any(field.strip() for field in row):
                if not rows and len(row) == 1 and row[0].lstrip().startswith("#"):
                    comments += 1
                    continue
                rows.append([field.strip() for field in row])
                lines.append(reader.line_num)
                if len(rows) == 3:
                    break
    return rows, lines, comments


def _layout(path: Path, sep: str, labels: str | None, decimal: str = ".") -> _Layout:
    def number(token: str) -> bool:
        return is_number(token, decimal)

    try:
        rows, lines, comments = _peek(path, sep)
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from exc
    except READ_ERRORS as exc:
        raise input_error(
            path, f"cannot parse the table ({exc})", "Check the separator and quoting."
        ) from exc
    if not rows:
        raise input_error(path, "the file holds no data", "Check that the right file was given.")
    first = rows[0]
    second = rows[1] if len(rows) > 1 else None
    first_is_data = all(number(t) for t in first) or (
        second is not None
        and len(first) > 1
        and first[0].lower() not in ID_HEADERS
        and first[0] != labels
        and not number(first[0])
        and all(number(t) for t in first[1:])
        and not number(second[0])
    )
    if first_is_data:
        return _Layout(None, not number(first[0]), lines[0] - 1, comments)
    if second is None:
        raise input_error(
            path,
            "the file has a header line but no data rows",
            "Check that the right file was given.",
        )
    header, headers = first, 1
    quantity = quantity_row(second, number) if len(rows) > 2 else None
    if quantity is not None and second[0].lower() not in LABEL_KEYS and second[0] != labels:
        logger.info(
            "%s: line %d (%s %s ...) names what every column holds: read as a second header",
            path,
            lines[1],
            second[0],
            quantity,
        )
        second, headers = rows[2], 2
    if len(header) == len(second) - 1:
        header = ["", *header]  # R's write.table: no header cell above the row names
    elif len(header) != len(second):
        raise input_error(
            path,
            f"ragged table: the header (line {lines[0]}) has {len(first)} fields but line "
            f"{lines[headers]} has {len(second)}",
            "Make every row have the same number of fields (check the separator and quoting).",
        )
    first_cell = header[0].lower()
    is_label = header[0] == labels or (labels is None and first_cell in LABEL_KEYS)
    has_ids = not is_label and (
        first_cell in ID_HEADERS or not number(second[0]) or len(first) < len(header)
    )
    return _Layout(header, has_ids, lines[headers - 1], comments + headers)


def _parse(path: Path, sep: str, layout: _Layout, decimal: str = ".") -> pd.DataFrame:
    """All data rows as a DataFrame with integer column labels; errors name the line."""
    try:
        with open_text(path) as fh:
            return pd.read_csv(
                fh,
                sep=sep,
                decimal=decimal,
                header=None,
                skiprows=layout.skip,
                dtype={0: str} if layout.has_ids else None,
                low_memory=False,
                skip_blank_lines=True,
                skipinitialspace=True,
            )
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from exc
    except pd.errors.EmptyDataError as exc:
        raise input_error(path, "the file holds no data rows", "Check the file.") from exc
    except pd.errors.ParserError as exc:
        raise ragged_error(path, sep, layout.n_header_rows) or input_error(
            path, f"cannot parse the table ({exc})", "Check the separator and quoting."
        ) from exc
    except READ_ERRORS as exc:
        raise input_error(
            path, f"cannot parse the table ({exc})", "Check the separator and quoting."
        ) from exc


def not_text_error(path: Path, exc: UnicodeDecodeError) -> Exception:
    return input_error(
        path,
        f"not UTF-8 text ({exc.reason} at byte {exc.start})",
        "Save it as UTF-8 text, or give it its real format's extension (fmt= in Python).",
    )


def ragged_error(path: Path, sep: str, n_header_rows: int) -> Exception | None:
    """An error naming the first line with a different number of fields, if there is one."""
    try:
        found = first_ragged_line(path, sep, skip=n_header_rows)
    except (*READ_ERRORS, UnicodeDecodeError):
        return None
    if found is None:
        return None
    line, n, expected = found
    return input_error(
        path,
        f"ragged table: line {line} has {n} field{'s' * (n != 1)} where the rows before "
        f"have {expected}",
        "Make every row have the same number of fields (check the separator and quoting).",
    )


def numeric_matrix(
    path: Path,
    sep: str,
    body: pd.DataFrame,
    names: list[str],
    n_header_rows: int,
) -> np.ndarray:
    """The data columns as float32; the first non-numeric cell is reported by its line.

    Parameters
    ----------
    path, sep
        The file and its separator (re-scanned only to locate an error).
    body
        Parsed data rows; the index holds each row's position among the non-blank lines
        after the header rows (pandas' default index, kept when rows are dropped).
    names
        Display names of ``body``'s columns.
    n_header_rows
        Non-blank lines before the first data row.
    """
    columns = {}
    for pos, col in enumerate(body.columns):
        values = body[col]
        if values.dtype.kind in "iuf":
            columns[col] = values
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna().to_numpy() & values.notna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            line = line_of_row(path, sep, int(body.index[row]), n_header_rows)
            raise input_error(
                path,
                f"non-numeric value {values.iloc[row]!r} on line {line}, column {names[pos]!r}",
                "Expression values must be numbers. Remove other annotation columns.",
            )
        columns[col] = numbers
    frame = pd.DataFrame(columns)
    if not frame.shape[1]:
        return np.empty((len(body), 0), dtype=np.float32)
    values = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    # A finite number beyond float32's range would silently become infinity.
    too_large = np.isfinite(values) & (np.abs(values) > np.finfo(np.float32).max)
    if too_large.any():
        row, pos = np.unravel_index(int(np.argmax(too_large)), too_large.shape)
        line = line_of_row(path, sep, int(body.index[row]), n_header_rows)
        raise input_error(
            path,
            f"value {float(values[row, pos])!r} on line {line}, column {names[pos]!r} is "
            "beyond the float32 range (about 3.4e38)",
            "Expression values are stored as float32; fix or rescale the value.",
        )
    return values.astype(np.float32)


def read_delimited(
    path: Path,
    sep: str,
    *,
    labels: str | None = None,
    transpose: bool | None = None,
    labels_required: bool = True,
) -> ad.AnnData:
    """Read a CSV / TSV expression table in either orientation.

    Parameters
    ----------
    path
        The file (``.gz`` allowed).
    sep
        a comma or a tab; a "comma-separated" file that separates with semicolons (and
        may write decimal commas, as spreadsheets of many locales save CSV) is read as such
        (:func:`geneae.io.textfile.table_dialect`).
    labels
        Name of a label column (rows are samples) or label row (rows are genes); it is
        taken out of the matrix into ``obs``. None also takes a text column named like a
        label (see :data:`geneae.io.finalize.LABEL_KEYS`).
    transpose
        True: rows are genes; False: rows are samples; None: decide from identifiers and
        shape.
    labels_required
        False: a ``labels`` column or row that is not there is no error; the table is then
        read as with ``labels=None``.

    Returns
    -------
    anndata.AnnData
        Samples x genes, float32.
    """
    sep, decimal = table_dialect(path, sep)
    layout = _layout(path, sep, labels, decimal)
    body = _parse(path, sep, layout, decimal)
    n_fields = body.shape[1]
    header = layout.header or [""] * n_fields
    if len(header) != n_fields:
        raise ragged_error(path, sep, layout.n_header_rows) or input_error(
            path,
            f"the header has {len(header)} fields but the rows have {n_fields}",
            "Make every row have the same number of fields.",
        )
    ids = None
    if layout.has_ids:
        ids = body[0].fillna("").astype(str).str.strip().tolist()
        body = body.drop(columns=0)
    names = [header[c] for c in body.columns]
    # A separator at the end of every line (spreadsheet and R exports) adds a column with
    # no name and no value: no sample or gene, left out.
    blank = [c for c, name in zip(body.columns, names, strict=True) if _is_blank(name, body[c])]
    if blank and len(blank) < len(names):
        body = body.drop(columns=blank)
        names = [header[c] for c in body.columns]
    annotations = gene_annotations(names, body) if layout.header and ids is not None else {}
    if annotations:
        body = body.drop(columns=body.columns[: len(annotations)])
        names = names[len(annotations) :]
    label_col = _label_column(names, body, labels)
    label_row = None
    if label_col is None and labels is not None and ids is not None and labels in ids:
        label_row = ids.index(labels)
    if labels is not None and label_col is None and label_row is None and not labels_required:
        labels = None
        label_col = _label_column(names, body, None)
    if labels is not None and label_col is None and label_row is None:
        raise input_error(
            path,
            f"no column or row {labels!r} for the labels and no file of that name "
            f"(columns: {preview(names)}; rows: {preview(ids or [])})",
            "Name the label column (or row) (--labels; labels= in Python), or give a labels "
            "file (--labels-file).",
        )
    rows_genes = _orientation(path, transpose, label_col, label_row)
    obs: dict[str, object] = {}
    if label_col is not None:
        key = names[label_col]
        obs[key] = body.iloc[:, label_col].to_numpy()
        body = body.drop(columns=body.columns[label_col])
        names.pop(label_col)
    label_values = None
    if label_row is not None:
        label_values = body.iloc[label_row].to_numpy()
        # The index keeps each row's position in the file, for line numbers in errors.
        body = body.drop(index=body.index[label_row])
        ids.pop(label_row)
    if rows_genes is None:
        rows_genes = rows_are_genes(ids, names if layout.header else None, *body.shape)
    if not rows_genes and layout.header:
        annotated = sample_annotations(names, body)
        if annotated:
            keys = [names[pos] for pos in annotated]
            obs.update({names[pos]: body.iloc[:, pos].to_numpy() for pos in annotated})
            body = body.drop(columns=body.columns[annotated])
            names = [name for pos, name in enumerate(names) if pos not in annotated]
            logger.info(
                "%s: column%s %s annotate%s the samples, not genes: kept as sample "
                "annotations (obs), not trained on",
                path,
                "s" if len(keys) > 1 else "",
                preview(keys),
                "" if len(keys) > 1 else "s",
            )
    x = numeric_matrix(path, sep, body, names, layout.n_header_rows)
    if np.isnan(x).any():
        ragged = ragged_error(path, sep, layout.n_header_rows)
        if ragged is not None:
            raise ragged
    if not rows_genes:
        obs_names = ids if ids is not None else generated_names("sample", x.shape[0])
        var_names = names if layout.header else generated_names("gene", x.shape[1])
        obs.update(annotations)
        adata = build_anndata(x, obs_names, _fill_blank(var_names, "gene"), obs=obs)
        return summaries_to_obs(path, adata)
    if label_values is not None:
        obs[labels] = label_values
    obs_names = sample_names_from_read_files(names) if layout.header else None
    if obs_names is None:
        obs_names = names if layout.header else generated_names("sample", x.shape[1])
    var_names = ids if ids is not None else generated_names("gene", x.shape[0])
    adata = build_anndata(
        np.ascontiguousarray(x.T),
        _fill_blank(obs_names, "sample"),
        var_names,
        obs=obs,
        var=annotations,
    )
    return summaries_to_obs(path, adata)


def _is_blank(name: str, values: pd.Series) -> bool:
    """Whether a column has neither a name nor any value."""
    present = values.dropna().astype(str).str.strip()
    return not str(name).strip() and not (present != "").any()


def _fill_blank(names: list[str] | pd.Index, prefix: str) -> list[str]:
    """Blank header cells get a generated name instead of ""."""
    return [n if str(n).strip() else f"{prefix}_{i:04d}" for i, n in enumerate(names)]


def _label_column(names: list[str], body: pd.DataFrame, labels: str | None) -> int | None:
    """Position of the label column among the data columns, if there is one."""
    if labels is not None:
        return names.index(labels) if labels in names else None
    for pos, name in enumerate(names):
        if name.lower() in LABEL_KEYS and _label_like(body.iloc[:, pos]):
            return pos
    return None


def _label_like(values: pd.Series) -> bool:
    """Text, or whole numbers (class codes such as 0-9); fractions are a gene's values."""
    if values.dtype.kind == "b":
        return False
    if values.dtype.kind not in "iuf":
        return True
    present = values.dropna().to_numpy()
    return bool(present.size) and bool(np.all(present == np.round(present)))


def _orientation(
    path: Path, transpose: bool | None, label_col: int | None, label_row: int | None
) -> bool | None:
    """Orientation forced by ``transpose`` or by where the labels are (None: undecided)."""
    forced = True if label_row is not None else False if label_col is not None else None
    if transpose is not None and forced is not None and transpose != forced:
        where = "a column" if label_col is not None else "a row"
        raise input_error(
            path,
            f"the labels are {where}, so rows are {'genes' if forced else 'samples'}, but "
            f"transpose={transpose} says otherwise",
            "Drop transpose= (the labels fix the orientation) or fix the labels name.",
        )
    return transpose if transpose is not None else forced
