"""Run configuration: one source of truth for the Python API, the CLI flags and YAML files.

A :class:`RunConfig` has five sections (data, preprocess, model, train, evaluate). Every
section forbids unknown keys, so a misspelt key is an error naming the key and the allowed
ones, never silently ignored. Named presets reproduce architectures from the literature.

The sections live in their own modules — :mod:`geneae.config_data` (``data``,
``preprocess``), :mod:`geneae.config_model`, :mod:`geneae.config_train`,
:mod:`geneae.config_evaluate`, :mod:`geneae.config_tune` (a study's ``tune:`` section) —
on the base :class:`~geneae.config_base.Section`; YAML reading is in
:mod:`geneae.config_yaml`. Everything stays importable from here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from geneae.config_base import Section
from geneae.config_data import DataConfig, HVGFlavor, PreprocessConfig, PreprocessPreset
from geneae.config_evaluate import EvaluateConfig
from geneae.config_model import Activation, Family, Likelihood, ModelConfig, Noise, Norm
from geneae.config_train import KLSchedule, TrainConfig
from geneae.config_tune import TuneConfig, TuneObjective
from geneae.config_yaml import load_yaml, yaml_error
from geneae.errors import ConfigError
from geneae.likelihoods import COUNT_LIKELIHOODS, LIKELIHOODS

__all__ = [
    "COUNT_LIKELIHOODS",
    "LIKELIHOODS",
    "SECTIONS",
    "Activation",
    "DataConfig",
    "EvaluateConfig",
    "Family",
    "HVGFlavor",
    "KLSchedule",
    "Likelihood",
    "ModelConfig",
    "Noise",
    "Norm",
    "PreprocessConfig",
    "PreprocessPreset",
    "RunConfig",
    "TrainConfig",
    "TuneConfig",
    "TuneObjective",
    "describe_validation_error",
    "field_kinds",
    "load_yaml",
    "yaml_error",
]

# The sections' base under its former name.
_Section = Section


class RunConfig(Section):
    """A whole run: everything needed to reproduce it from the same data file."""

    preset: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def of(cls, config: RunConfig | Mapping[str, Any] | None) -> RunConfig:
        """A private copy of ``config``: a RunConfig, its dotted keys, or None (defaults).

        Dotted keys as :meth:`updated` takes them, e.g. ``{"model.latent_dim": 16}``.
        """
        if config is None:
            return cls()
        if isinstance(config, RunConfig):
            return config.model_copy(deep=True)
        if isinstance(config, Mapping):
            return cls().updated(dict(config))
        raise ConfigError(
            "config must be a RunConfig or a mapping of dotted keys (e.g. "
            f'{{"model.latent_dim": 16}}), not {type(config).__name__}.'
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "configuration") -> RunConfig:
        """Validate a nested dict, turning pydantic's errors into one readable ConfigError."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, source)) from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read and validate a YAML run configuration."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: configuration file not found; check the path.")
        values = load_yaml(path)
        if not isinstance(values, dict):
            raise ConfigError(
                f"{path}: expected a mapping with sections data / preprocess / model / train "
                f"/ evaluate, got {type(values).__name__}."
            )
        return cls.from_dict(values, source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def updated(self, overrides: dict[str, Any], *, source: str = "override") -> RunConfig:
        """Return a copy with ``overrides`` (dotted keys, e.g. ``"model.latent_dim"``) applied."""
        values = self.model_dump(mode="json")
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if not key:
                values[section] = value
                continue
            if section not in values or not isinstance(values[section], dict):
                raise ConfigError(
                    f"{source}: unknown section {section!r} in {dotted!r}; "
                    f"allowed: {', '.join(SECTIONS)}."
                )
            values[section][key] = value
        return RunConfig.from_dict(values, source=source)


SECTIONS = ("data", "preprocess", "model", "train", "evaluate")


def field_kinds(key: str) -> set[type]:
    """The Python types a dotted key's field takes: ``{int, NoneType}``, ``{list}``, ...

    Choices of a ``Literal`` count as their own types (``"auto"`` -> ``str``). Raises
    ``KeyError`` for an unknown key.
    """
    section, _, name = key.partition(".")
    model = RunConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    kinds: set[type] = set()
    pending = [model.model_fields[name].annotation]
    while pending:
        kind = pending.pop()
        origin = typing.get_origin(kind)
        if origin is Literal:
            kinds |= {type(v) for v in typing.get_args(kind)}
        elif origin in (typing.Union, types.UnionType):
            pending += list(typing.get_args(kind))
        elif origin is not None:
            kinds.add(origin)
        elif isinstance(kind, type):
            kinds.add(kind)
    return kinds


def describe_validation_error(
    exc: ValidationError, source: str, model: type[BaseModel] | None = None
) -> str:
    """One line per problem: the dotted key, the bad value, what is allowed.

    ``model``: the section that was validated (default: a whole :class:`RunConfig`).
    """
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) if err["loc"] else "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1], model or RunConfig)
            lines.append(f"unknown key {key!r}; allowed keys here: {', '.join(allowed)}")
        else:
            lines.append(f"{key} = {err.get('input')!r}: {err['msg']}")
    return f"{source}: " + "; ".join(lines)


def _allowed_keys(loc: tuple[Any, ...], model: type[BaseModel]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            break
        if issubclass(field.annotation, BaseModel):
            model = field.annotation
    return list(model.model_fields)
