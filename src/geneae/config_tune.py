"""The ``tune:`` section of a study's YAML file (``geneae tune``): :class:`TuneConfig`.

Not part of :class:`~geneae.config.RunConfig` (a study is many runs); importable from
:mod:`geneae.config` as before.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from geneae.config_base import Section

__all__ = ["TuneConfig", "TuneObjective"]

TuneObjective = Literal["loss", "ari", "nmi"]


class TuneConfig(Section):
    """A hyperparameter search (``geneae tune``): the ``tune:`` section of its YAML file.

    Not part of :class:`RunConfig`: a study is many runs, and the best one is written as a
    plain run configuration (``best_config.yaml``). ``space`` maps dotted config keys to
    ranges or choices: ``"int:8:64"``, ``"float:0:0.3"``, ``"log:1e-4:1e-2"``, ``"nb,zinb"``
    or a YAML list of values (see :mod:`geneae.tune.space`).
    """

    space: dict[str, str | list[Any]] = Field(
        default_factory=dict, description="config key -> int:a:b, float:a:b, log:a:b or choices"
    )
    trials: int = Field(default=20, ge=1, description="finished trials the study should hold")
    objective: TuneObjective = Field(
        default="loss",
        description="loss: validation loss at the best epoch (label-free, minimised); ari / "
        "nmi: agreement of latent clusters with the known labels (maximised; tunes to them)",
    )
    storage: str | None = Field(
        default=None,
        description="Optuna storage URL (sqlite:///..., postgresql://...) or journal:PATH for "
        "a journal file on a shared filesystem; default: sqlite study.db in the output folder",
    )
    study_name: str = Field(default="geneae", min_length=1, description="name of the study")
    workers: int = Field(default=1, ge=1, description="local worker processes")
    pruning: bool = Field(
        default=True, description="stop unpromising trials early (median of earlier trials)"
    )
    sampler: Literal["tpe", "random", "grid"] = Field(
        default="tpe",
        description="Optuna sampler: tpe, random, or grid (every combination of integer ranges "
        "and choices)",
    )
    stale_after: float = Field(
        default=3600.0,
        gt=0,
        description="seconds without news after which a running trial of another machine is "
        "taken as dead and run again",
    )
