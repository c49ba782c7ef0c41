"""GCT 1.2 expression files (GenePattern / Broad): genes x samples with a declared size.

Layout: ``#1.2``; ``n_rows<TAB>n_cols``; ``Name<TAB>Description<TAB>sample...``; then one
gene per line. The declared size is checked against the data because a mismatch usually
means a truncated download or a hand-edited file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from geneae.io.finalize import build_anndata
from geneae.io.messages import input_error
from geneae.io.tables import (
    READ_ERRORS,
    not_text_error,
    numeric_matrix,
    ragged_error,
)
from geneae.io.textfile import open_text

_FIX = (
    "A GCT 1.2 file starts with '#1.2', then 'n_genes<TAB>n_samples', then "
    "'Name<TAB>Description<TAB>sample names'."
)


def _preamble(path: Path) -> tuple[list[list[str]], int]:
    """The first three non-blank lines split on tabs, and the physical line of the third."""
    rows: list[list[str]] = []
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter="\t")
        for row in reader:
            if row and any(f.strip() for f in row):
                rows.append([f.strip() for f in row])
                if len(rows) == 3:
                    return rows, reader.line_num
    return rows, 0


def _declared_size(path: Path, rows: list[list[str]]) -> tuple[int, int]:
    version = rows[0][0] if rows and rows[0] else ""
    if version.startswith("#1.3"):
        raise input_error(
            path,
            "GCT version 1.3 is not supported",
            "Convert it to GCT 1.2 or to a CSV/TSV table.",
        )
    if version != "#1.2":
        raise input_error(path, f"line 1 is {version!r}, not '#1.2'", _FIX)
    dims = [f for f in (rows[1] if len(rows) > 1 else []) if f]
    if len(dims) != 2 or not all(d.isdigit() for d in dims):
        raise input_error(
            path,
            f"line 2 should be the size 'n_genes<TAB>n_samples' but is {dims!r}",
            _FIX,
        )
    return int(dims[0]), int(dims[1])


def read_gct(path: Path) -> ad.AnnData:
    """Read a GCT 1.2 file.

    Parameters
    ----------
    path
        The ``.gct`` file (``.gz`` allowed).

    Returns
    -------
    anndata.AnnData
        Samples x genes float32; gene names from ``Name``, ``var["description"]`` from
        ``Description``.

    Raises
    ------
    InputError
        Wrong version / size / header line, a size that disagrees with the data, ragged
        rows, non-numeric values.
    """
    try:
        rows, header_line = _preamble(path)
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from exc
    except READ_ERRORS as exc:
        raise input_error(path, f"cannot parse the file ({exc})", _FIX) from exc
    n_genes, n_samples = _declared_size(path, rows)
    header = rows[2] if len(rows) > 2 else []
    if len(header) < 2 or header[0].lower() != "name" or header[1].lower() != "description":
        raise input_error(
            path, f"line 3 should start with 'Name<TAB>Description' but is {header[:3]!r}", _FIX
        )
    samples = header[2:]
    if len(samples) != n_samples:
        raise input_error(
            path,
            f"line 2 declares {n_samples} samples but the header names {len(samples)}",
            "Correct the size on line 2 or the header.",
        )
    try:
        with open_text(path) as fh:
            body = pd.read_csv(
                fh,
                sep="\t",
                header=None,
                skiprows=header_line,
                dtype={0: str, 1: str},
                keep_default_na=False,
                na_values=["", "NA", "NaN", "nan"],
                low_memory=False,
            )
    except pd.errors.EmptyDataError:
        body = pd.DataFrame(columns=range(len(header)))
    except UnicodeDecodeError as exc:
        raise not_text_error(path, exc) from exc
    except pd.errors.ParserError as exc:
        raise ragged_error(path, "\t", 2) or input_error(
            path, f"cannot parse the file ({exc})", _FIX
        ) from exc
    except READ_ERRORS as exc:
        raise input_error(path, f"cannot parse the file ({exc})", _FIX) from exc
    if body.shape[1] != len(header):
        raise ragged_error(path, "\t", 2) or input_error(
            path,
            f"the data rows have {body.shape[1]} fields but the header has {len(header)}",
            "Make every row 'Name<TAB>Description<TAB>' plus one value per sample.",
        )
    if len(body) != n_genes:
        raise input_error(
            path,
            f"line 2 declares {n_genes} genes x {n_samples} samples but the file has "
            f"{len(body)} gene rows",
            "The file may be truncated; correct line 2 or re-export the file.",
        )
    values = numeric_matrix(path, "\t", body.iloc[:, 2:], samples, n_header_rows=3)
    if np.isnan(values).any():  # a short row is padded with NaN by pandas
        ragged = ragged_error(path, "\t", 2)
        if ragged is not None:
            raise ragged
    genes = body[0].fillna("").astype(str).tolist()
    description = body[1].fillna("").astype(str).to_numpy()
    x = np.ascontiguousarray(values.T)
    return build_anndata(x, samples, genes, var={"description": description})
