"""Fuzzing the text readers: any input reads cleanly or raises InputError, nothing else."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import geneae.io as gio
from geneae.errors import DataWarning, InputError
from geneae.matrix_values import values_of

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

TOKENS = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "NA", "nan", "-inf", "1e400", '"', '"a,b"', "x", "ENSG00000141510.2"]),
    st.sampled_from(["AAACCTGAGAAGGCCT-1", "TCGA-A1-A0SB-01A", "CD3E", "cell_type", "#1.2"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6),
)


def _note(outcome: str) -> None:
    """Record the outcome for --hypothesis-show-statistics (no-op outside @given)."""
    try:
        event(outcome)
    except InvalidArgument:
        pass


def read_or_input_error(path: Path, **kwargs: object) -> None:
    """Read ``path``; InputError (naming the file) is fine, any other exception fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas / numpy / anndata noise is a bug too
        warnings.simplefilter("ignore", DataWarning)
        try:
            adata = gio.read(path, **kwargs)
        except InputError as exc:
            assert path.name in str(exc)
            _note(f"InputError: {str(exc).split(': ', 1)[1][:30]}")
            return
    _note("read")
    assert adata.n_obs > 0 and adata.n_vars > 0
    assert adata.X.dtype == np.float32
    assert np.isfinite(values_of(adata.X)).all()
    assert adata.obs_names.is_unique and adata.var_names.is_unique


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".csv", ".tsv", ".txt", ".gct"]))
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(data)
    read_or_input_error(path)


@FUZZ
@given(data=st.binary(max_size=500))
def test_random_gzip_payload(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv.gz"
    path.write_bytes(gzip.compress(data) if data[:1] != b"!" else b"\x1f\x8b" + data)
    read_or_input_error(path)


NAMES = st.one_of(
    st.sampled_from(["", "gene", "CD3E", "LYZ", "ENSG00000141510.2", "cell_type", "S1", "S1"]),
    st.sampled_from(["AAACCTGAGAAGGCCT-1", "TCGA-A1-A0SB-01A", "sample_1", "1", "x y"]),
    st.text(alphabet="ACGTabc_-.0123", min_size=1, max_size=5),
)
NUMBERS = st.one_of(
    st.integers(0, 1000).map(str), st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:g}")
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, str]:
    """A table that is often well formed, with a few random defects in about half of them."""
    sep = draw(st.sampled_from([",", "\t"]))
    n_rows, width = draw(st.integers(0, 6)), draw(st.integers(1, 6))
    rows: list[list[str]] = []
    if draw(st.booleans()):
        rows.append(draw(st.lists(NAMES, min_size=width, max_size=width)))
    with_ids = draw(st.booleans())
    for _ in range(n_rows):
        row = draw(st.lists(NUMBERS, min_size=width, max_size=width))
        rows.append([draw(NAMES), *row] if with_ids else row)
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        if not rows:
            break
        row = rows[draw(st.integers(0, len(rows) - 1))]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace" and row:
            row[draw(st.integers(0, len(row) - 1))] = draw(TOKENS)
        elif action == "drop" and row:
            row.pop()
        else:
            row.append(draw(TOKENS))
    end = draw(st.sampled_from(["", "\n", "\n\n", "\r\n"]))
    return sep, "\n".join(sep.join(row) for row in rows) + end


@FUZZ
@given(table=tables(), labels=st.sampled_from([None, None, None, "cell_type", "CD3E"]))
def test_malformed_tables(tmp_path: Path, table: tuple[str, str], labels: str | None) -> None:
    sep, text = table
    path = tmp_path / ("fuzz.csv" if sep == "," else "fuzz.tsv")
    path.write_text(text, encoding="utf-8")
    read_or_input_error(path, labels=labels)


@st.composite
def gct_files(draw: st.DrawFn) -> str:
    """A GCT file that is valid about half of the time, with one or more defects otherwise."""
    n_genes, n_samples = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    broken = set(draw(st.lists(st.sampled_from(["version", "dims", "header", "values"]))))
    version = (
        draw(st.sampled_from(["#1.3", "#1.2\textra", "1.2", ""])) if "version" in broken else "#1.2"
    )
    dims = f"{n_genes}\t{n_samples}"
    if "dims" in broken:
        dims = draw(
            st.sampled_from(
                [f"{n_genes + 1}\t{n_samples}", f"{n_genes}\t{n_samples + 1}", f"{n_genes}", "a\tb"]
            )
        )
    header = ["Name", "Description"] + [f"s{i}" for i in range(n_samples)]
    if "header" in broken:
        header = draw(st.lists(st.one_of(NAMES, TOKENS), max_size=6))
    lines = [version, dims, "\t".join(header)]
    for g in range(n_genes):
        values = draw(st.lists(NUMBERS, min_size=n_samples, max_size=n_samples))
        if "values" in broken:
            values = draw(st.lists(st.one_of(NUMBERS, TOKENS), min_size=0, max_size=n_samples + 1))
        lines.append("\t".join([f"G{g}", "desc", *values]))
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=gct_files())
def test_malformed_gct(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.gct"
    path.write_text(text, encoding="utf-8")
    read_or_input_error(path)


@pytest.mark.parametrize("suffix", [".h5", ".h5ad", ".npy", ".npz"])
def test_random_bytes_with_binary_names(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(4)
    for i in range(20):
        path = tmp_path / f"junk{i}{suffix}"
        path.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 600)), dtype=np.uint8))
        read_or_input_error(path)
