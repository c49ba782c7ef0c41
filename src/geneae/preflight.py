"""Checks made before a run writes anything: the training device, and data big enough.

Each turns what would otherwise fail deep inside training or evaluation (a batch-norm layer
given one cell, Lightning asked for a GPU that is not there, a PCA baseline with more
components than genes) into a :class:`~geneae.errors.GeneaeError` that names the setting or
the file and the fix, before any file of the run exists.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

from geneae.batches import split_indices
from geneae.config import RunConfig, TrainConfig
from geneae.errors import ConfigError, InputError
from geneae.precision import choose_precision
from geneae.resolve import embedding_width, members

HARDWARE_KEYS = ("accelerator", "devices", "strategy", "num_nodes", "precision")
FLAGS = {"accelerator": "--device (train.accelerator)"}


def check_hardware(train: TrainConfig) -> None:
    """Ask Lightning whether it can train with these device settings (nothing starts).

    A Trainer is built and thrown away: it checks that the accelerator exists here (no
    ``--device cuda`` without a GPU), that ``devices`` fits it, and the strategy's name.
    Settings it cannot refuse are not asked about, since asking imports Lightning (seconds
    of CPU before the data are read, in a run whose members may train in processes that
    import it anyway): one device of the CPU, asked for or chosen by ``auto`` where no GPU
    is likely (:func:`geneae.train.member_process.gpu_likely`), takes every precision the
    configuration accepts.
    """
    from geneae.train.member_process import gpu_likely

    if train.one_device and (train.accelerator == "cpu" or not gpu_likely()):
        return
    import lightning.pytorch as pl
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    settings = {key: getattr(train, key) for key in HARDWARE_KEYS}
    settings["precision"] = choose_precision(train.precision, train.accelerator)[0]
    try:
        with _quiet():
            pl.Trainer(
                **settings,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as exc:
        given = ", ".join(
            f"{FLAGS.get(k, 'train.' + k)} {v!r}"
            for k, v in settings.items()
            if v != TrainConfig.model_fields[k].default
        )
        reason = " ".join(str(exc).split()).split(". ")[0].rstrip(".")
        raise ConfigError(
            f"cannot train with {given or 'the default device settings'}: {reason}. Use "
            "--device cpu (or auto, which takes a GPU when there is one)."
        ) from None


def check_trainable(n_cells: int, n_genes: int, config: RunConfig, where: str) -> None:
    """Refuse data too small for the model and its evaluation, naming ``where`` (the file).

    ``n_cells`` / ``n_genes``: what is left after preprocessing.
    """
    train_rows, _ = split_indices(n_cells, config.train.validation, config.train.seed)
    if len(train_rows) < 2:
        raise InputError(
            f"{where}: {n_cells} cell(s) left after preprocessing, {len(train_rows)} of them "
            "for training; training needs at least 2 training cells (3 with the default "
            "validation split). Give more cells."
        )
    if embedding_width(config) > min(n_cells, n_genes):
        raise InputError(f"{where}: {too_small_for_embedding(n_cells, n_genes, config)}")
    if config.model.norm == "batch" and config.train.batch_size < 2:
        raise ConfigError(
            f"--batch-size {config.train.batch_size}: batch normalisation needs at least 2 "
            "cells per batch; use --batch-size 2 or more (or model.norm: layer)."
        )
    k = config.evaluate.n_clusters
    if k is not None and k > n_cells:
        raise ConfigError(
            f"evaluate.n_clusters = {k} exceeds the {n_cells} cells left after preprocessing; "
            "use fewer clusters."
        )


def too_small_for_embedding(n_cells: int, n_genes: int, config: RunConfig) -> str:
    """Why data of ``n_cells`` x ``n_genes`` cannot hold ``config``'s embedding, and the fix.

    The PCA baseline has as many components as the embedding has dimensions (members x
    latent_dim), so both need at least that many cells and genes.
    """
    d, m = config.model.latent_dim, members(config)
    room = min(n_cells, n_genes)
    which = "genes" if n_genes <= n_cells else "cells"
    width = (
        f"latent_dim={d}" if m == 1 else f"the {m * d} dimensions of {m} members x latent_dim {d}"
    )
    fixes = [f"--latent-dim {room // m} or less"] if room // m >= 1 else []
    if m > 1:
        fixes.append(f"--members 1 with --latent-dim {room} or less")
    return (
        f"{n_genes} gene(s) and {n_cells} cell(s) left after preprocessing, fewer {which} than "
        f"{width}; the PCA baseline at the embedding's dimension needs at least {m * d} of "
        f"each. Use {', or '.join(fixes)}, or give more data."
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's banner and notes (GPU available, precision fallbacks) are not ours."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
