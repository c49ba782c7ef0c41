"""The search space of a study: dotted config keys with ranges or choices.

Written on the command line as ``"model.latent_dim=int:8:64 model.likelihood=nb,zinb
train.lr=log:1e-4:1e-2"`` or in YAML (the ``tune: space:`` section or a ``--space-file``)
as a mapping of key to the same text or to a list of choices::

    model.latent_dim: int:8:64
    train.lr: log:1e-4:1e-2
    model.hidden: [[128], [256, 128]]

Kinds: ``int:a:b`` (integers a..b), ``float:a:b`` (uniform), ``log:a:b`` (log-uniform,
a > 0), or choices (comma-separated, each read as YAML: ``nb,zinb``, ``0.1,0.3``; a list
such as layer sizes is written with dashes, ``128-64``). Every key is checked against the
configuration schema before anything runs, and so is every bound and choice, so a typo or
an impossible value is an error naming the key. Nothing here imports optuna at import time.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from geneae.config import SECTIONS, RunConfig, field_kinds
from geneae.errors import ConfigError

KINDS = ("int", "float", "log", "choice")

# Keys that select hardware or output, not the model: tuning them measures nothing.
NOT_TUNABLE = {
    "train.seed": "tuning the seed selects a lucky initialisation, not a setting",
    "train.quiet": "it only hides the progress bar",
    "train.accelerator": "it selects hardware, not the model",
    "train.devices": "it selects hardware, not the model",
    "train.strategy": "it selects hardware, not the model",
    "train.num_nodes": "it selects hardware, not the model",
    "train.memory_budget_gb": "it selects how data is held, not the model",
    "train.out_of_core": "it selects how data is read, not the model",
}
NOT_TUNABLE_SECTIONS = {
    "data": "it says how the file is read, and every trial must see the same data",
    "evaluate": "it changes what is measured after training, not the model",
}


@dataclass(frozen=True)
class Dimension:
    """One axis of the search space.

    ``choices`` holds the values as Optuna stores them (None, bool, int, float or str; a
    list value is kept as its dashed text, e.g. ``"128-64"``); :meth:`value` turns a
    sampled one into the config value.
    """

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()
    is_list: bool = False

    def suggest(self, trial: Any) -> Any:
        """Draw this dimension's value for an Optuna trial; return the config value."""
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high))  # type: ignore[arg-type]
        if self.kind in ("float", "log"):
            return trial.suggest_float(
                self.key,
                float(self.low),  # type: ignore[arg-type]
                float(self.high),  # type: ignore[arg-type]
                log=self.kind == "log",
            )
        return self.value(trial.suggest_categorical(self.key, list(self.choices)))

    def value(self, stored: Any) -> Any:
        """The config value of a value as Optuna stores it."""
        if self.is_list:
            return _dashed_list(str(stored), self.key)
        return stored

    @property
    def spec(self) -> str:
        """The canonical text of this dimension (what ``--space`` would say)."""
        if self.kind == "choice":
            return ",".join("null" if c is None else str(c) for c in self.choices)
        return f"{self.kind}:{self.low:g}:{self.high:g}"

    def extremes(self) -> list[Any]:
        """Config values that bound this dimension (bounds, or every choice)."""
        if self.kind == "choice":
            return [self.value(c) for c in self.choices]
        return [self.low, self.high]


@dataclass(frozen=True)
class Space:
    """The dimensions of a study, in the order given."""

    dimensions: tuple[Dimension, ...]

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Config overrides (dotted key -> value) drawn for ``trial``."""
        return {d.key: d.suggest(trial) for d in self.dimensions}

    def overrides(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Config overrides of a finished trial's stored parameters."""
        by_key = {d.key: d for d in self.dimensions}
        return {k: by_key[k].value(v) if k in by_key else v for k, v in params.items()}

    def to_dict(self) -> dict[str, str]:
        """``{key: canonical text}``: the space as stored with the study."""
        return {d.key: d.spec for d in self.dimensions}

    def describe(self) -> str:
        return " ".join(f"{d.key}={d.spec}" for d in self.dimensions)


