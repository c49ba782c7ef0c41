"""Known labels where some cells have none: which cells are labelled.

Annotations often leave cells out (NaN in a pandas column, a blank cell in a sample sheet).
Those cells are still data: they are trained on and clustered, and only the metrics that
compare clusters with labels leave them out. Kept apart from :mod:`geneae.evaluate` so that
reading a file (``geneae info``) can count them without importing the evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from geneae.errors import InputError


def labelled_rows(labels: Any, n: int, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Labels that may be missing for some cells: ``(labels, labelled)``.

    Missing are ``None``, NaN and blank strings (a cell with no annotation); ``labelled``
    is the boolean mask of the other rows. ``labels`` holds every row, as strings unless all
    are numbers, the missing ones as ``""`` (or 0): score the labelled rows only.
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        arr = arr.ravel()
    if len(arr) != n:
        raise InputError(f"{name} has {len(arr)} entries but the matrix has {n} rows (cells).")
    kind = arr.dtype.kind
    if kind in "iub":  # integers and booleans have no missing value
        return arr, np.ones(n, dtype=bool)
    if kind == "f":
        missing = np.isnan(arr)
        return np.where(missing, 0.0, arr), ~missing
    if kind in "US":
        text = arr.astype(str)
        return text, np.char.strip(text) != ""
    # Objects (pandas categoricals and object columns): None / NaN, blanks, or numbers.
    missing = np.asarray(pd.isna(arr), dtype=bool)
    missing |= np.array([isinstance(v, str) and not v.strip() for v in arr], dtype=bool)
    values = arr[~missing]
    if len(values) and all(isinstance(v, (int, float, np.number)) for v in values):
        out = np.zeros(n, dtype=np.asarray(values.tolist()).dtype)
    else:
        out = np.full(n, "", dtype=object)
        values = np.array([str(v) for v in values], dtype=object)
    out[~missing] = values
    return (out.astype(str) if out.dtype == object else out), ~missing
