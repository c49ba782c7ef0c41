"""The one place where the data decide settings: ``resolve(config, facts) -> config``.

A :class:`~geneae.config.RunConfig` may leave choices to the data: ``auto`` likelihood and
preprocessing preset, preprocessing steps left at ``None``, epochs left at ``None``.
:func:`resolve` makes every one of these choices from :class:`~geneae.facts.DataFacts`
and returns a configuration with none left open. A run writes that resolved configuration
to config.yaml once, so ``geneae train --config RUN/config.yaml`` reproduces the run
without deciding anything again. Presets (:mod:`geneae.presets`) only override fields;
the model, the preprocessor and the command line never decide on their own.

Each decision the data made is logged on one line (logger ``geneae.resolve``).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from geneae.config import PreprocessConfig, RunConfig, describe_validation_error
from geneae.errors import ConfigError, InputError
from geneae.facts import DataFacts
from geneae.likelihoods import LIKELIHOODS

logger = logging.getLogger(__name__)

# The steps of each preprocessing preset (every field but source / normalize / log1p,
# which follow what the data hold, see _value_steps). 0 turns a numeric step off.
PRESET_STEPS: dict[str, dict[str, Any]] = {
    "counts": {
        "min_counts_per_cell": 1.0, "min_genes_per_cell": 0, "min_cells_per_gene": 1,
        "target_sum": 1e4, "n_top_genes": 2000, "hvg_flavor": "seurat_v3",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "lognorm": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 2000, "hvg_flavor": "seurat",
        "scale": False, "clip": 0.0, "minmax": False,
    },
    "standardize": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": True, "clip": 10.0, "minmax": False,
    },
    "minmax": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 0, "hvg_flavor": "mad",
        "scale": False, "clip": 0.0, "minmax": True,
    },
    "none": {
        "min_counts_per_cell": 0.0, "min_genes_per_cell": 0, "min_cells_per_gene": 0,
        "target_sum": 1e4, "n_top_genes": 0, "hvg_flavor": "variance",
        "scale": False, "clip": 0.0, "minmax": False,
    },
}  # fmt: skip

# What ``preset: auto`` becomes on raw counts: the counts preset with a z-scored, clipped
# encoder input (the recommended count model, BENCHMARKS.md); the likelihood still models
# the raw counts.
AUTO_COUNTS = {"scale": True, "clip": 10.0}


def default_epochs(n_obs: int) -> int:
    """Default number of epochs for ``n_obs`` training samples.

    A fixed budget of about 400k samples seen (~3,000 steps of 128): more training keeps
    lowering the loss but makes the latent worse for clustering (on 10x PBMC, ARI 0.76
    after 100 epochs, 0.59 after 250; scvi-tools shows the same between 100 and 400).
    ``clip(round(4e5 / n_obs), 20, 400)``: 190 epochs for 2,100 cells, 94 for 4,271,
    40 for 10k, 20 from 20k cells on.
    """
    return int(min(400, max(20, round(4e5 / max(n_obs, 1)))))


def resolve(config: RunConfig, facts: DataFacts) -> RunConfig:
    """A copy of ``config`` with every choice left to the data made from ``facts``.

    Raises
    ------
    InputError
        The configuration asks for something the data cannot give (a count likelihood or
        a counts preset without raw counts), before anything is trained or written.
    """
    config = config.model_copy(deep=True)
    model = config.model
    if model.likelihood == "auto":
        model.likelihood = "nb" if facts.has_counts else "gaussian"
        why = f"raw counts in {facts.counts_in}" if facts.has_counts else facts.describe_values()
        logger.info("likelihood: %s (the data hold %s)", model.likelihood, why)
    if LIKELIHOODS[model.likelihood].models_counts and not facts.has_counts:
        raise InputError(
            f"likelihood {model.likelihood!r} models raw counts, but the data have none (X "
            f"holds {facts.describe_values()} and there is no counts layer). Give raw counts "
            "(X or layers['counts']), or choose --likelihood gaussian / mse."
        )
    config.preprocess = resolve_preprocess(config.preprocess, facts)
    if config.train.max_epochs is None:
        config.train.max_epochs = default_epochs(facts.n_obs)
    return config


def resolve_preprocess(cfg: PreprocessConfig, facts: DataFacts) -> PreprocessConfig:
    """``cfg`` with the preset and every step left at ``None`` decided from ``facts``.

    Values the user gave always stay. Already resolved configurations come back unchanged.
    """
    if cfg.is_resolved:
        return cfg.model_copy()
    preset = cfg.preset
    if preset == "auto":
        preset = "counts" if facts.has_counts else "standardize"
        logger.info("preprocessing preset: %s (for %s)", preset, _what(facts))
    values = dict(PRESET_STEPS[preset])
    if cfg.preset == "auto" and preset == "counts":
        values.update(AUTO_COUNTS)
    values.update(_value_steps(preset, facts))
    given = {k: v for k, v in cfg.model_dump().items() if v is not None and v != "auto"}
    values.update(given)
    values["preset"] = preset
    if values["source"] == "counts" and not facts.has_counts:
        raise InputError(
            f"preset {preset!r} needs raw counts (non-negative integers), but the data hold "
            f"{facts.describe_values()} and no counts layer. Put raw counts in X or "
            "layers['counts'], or use preset 'lognorm' (non-negative values such as TPM) or "
            "'standardize'."
        )
    try:
        return PreprocessConfig(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "preprocess")) from None


def _value_steps(preset: str, facts: DataFacts) -> dict[str, Any]:
    """``source``, ``normalize`` and ``log1p`` of ``preset`` for data like ``facts``."""
    kind = facts.value_type
    if preset == "counts":
        return {"source": "counts", "normalize": True, "log1p": True}
    if preset == "lognorm":
        if facts.has_counts:
            return {"source": "counts", "normalize": True, "log1p": True}
        if kind == "log-normalised":
            logger.info(
                "X is log-normalised already (%s): preset lognorm keeps its values "
                "(no second normalisation or log1p)",
                facts.describe_values(),
            )
            return {"source": "X", "normalize": False, "log1p": False}
        if kind == "unlogged expression":
            return {"source": "X", "normalize": True, "log1p": True}
        raise InputError(
            f"preset 'lognorm' normalises and log-transforms non-negative expression, but X "
            f"holds {facts.describe_values()}; use preset 'standardize' or 'none' for data "
            "that are scaled already."
        )
    if preset in ("standardize", "minmax"):
        if kind == "raw counts":
            return {"source": "counts", "normalize": True, "log1p": True}
        if kind == "unlogged expression":
            logger.info(
                "values look unlogged (%s): log1p applied before %s",
                facts.describe_values(),
                "standardising" if preset == "standardize" else "min-max scaling",
            )
            return {"source": "X", "normalize": False, "log1p": True}
        return {"source": "X", "normalize": False, "log1p": False}
    return {"source": "X", "normalize": False, "log1p": False}


def _what(facts: DataFacts) -> str:
    if facts.has_counts:
        return f"raw counts in {facts.counts_in}"
    return facts.describe_values()