def parse_space_text(text: str) -> dict[str, str]:
    """``"a=int:1:4 b=x,y"`` -> ``{"a": "int:1:4", "b": "x,y"}`` (nothing validated yet)."""
    entries: dict[str, str] = {}
    for part in text.split():
        key, sep, spec = part.partition("=")
        if not sep or not key or not spec:
            raise ConfigError(
                f"--space: {part!r} is not KEY=SPEC; e.g. model.latent_dim=int:8:64, "
                "train.lr=log:1e-4:1e-2 or model.likelihood=nb,zinb."
            )
        entries[key] = spec
    return entries


def read_space_file(path: Any) -> dict[str, Any]:
    """A YAML mapping of key -> spec (or a file with a ``space:`` / ``tune: space:`` key)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: search-space file not found; check the path.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax.") from None
    if isinstance(values, dict) and isinstance(values.get("tune"), dict):
        values = values["tune"]
    if isinstance(values, dict) and isinstance(values.get("space"), dict):
        values = values["space"]
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: expected a mapping of config keys to ranges or choices, e.g. "
            "'model.latent_dim: int:8:64'."
        )
    return values


def build_space(entries: Mapping[str, Any], base: RunConfig) -> Space:
    """Parse and check every entry against the schema and ``base``; see the module docstring.

    Raises
    ------
    ConfigError
        Naming the key: unknown key, a key that cannot be tuned, a malformed range, a range
        of the wrong type for the field, or a bound or choice the schema refuses.
    """
    if not entries:
        raise ConfigError(
            "the search space is empty; give it with --space, e.g. "
            '--space "model.latent_dim=int:8:64 train.lr=log:1e-4:1e-2", or in YAML.'
        )
    dimensions = []
    for key, spec in entries.items():
        key = str(key)
        _check_key(key)
        dimension = _parse(key, spec)
        _check_values(dimension, base)
        dimensions.append(dimension)
    return Space(tuple(dimensions))


def _check_key(key: str) -> None:
    section, _, name = key.partition(".")
    if section not in SECTIONS or not name:
        known = [f"{s}.{f}" for s in SECTIONS for f in _section_fields(s)]
        close = [k for k in known if k.split(".")[1] == key] or difflib.get_close_matches(
            key, known, n=3
        )
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"search space: {key!r} is not a config key (section.field, with section one of "
            f"{', '.join(SECTIONS)}).{hint}"
        )
    if name not in _section_fields(section):
        allowed = _section_fields(section)
        close = difflib.get_close_matches(name, allowed, n=3)
        hint = f" Did you mean {', '.join(f'{section}.{c}' for c in close)}?" if close else ""
        raise ConfigError(
            f"search space: {key!r}: {section} has no field {name!r}.{hint} Allowed: "
            f"{', '.join(allowed)}."
        )
    if section in NOT_TUNABLE_SECTIONS:
        raise ConfigError(
            f"search space: {key!r} cannot be tuned: {NOT_TUNABLE_SECTIONS[section]}; set it "
            "in the configuration instead."
        )
    if key in NOT_TUNABLE:
        raise ConfigError(f"search space: {key!r} cannot be tuned: {NOT_TUNABLE[key]}.")


def _section_fields(section: str) -> list[str]:
    model = RunConfig.model_fields[section].annotation
    return list(model.model_fields)  # type: ignore[union-attr]


def _parse(key: str, spec: Any) -> Dimension:
    kinds = field_kinds(key)
    is_list = list in kinds
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"search space: {key!r} has an empty list of choices.")
        values = [_as_choice(v, key, is_list) for v in spec]
        return Dimension(key, "choice", choices=_unique(values, key), is_list=is_list)
    text = str(spec).strip()
    head, sep, rest = text.partition(":")
    if sep and head in ("int", "float", "log"):
        return _parse_range(key, head, rest, kinds, text)
    if sep and head not in ("int", "float", "log") and ":" in text and "," not in text:
        raise ConfigError(
            f"search space: {key}={text!r}: unknown range kind {head!r}; use int:a:b, "
            "float:a:b, log:a:b or comma-separated choices."
        )
    parts = text.split(",")
    if any(p.strip() == "" for p in parts):
        raise ConfigError(f"search space: {key}={text!r}: an empty choice; e.g. nb,zinb.")
    if len(parts) < 2:
        raise ConfigError(
            f"search space: {key}={text!r}: one value is not a search; give a range "
            "(int:a:b, float:a:b, log:a:b) or two or more choices, or set it in the "
            "configuration."
        )
    values = [_as_choice(p.strip(), key, is_list, text=True) for p in parts]
    return Dimension(key, "choice", choices=_unique(values, key), is_list=is_list)


def _parse_range(key: str, kind: str, rest: str, kinds: set[type], text: str) -> Dimension:
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise ConfigError(
            f"search space: {key}={text!r}: a range is {kind}:LOW:HIGH, e.g. {kind}:"
            f"{'8:64' if kind == 'int' else '1e-4:1e-2'}."
        )
    try:
        low, high = (int(b) for b in bounds) if kind == "int" else (float(b) for b in bounds)
    except ValueError:
        raise ConfigError(
            f"search space: {key}={text!r}: the bounds of an {kind} range must be "
            f"{'integers' if kind == 'int' else 'numbers'}."
        ) from None
    if list in kinds or not kinds & {int, float}:
        raise ConfigError(
            f"search space: {key}={text!r}: {key} is not a number; give its choices instead, "
            "e.g. a,b,c."
        )
    if kind != "int" and float not in kinds:
        raise ConfigError(f"search space: {key}={text!r}: {key} takes integers; use int:LOW:HIGH.")
    if not low < high:
        raise ConfigError(
            f"search space: {key}={text!r}: LOW must be below HIGH (for one value, set it in "
            "the configuration)."
        )
    if kind == "log" and low <= 0:
        raise ConfigError(f"search space: {key}={text!r}: a log range needs LOW > 0.")
    return Dimension(key, kind, low=low, high=high)


def _as_choice(value: Any, key: str, is_list: bool, *, text: bool = False) -> Any:
    """A choice as Optuna stores it: lists as dashed text, text read as YAML scalars."""
    if is_list:
        if isinstance(value, list):
            return "-".join(str(int(v)) for v in value)
        stripped = str(value).strip()
        if stripped in ("[]", "none", ""):
            return "[]"
        _dashed_list(stripped, key)  # validates
        return stripped
    if text:
        value = yaml.safe_load(value)
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ConfigError(
            f"search space: {key}: choice {value!r} is not a single value (number, text, "
            "true/false or null)."
        )
    return value


def _dashed_list(text: str, key: str) -> list[int]:
    if text in ("[]", "none", ""):
        return []
    try:
        return [int(v) for v in text.split("-")]
    except ValueError:
        raise ConfigError(
            f"search space: {key}: {text!r} is not a list of layer sizes; write each choice "
            "with dashes, e.g. 128-64,256 (or a YAML list of lists)."
        ) from None


def _unique(values: list[Any], key: str) -> tuple[Any, ...]:
    seen: list[Any] = []
    for v in values:
        if any(v == s and type(v) is type(s) for s in seen):
            raise ConfigError(f"search space: {key}: choice {v!r} is given twice.")
        seen.append(v)
    return tuple(seen)


def _check_values(dimension: Dimension, base: RunConfig) -> None:
    """Every bound or choice must be a valid value of the field, given ``base``."""
    for value in dimension.extremes():
        try:
            base.updated({dimension.key: value}, source=f"search space: {dimension.key}")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (from {dimension.key}={dimension.spec})") from None
