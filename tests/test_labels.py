"""Which cells have a label: one rule (None, NaN, blank are missing) for every input type."""

import numpy as np
import pandas as pd
import pytest

from geneae.errors import InputError
from geneae.evaluate._arrays import label_array
from geneae.labels import labelled_rows


@pytest.mark.parametrize(
    "labels",
    [
        pd.Categorical(["a", None, "b", "a", None]),
        pd.Series(["a", np.nan, "b", "a", "  "], dtype=object),
        np.array(["a", "", "b", "a", " "]),
        pd.Series(["a", pd.NA, "b", "a", None], dtype="string"),
        np.array([1.0, np.nan, 2.0, 1.0, np.nan]),
        np.array([1, 2, 3, 1, 2]),
        np.array([True, False, True, True, False]),
    ],
    ids=["categorical", "object", "text", "pandas-string", "float", "int", "bool"],
)
def test_missing_labels_are_none_nan_and_blanks_whatever_the_type(labels):
    # Reference: pandas' own notion of missing, plus strings of only spaces.
    reference = [
        pd.isna(v) or (isinstance(v, str) and not v.strip()) for v in pd.Series(labels).tolist()
    ]
    values, labelled = labelled_rows(labels, 5)
    assert labelled.tolist() == [not m for m in reference]
    kept = [str(v) for v, m in zip(pd.Series(labels).tolist(), reference, strict=True) if not m]
    assert [str(v) for v in values[labelled]] == kept
    if all(labelled):
        assert list(label_array(labels, 5)) == list(values)
    else:
        with pytest.raises(InputError, match=f"{sum(reference)} missing values"):
            label_array(labels, 5)


def test_wrong_length_names_the_labels():
    with pytest.raises(InputError, match="cell_type has 3 entries but the matrix has 4 rows"):
        labelled_rows(["a", "b", "c"], 4, "cell_type")
