"""GCT 1.2 files, compared with an independent pandas read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import geneae.io as gio
from geneae.errors import InputError

GENES = ["TP53", "BRCA1", "EGFR"]
SAMPLES = ["s1", "s2", "s3", "s4"]
VALUES = np.arange(12, dtype=float).reshape(3, 4) / 2.0


def _gct(
    path: Path, values: np.ndarray = VALUES, dims: str | None = None, first: str = "#1.2"
) -> Path:
    rows = [
        "\t".join([g, f"desc {g}", *map(str, row)]) for g, row in zip(GENES, values, strict=True)
    ]
    dims = dims or f"{values.shape[0]}\t{values.shape[1]}"
    header = "\t".join(["Name", "Description", *SAMPLES])
    path.write_text("\n".join([first, dims, header, *rows]) + "\n")
    return path


def test_gct_matches_pandas(tmp_path: Path) -> None:
    path = _gct(tmp_path / "expr.gct")
    ref = pd.read_csv(path, sep="\t", skiprows=2, index_col=0)
    adata = gio.read(path)
    assert adata.shape == (4, 3)
    np.testing.assert_array_equal(adata.X, ref.iloc[:, 1:].to_numpy().T.astype(np.float32))
    assert adata.obs_names.tolist() == SAMPLES
    assert adata.var_names.tolist() == GENES
    assert adata.var["description"].tolist() == ref["Description"].tolist()
    assert adata.uns["geneae_source"]["format"] == "gct"
    assert "counts" not in adata.layers


def test_gct_detected_by_content_and_labels_file(tmp_path: Path) -> None:
    path = _gct(tmp_path / "expr.txt")
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\na\nb\n")
    adata = gio.read(path, labels=labels)
    assert adata.uns["geneae_source"]["format"] == "gct"
    assert adata.obs["label"].tolist() == ["a", "b", "a", "b"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first": "#1.1"}, "line 1 is '#1.1', not '#1.2'"),
        ({"first": "#1.3"}, "version 1.3 is not supported"),
        ({"dims": "3"}, "line 2 should be the size"),
        ({"dims": "three\tfour"}, "line 2 should be the size"),
        ({"dims": "5\t4"}, "declares 5 genes x 4 samples but the file has 3 gene rows"),
        ({"dims": "3\t5"}, "declares 5 samples but the header names 4"),
    ],
)
def test_gct_bad_preamble(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    path = _gct(tmp_path / "bad.gct", **kwargs)
    with pytest.raises(InputError, match=r"bad\.gct: .*" + message.replace(".", r"\.")):
        gio.read(path)


def test_gct_wrong_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr.gct"
    path.write_text("#1.2\n1\t2\nGene\tDesc\ta\tb\nTP53\tx\t1\t2\n")
    with pytest.raises(InputError, match=r"hdr\.gct: line 3 should start with 'Name"):
        gio.read(path)


def test_gct_ragged_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.gct"
    path.write_text("#1.2\n2\t2\nName\tDescription\ta\tb\nTP53\tx\t1\t2\nEGFR\ty\t1\n")
    with pytest.raises(InputError, match=r"ragged\.gct: ragged table: line 5 has 3 fields"):
        gio.read(path)


def test_gct_non_numeric(tmp_path: Path) -> None:
    path = tmp_path / "text.gct"
    path.write_text("#1.2\n2\t2\nName\tDescription\ta\tb\nTP53\tx\t1\t2\nEGFR\ty\t1\thigh\n")
    with pytest.raises(InputError, match=r"text\.gct: non-numeric value 'high' on line 5, col"):
        gio.read(path)


def test_gct_missing_value(tmp_path: Path) -> None:
    path = tmp_path / "na.gct"
    path.write_text("#1.2\n2\t2\nName\tDescription\ta\tb\nTP53\tx\t1\tNA\nEGFR\ty\t1\t2\n")
    with pytest.raises(InputError, match=r"na\.gct: 1 NaN.*sample 'b'.*gene 'TP53'"):
        gio.read(path)
