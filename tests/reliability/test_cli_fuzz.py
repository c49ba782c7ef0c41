"""Fuzz: every command line and every YAML file gets exit 0 or 2, never 1, never a traceback.

Hypothesis draws flags of ``geneae train`` (valid values, invalid ones, text) and YAML
files (the schema's keys with values of every type, unknown keys, broken syntax), with a
fixed seed so CI runs the same examples. Training is made trivial (at most 3 epochs on
60 cells): what is checked is that no input makes geneae fail with a bug.

Left out of the draws, because they start other processes or compile code rather than
being wrong: ``train.devices``, ``train.strategy``, ``train.num_nodes`` (data-parallel
launches; their bad values are tested in test_preflight.py) and ``evaluate.umap``.
"""

from __future__ import annotations

import tempfile
import typing
import warnings
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import FAST, counts_table, geneae_cli

from geneae.cli.flags import TRAIN_FLAGS, _flatten, choices, field_info
from geneae.config import RunConfig
from geneae.presets import PRESETS

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SKIPPED_KEYS = {"train.devices", "train.strategy", "train.num_nodes", "evaluate.umap"}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "small.csv"
    counts_table(n_cells=60, n_genes=20, seed=3).to_csv(path)
    return path


text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=10,
)
floats = st.floats(allow_nan=True, allow_infinity=True)
ints = st.integers(-3, 40)


def flag_values(flag: str) -> st.SearchStrategy[str]:
    key = TRAIN_FLAGS[flag]
    allowed = [str(c) for c in choices(key)]
    valid = {
        "latent_dim": st.integers(-1, 25).map(str),
        "hidden": st.lists(st.integers(-2, 48), max_size=3).map(lambda v: ",".join(map(str, v))),
        "epochs": st.integers(-1, 3).map(str),
        "batch_size": st.integers(-1, 200).map(str),
        "lr": st.one_of(floats.map(repr), st.sampled_from(["1e-3", "0", "-1", "1e9"])),
        "seed": st.integers(-(2**70), 2**70).map(str),
        "labels": st.sampled_from(["cell_type", "label", "gene_0001"]),
    }.get(flag, st.sampled_from(allowed) if allowed else text)
    return st.one_of(valid, text)


@st.composite
def train_flags(draw) -> list[str]:
    argv: list[str] = []
    for flag in draw(st.lists(st.sampled_from(sorted(TRAIN_FLAGS)), unique=True, max_size=6)):
        option = "--" + flag.replace("_", "-")
        if flag == "quiet":
            argv.append(draw(st.sampled_from(["--quiet", "--no-quiet"])))
        else:
            argv += [option, draw(flag_values(flag))]
    if draw(st.booleans()):
        argv += ["--preset", draw(st.one_of(st.sampled_from(sorted(PRESETS)), text))]
    for switch in ("--overwrite", "--resume", "--keep-checkpoints"):
        if draw(st.integers(0, 4)) == 0:
            argv.append(switch)
    return argv


KEYS = sorted(
    f"{section}.{name}"
    for section, field in RunConfig.model_fields.items()
    if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
    for name in field.annotation.model_fields
    if f"{section}.{name}" not in SKIPPED_KEYS
)


def typed(key: str) -> st.SearchStrategy[object]:
    """Values of the key's own type (mostly valid): what a user would plausibly write."""
    options = []
    for kind in _flatten(field_info(key).annotation):
        if typing.get_origin(kind) is typing.Literal:
            options.append(st.sampled_from(typing.get_args(kind)))
        elif kind is bool:
            options.append(st.booleans())
        elif kind is int:
            options.append(st.integers(0, 8))
        elif kind is float:
            options.append(st.one_of(st.floats(0, 1), st.sampled_from([1e-4, 2.0, 1e4])))
        elif kind is str:
            options.append(text)
        elif kind is type(None):
            options.append(st.none())
        elif typing.get_origin(kind) is list:
            options.append(st.lists(st.integers(1, 32), max_size=3))
    return st.one_of(options) if options else text


def yaml_value(key: str) -> st.SearchStrategy[object]:
    if key == "train.max_epochs":
        return st.one_of(st.integers(-1, 3), text, st.none().map(lambda _: 2))
    generic = st.one_of(
        st.none(),
        st.booleans(),
        ints,
        floats,
        text,
        st.lists(ints, max_size=3),
        st.dictionaries(text, ints, max_size=2),
    )
    return st.one_of(typed(key), typed(key), typed(key), generic)


@st.composite
def yaml_documents(draw) -> str:
    values = yaml.safe_load(yaml.safe_dump(FAST))
    for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=5)):
        section, name = key.split(".")
        values.setdefault(section, {})[name] = draw(yaml_value(key))
    if draw(st.integers(0, 5)) == 0:
        values[draw(text)] = draw(st.one_of(ints, text))  # an unknown section
    document = yaml.safe_dump(values, allow_unicode=True)
    if draw(st.integers(0, 3)) == 0:  # broken syntax somewhere
        cut = draw(st.integers(0, len(document)))
        document = document[:cut] + draw(st.sampled_from(["{", "]", ": :", "\t", "'", "*a"]))
    return document


def run_train(small: Path, argv: list[str], yaml_text: str | None = None):
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a DataWarning is no failure here
        config = Path(folder) / "fuzz.yaml"
        config.write_text(yaml_text if yaml_text is not None else yaml.safe_dump(FAST))
        args = ["train", small, "--out", Path(folder) / "run", "--config", config, *argv]
        result = geneae_cli(*args)
    assert result.code in (0, 2), (argv, yaml_text, result)
    assert "Traceback" not in result.err, result.err
    if result.code == 2:
        errors = [line for line in result.err.splitlines() if line.startswith("geneae: error:")]
        assert len(errors) == 1, result.err
    return result


@FUZZ
@given(argv=train_flags())
def test_fuzzed_flags_exit_0_or_2(small, argv):
    run_train(small, argv)


@FUZZ
@given(document=yaml_documents())
def test_fuzzed_yaml_exits_0_or_2(small, document):
    run_train(small, ["--epochs", "1"], document)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(document=st.text(max_size=60))
def test_arbitrary_text_as_yaml_exits_0_or_2(small, document):
    try:
        parsed = yaml.safe_load(document)
    except yaml.YAMLError:
        parsed = "invalid"
    if isinstance(parsed, dict) and not parsed or parsed is None:
        document = yaml.safe_dump(FAST)  # an empty file means all defaults: slow, not wrong
    run_train(small, ["--epochs", "1"], document)
