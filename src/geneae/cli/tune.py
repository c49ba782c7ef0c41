"""``geneae tune``: a hyperparameter search on Optuna, with train's flags as its base.

The base configuration is built exactly as ``geneae train`` builds it (defaults, preset,
``--config`` YAML, flags); the search itself is set by the YAML file's ``tune:`` section,
then ``--space-file``, then the flags below (later ones win, key by key for the space).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from geneae.cli.commands import GenesFile, LabelsFile, app, out
from geneae.cli.flags import TRAIN_FLAGS, build_config_from, with_config_flags
from geneae.config import TuneConfig, describe_validation_error
from geneae.errors import ConfigError, TuneWarning

OBJECTIVE_CHOICES = ("loss", "ari", "nmi")
SAMPLER_CHOICES = ("tpe", "random", "grid")


@app.command()
@with_config_flags(TRAIN_FLAGS)
def tune(
    data: Annotated[Path, typer.Argument(help="expression file every trial trains on")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="study folder: study.db, trials.csv, best_config.yaml")
    ],
    trials: Annotated[
        int | None, typer.Option(help="finished trials the study should hold [default: 20]")
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            help='search space, e.g. "model.latent_dim=int:8:64 model.likelihood=nb,zinb '
            'train.lr=log:1e-4:1e-2" (int:a:b, float:a:b, log:a:b or choices)'
        ),
    ] = None,
    space_file: Annotated[
        Path | None, typer.Option(help="YAML mapping of config keys to ranges or choices")
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            help="loss (default; label-free validation loss at the best epoch) | ari | nmi "
            "(tunes to the known labels)"
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL: sqlite:///PATH, postgresql://..., or journal:PATH (a "
            "file on a shared filesystem) [default: sqlite OUT/study.db]"
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="local worker processes [default: 1]")] = None,
    study_name: Annotated[str | None, typer.Option(help="study name [default: geneae]")] = None,
    sampler: Annotated[
        str | None, typer.Option(help="tpe (default) | random | grid (integer ranges, choices)")
    ] = None,
    pruning: Annotated[
        bool | None,
        typer.Option("--pruning/--no-pruning", help="stop unpromising trials early [default: on]"),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="run YAML, optionally with a tune: section"),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="named preset as the base")] = None,
    labels_file: LabelsFile = None,
    genes_file: GenesFile = None,
    *,
    overrides: dict[str, Any],
) -> None:
    """Search hyperparameters with Optuna; write trials.csv, best_config.yaml and a report.

    Every trial trains the base configuration (train's flags; --epochs is each trial's
    maximum) with the settings it draws from the search space. Re-running the command
    continues the study; workers on other machines join it with the same --storage.
    Example: geneae tune pbmc.h5ad --out studies/pbmc --trials 40
    --space "model.latent_dim=int:8:64 train.lr=log:1e-4:1e-2"
    """
    from geneae.tune import parse_space_text, read_space_file
    from geneae.tune import tune as run_study

    run_values, section = _read_config(config)
    base = build_config_from(run_values, str(config or "configuration"), preset, overrides)
    flags = {
        "trials": trials,
        "objective": objective,
        "storage": storage,
        "workers": workers,
        "study_name": study_name,
        "sampler": sampler,
        "pruning": pruning,
    }
    for name, allowed in (("objective", OBJECTIVE_CHOICES), ("sampler", SAMPLER_CHOICES)):
        if flags[name] is not None and flags[name] not in allowed:
            raise ConfigError(f"--{name} {flags[name]!r}: choose one of {', '.join(allowed)}.")
    entries = dict(section.get("space") or {})
    if space_file is not None:
        entries.update(read_space_file(space_file))
    if space is not None:
        entries.update(parse_space_text(space))
    values = {**section, **{k: v for k, v in flags.items() if v is not None}, "space": entries}
    settings = _tune_config(values, str(config or "--space"))
    with warnings.catch_warnings():
        warnings.simplefilter("always", TuneWarning)
        warnings.showwarning = _show
        result = run_study(
            data,
            out_dir,
            base,
            settings,
            labels_file=labels_file,
            genes_file=genes_file,
            echo=out.print,
        )
    _summary(result, settings)


def _read_config(path: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run configuration values, ``tune:`` section) of a YAML file."""
    if path is None:
        return {}, {}
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found; check the path.")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax.") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(values).__name__}.")
    section = values.pop("tune", None) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: the tune: section must be a mapping (space:, trials:, ...).")
    return values, section


def _tune_config(values: dict[str, Any], source: str) -> TuneConfig:
    from pydantic import ValidationError

    try:
        return TuneConfig(**values)
    except ValidationError as exc:
        message = describe_validation_error(exc, source).replace(f"{source}: ", "", 1)
        raise ConfigError(f"{source}: tune: {message}") from None


def _show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
    out.print(f"warning: {message}", markup=False, highlight=False)


def _summary(result: Any, settings: TuneConfig) -> None:
    out.print(
        f"trials: {result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed"
    )
    for note in result.notes:
        out.print(f"note: {note}", markup=False, highlight=False)
    if result.best_number is None:
        out.print("no trial has completed yet: no best configuration")
    else:
        params = ", ".join(f"{k}={v}" for k, v in result.best_params.items())
        out.print(
            f"best: trial {result.best_number}, {settings.objective} = "
            f"{result.best_value:.6g} ({params})",
            markup=False,
            highlight=False,
        )
        out.print(f"best configuration: {result.out_dir / 'best_config.yaml'}")
    out.print(f"trials table: {result.out_dir / 'trials.csv'}")
    out.print(f"report: {result.out_dir / 'tune_report.md'}")
