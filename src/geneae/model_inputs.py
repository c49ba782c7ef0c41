"""Data as a model's input: the layer used, the gene route's rows, the data's summary.

Helpers of :mod:`geneae.model`'s preprocessing: :func:`prepare_training_input` prepares
the training data once (in memory or on disk) with what that decided,
:func:`with_layer` picks the matrix a model reads, :func:`fit_preprocessing` fits the
preprocessing of the training data,
:func:`prepared_input` puts preprocessed data into the model's tensors,
:func:`gene_rows_for` prepares new data for a model of genes as samples,
:func:`same_preprocessing` says whether two models can share prepared data, and
:func:`data_summary` is the ``data`` section of metrics.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anndata as ad

from geneae.config import RunConfig
from geneae.errors import InputError
from geneae.facts import DataFacts, describe
from geneae.io.backed import BackedData
from geneae.io.raw import as_read_from_a_file
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.ondisk import OnDisk, prepare_on_disk
from geneae.pp import Preprocessor
from geneae.pp.checks import in_memory
from geneae.pp.orientation import align_features, genes_as_rows
from geneae.pp.steps import library_genes
from geneae.prepared import Prepared, covariate_codes, covariate_levels, to_tensors
from geneae.resolve import resolve

__all__ = [
    "TrainingInput",
    "as_the_model_reads",
    "data_summary",
    "fit_preprocessing",
    "gene_rows_for",
    "prepare_training_input",
    "prepared_input",
    "same_preprocessing",
    "with_layer",
]


@dataclass
class TrainingInput:
    """The training data prepared once, and what preparing them decided."""

    config: RunConfig  # resolved for the data
    preprocessor: Preprocessor  # fitted
    genes: list[str]  # the model's features
    covariate_categories: list[str]
    data: Prepared | OnDisk
    summary: dict[str, Any]  # metrics.json's "data" section


def prepare_training_input(
    config: RunConfig, adata: ad.AnnData | BackedData, layer: str | None
) -> TrainingInput:
    """Describe the training data, resolve ``config``, fit the preprocessing, prepare once.

    Data left on disk (:func:`geneae.io.backed.open_backed`) are described and
    preprocessed chunk by chunk (:func:`geneae.ondisk.prepare_on_disk`).
    """
    if isinstance(adata, BackedData):
        config, preprocessor, on_disk = prepare_on_disk(config, adata)
        levels = on_disk.covariate[1] if on_disk.covariate else []
        genes = [str(g) for g in preprocessor.genes_]
        return TrainingInput(config, preprocessor, genes, levels, on_disk, on_disk.summary())
    data = with_layer(adata, layer)
    facts = describe(data)
    config = resolve(config, facts)
    preprocessor, pre = fit_preprocessing(config, data, facts)
    key = config.data.covariate
    levels = [] if key is None else covariate_levels(pre, key)
    prepared = prepared_input(config, pre, facts, levels)
    summary = data_summary(adata, pre, facts, genes_as_samples=config.data.genes_as_samples)
    genes = [str(g) for g in pre.var_names]
    return TrainingInput(config, preprocessor, genes, levels, prepared, summary)


def as_the_model_reads(adata: ad.AnnData, layer: str | None, use_raw: bool | None) -> ad.AnnData:
    """``adata`` in memory as a model reads it: its ``layer``, else X as a reader gives it.

    A file's reader uses ``.raw``'s values or counts where ``use_raw`` (``data.use_raw``,
    or its default) says so (:mod:`geneae.io.raw`); an AnnData given in Python is read by
    the same rules, and is not changed.
    """
    data = in_memory(adata)
    return with_layer(data, layer) if layer is not None else as_read_from_a_file(data, use_raw)


def with_layer(adata: ad.AnnData, layer: str | None) -> ad.AnnData:
    """``adata`` with ``layers[layer]`` as its data (``adata`` itself when ``layer`` is None).

    Raises
    ------
    InputError
        When ``adata`` has no such layer.
    """
    if layer is None:
        return adata
    if layer not in adata.layers:
        raise InputError(
            f"layer {layer!r} not found; available layers: {', '.join(adata.layers) or 'none'}."
        )
    return ad.AnnData(X=adata.layers[layer], obs=adata.obs.copy(), var=adata.var.copy())


def fit_preprocessing(
    config: RunConfig, data: ad.AnnData, facts: DataFacts
) -> tuple[Preprocessor, ad.AnnData]:
    """Fit the preprocessing of a resolved ``config`` on training data and apply it.

    Parameters
    ----------
    config
        The configuration resolved for ``data``.
    data
        Samples x genes, as given.
    facts
        What :func:`geneae.facts.describe` found in ``data``.

    Returns
    -------
    tuple of Preprocessor and AnnData
        The fitted preprocessor and the model's input (for gene models, genes as rows).
    """
    preprocessor = Preprocessor.from_config(config.preprocess)
    # copy=False: the tensors wrap the preprocessed arrays, and those share what is
    # unchanged (counts, sparsity pattern) with ``data``: the data is held about once.
    pre = preprocessor.fit_transform(data, facts=facts, copy=False)
    if config.data.genes_as_samples:
        # Each gene a row, the samples its features (the model's "genes").
        pre = genes_as_rows(pre, label_column=config.data.label_column)
    return preprocessor, pre


def prepared_input(
    config: RunConfig, pre: ad.AnnData, facts: DataFacts, covariate_categories: list[str]
) -> Prepared:
    """Preprocessed samples with their tensors: the input of a model of ``config``.

    Parameters
    ----------
    config
        The model's (resolved) configuration: count likelihoods also get the raw counts and
        library sizes, and ``data.covariate`` names the covariate column.
    pre
        Samples x model genes, preprocessed.
    facts
        What :func:`geneae.facts.describe` found in the data.
    covariate_categories
        The covariate's levels in training (each sample gets the index of its level).

    Returns
    -------
    Prepared
        ``pre`` with its tensors.
    """
    key = config.data.covariate
    covariate = None if key is None else covariate_codes(pre, key, covariate_categories)
    counts = config.model.likelihood in COUNT_LIKELIHOODS
    genes = library_genes(config.preprocess, pre.n_vars)
    tensors = to_tensors(pre, counts=counts, covariate=covariate, library_genes=genes)
    return Prepared(pre, tensors, facts)


def same_preprocessing(config: RunConfig, other: RunConfig) -> bool:
    """Whether data prepared for a model of ``other`` serve one of ``config`` as they are.

    True when both resolved configurations have the same preprocessing and data sections
    and the same kind of target (raw counts or not).
    """
    return (
        config.preprocess == other.preprocess
        and config.data == other.data
        and (config.model.likelihood in COUNT_LIKELIHOODS)
        == (other.model.likelihood in COUNT_LIKELIHOODS)
    )


def gene_rows_for(
    config: RunConfig, genes: list[str], data: ad.AnnData, facts: DataFacts
) -> Prepared:
    """New data for a gene model: the training steps, genes as rows, samples aligned.

    Each gene is standardised over the samples with its own statistics (that is what the
    steps do to a gene), so the steps are fitted afresh on ``data``; the samples, the
    model's features, are matched by name to those of training.

    Parameters
    ----------
    config
        The fitted model's configuration.
    genes
        The model's features (the samples of training).
    data
        Samples x genes, as given.
    facts
        What :func:`geneae.facts.describe` found in ``data``.

    Returns
    -------
    Prepared
        Genes x model features.
    """
    pre = Preprocessor.from_config(config.preprocess).fit_transform(data, facts=facts, copy=False)
    rows = genes_as_rows(pre, label_column=config.data.label_column, labels_required=False)
    rows = align_features(rows, genes)
    return Prepared(rows, to_tensors(rows, counts=False), facts)


def data_summary(
    adata: ad.AnnData, pre: ad.AnnData, facts: DataFacts, *, genes_as_samples: bool
) -> dict[str, Any]:
    """The ``data`` section of metrics.json: the data as given and as the model sees them.

    Parameters
    ----------
    adata
        The data as given.
    pre
        The model's input (after preprocessing and, for gene models, transposing).
    facts
        What :func:`geneae.facts.describe` found in the data.
    genes_as_samples
        Whether the model's rows are genes.

    Returns
    -------
    dict
        Sizes before and after preprocessing and the kind of values.
    """
    summary: dict[str, Any] = {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "n_cells_model": int(pre.n_obs),
        "n_genes_model": int(pre.n_vars),
        "value_type": facts.value_type,
    }
    if genes_as_samples:
        summary["genes_as_samples"] = True
    return summary
