"""Command-line options generated from the configuration schema.

A command lists the config fields it exposes (flag name -> dotted key); each becomes an
option whose type, help text and choices come from the pydantic field, and the command
receives them as one dict of dotted-key overrides. Values are validated by the schema, so
a bad value names the flag, the key and what is allowed. Nothing here imports torch.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from geneae.config import RunConfig, load_yaml
from geneae.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

# The config fields `geneae train` exposes as flags (flag -> dotted key); `compare` and
# `tune` take a subset. Everything else is set in a YAML file (--config).
TRAIN_FLAGS: dict[str, str] = {
    "model": "model.family",
    "likelihood": "model.likelihood",
    "latent_dim": "model.latent_dim",
    "hidden": "model.hidden",
    "members": "model.members",
    "epochs": "train.max_epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "device": "train.accelerator",
    "threads": "train.num_threads",
    "labels": "data.label_column",
    "genes_as_samples": "data.genes_as_samples",
    "quiet": "train.quiet",
    "memory_budget": "train.memory_budget_gb",
    "out_of_core": "train.out_of_core",
}


def field_info(key: str) -> FieldInfo:
    """The pydantic field of a dotted key such as ``model.latent_dim``."""
    section, _, name = key.partition(".")
    model = RunConfig.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return model.model_fields[name]


def choices(key: str) -> tuple[Any, ...]:
    """The allowed values of a field with a Literal type (empty otherwise)."""
    for arg in _flatten(field_info(key).annotation):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def cli_type(key: str) -> type:
    """The type the option parses: bool, int, float or str (lists and choices are text)."""
    kinds = [a for a in _flatten(field_info(key).annotation) if a is not type(None)]
    for kind in (bool, int, float):
        if kind in kinds:
            return kind
    return str


def help_text(key: str) -> str:
    info = field_info(key)
    parts = [info.description or key.split(".")[-1].replace("_", " ")]
    allowed = [c for c in choices(key) if c != "auto"]
    if allowed:
        parts.append("one of " + ", ".join(map(str, allowed)))
    if cli_type(key) is str and "list" in str(info.annotation):
        parts.append("comma-separated, e.g. 256,128")
    parts.append(f"[config: {key}]")
    return "; ".join(parts)


def with_config_flags(flags: Mapping[str, str]) -> Callable[[F], F]:
    """Add one option per entry of ``flags`` to a typer command.

    The command's own parameters stay; the generated options arrive as the keyword
    argument ``overrides``: ``{dotted key: value}`` for the flags given on the command line.
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "overrides"]
        generated = [
            inspect.Parameter(
                flag,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=_annotation(flag, key),
            )
            for flag, key in flags.items()
        ]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            given = {flag: kwargs.pop(flag) for flag in flags}
            overrides = {
                flags[flag]: _parse(flags[flag], value)
                for flag, value in given.items()
                if value is not None
            }
            return func(**kwargs, overrides=overrides)

        params = own + generated
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return decorate


def build_config(
    config_path: Path | None, preset: str | None, overrides: Mapping[str, Any]
) -> RunConfig:
    """Defaults, then the preset (flag or YAML), then the YAML values, then the flags.

    Each flag is validated on its own, so an error names the flag that caused it.
    """
    values: dict[str, Any] = {}
    if config_path is not None:
        RunConfig.from_yaml(config_path)  # validates every key, with readable errors
        values = load_yaml(config_path)
    return build_config_from(values, str(config_path or "configuration"), preset, overrides)


def build_config_from(
    values: Mapping[str, Any], source: str, preset: str | None, overrides: Mapping[str, Any]
) -> RunConfig:
    """:func:`build_config` for YAML values already read (``source`` names them in errors)."""
    from geneae.presets import preset_config

    if values:
        RunConfig.from_dict(dict(values), source=source)  # every key, readable errors
        # Merge only what the file says, so the preset's other values are not reset.
        preset = preset or values.get("preset")
    base = preset_config(preset) if preset else RunConfig()
    merged = base.model_dump(mode="json")
    for section, content in values.items():
        if isinstance(content, dict) and isinstance(merged.get(section), dict):
            merged[section].update(content)
        else:
            merged[section] = content
    if preset:
        merged["preset"] = preset
    config = RunConfig.from_dict(merged, source=source)
    by_key = {key: flag for flag, key in TRAIN_FLAGS.items()}
    for key, value in overrides.items():
        flag = "--" + by_key.get(key, key).replace("_", "-")
        config = config.updated({key: value}, source=flag)
    return config


def given_settings(
    config_path: Path | None, preset: str | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The settings a user gave, as dotted key -> value, for ``--resume`` to check.

    A YAML file's keys, then the preset, then the flags.
    """
    given: dict[str, Any] = {}
    values = load_yaml(config_path) if config_path is not None else {}
    for section, content in (values if isinstance(values, dict) else {}).items():
        if isinstance(content, dict):
            for key, value in content.items():
                given[f"{section}.{ALIASES.get(str(key), key)}"] = value
        else:
            given[str(section)] = content
    if preset:
        given["preset"] = preset
    given.update(overrides)
    return given


# Old names of config keys that still load (the field's alias).
ALIASES = {"labels": "label_column"}


def _annotation(flag: str, key: str) -> Any:
    kind = cli_type(key)
    name = "--" + flag.replace("_", "-")
    if kind is bool:
        option = typer.Option(name, help=help_text(key))
    else:
        option = typer.Option(name, help=help_text(key), show_default=False)
    return Annotated[kind | None, option]


def _parse(key: str, value: Any) -> Any:
    """A flag's text in the field's form: ``"256,128"`` -> ``[256, 128]`` for lists."""
    if not isinstance(value, str) or "list" not in str(field_info(key).annotation):
        return value
    text = value.strip()
    if text in ("", "none", "[]"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        flag = key.split(".")[-1]
        raise ConfigError(
            f"--{flag} {value!r}: give comma-separated layer sizes, e.g. 256,128."
        ) from None
    return sizes


def _flatten(annotation: Any) -> list[Any]:
    """The members of a union (``int | None`` -> [int, NoneType]); others as a list."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for arg in args for a in _flatten(arg)]
    return [annotation]
