"""A dataset preprocessed for a model, and what the model computes for it.

:class:`Prepared` is the one preprocessing of a dataset in a run (the AnnData of model
inputs plus the same data as tensors); :class:`Outputs` is everything one forward pass of
the model gives for it. :func:`to_tensors` turns preprocessed AnnData into the tensors
batches are gathered from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import torch

from geneae.batches import ExpressionTensors, RowMatrix
from geneae.errors import InputError
from geneae.facts import DataFacts


@dataclass
class Prepared:
    """Data preprocessed for a model: the one preprocessing of a dataset in a run.

    Attributes
    ----------
    data
        Samples x model genes: ``X`` the model input, ``layers["counts"]`` the raw counts
        when the data have them; obs as given (minus cells the training filters dropped).
    tensors
        The same data as tensors for batching (shares the arrays of ``data``).
    facts
        What :func:`geneae.facts.describe` found in the data as given.
    """

    data: ad.AnnData
    tensors: ExpressionTensors
    facts: DataFacts

    @property
    def n_obs(self) -> int:
        return int(self.data.n_obs)

    @property
    def in_memory(self) -> Prepared:
        """The cells held in memory: all of them (data on disk: :class:`geneae.ondisk.OnDisk`)."""
        return self

    def for_worker(self) -> Prepared:
        """These data for a process that only trains on them.

        The tensors and the facts; the AnnData reduced to the cell names (training reads
        only the tensors and the number of cells).
        """
        names = ad.AnnData(obs=pd.DataFrame(index=self.data.obs_names.copy()))
        return Prepared(names, self.tensors, self.facts)

    def outputs(
        self,
        module: torch.nn.Module,
        *,
        n_genes: int,
        likelihood: str,
        reconstruction_rows: np.ndarray | None,
        batch_size: int,
    ) -> Outputs:
        """Every output of ``module`` for these data (:func:`geneae.model_outputs.forward_pass`)."""
        from geneae.model_outputs import forward_pass

        return forward_pass(
            module,
            self.tensors,
            np.asarray(self.data.obs_names.astype(str)),
            n_genes=n_genes,
            likelihood=likelihood,
            reconstruction_rows=reconstruction_rows,
            batch_size=batch_size,
        )

    def data_module(self, train_rows: np.ndarray, val_rows: np.ndarray, config: Any) -> Any:
        """The Lightning data module of rows ``train_rows`` / ``val_rows`` (a TrainConfig)."""
        from geneae.train.data_modules import ExpressionDataModule

        return ExpressionDataModule(self.tensors, train_rows, val_rows, config)


@dataclass
class Outputs:
    """Everything a model computes for a dataset in one forward pass (see GeneAE.predict).

    Attributes
    ----------
    obs_names
        The samples, in order.
    latent
        (n, d) latent means.
    latent_var
        (n, d) posterior variances, or None for deterministic models.
    cluster_probabilities
        (n, K) q(y|x) of a GMVAE, or None.
    reconstruction
        Expected target (counts for count likelihoods) of the rows in
        ``reconstruction_rows`` (all rows when that is None), modelled genes.
    reconstruction_rows
        Sorted row indices the reconstruction covers, or None for all.
    """

    obs_names: np.ndarray
    latent: np.ndarray
    latent_var: np.ndarray | None
    cluster_probabilities: np.ndarray | None
    reconstruction: np.ndarray
    reconstruction_rows: np.ndarray | None


def to_tensors(
    pre: ad.AnnData,
    *,
    counts: bool,
    covariate: torch.Tensor | None = None,
    library_genes: int | None = None,
) -> ExpressionTensors:
    """The model input of ``pre`` and, for count models, its raw counts and library sizes.

    Count targets are taken when ``pre`` has ``layers["counts"]`` (encoding new data needs
    none; training data always has them, see :func:`geneae.resolve.resolve`). A sample's
    library sums its counts of the first ``library_genes`` genes (None: of every one), the
    genes its values were normalised over (:func:`geneae.pp.steps.library_genes`): those a
    count likelihood's narrow members reconstruct (:mod:`geneae.module.views`).
    """
    x = RowMatrix.from_array(pre.X)
    target = library = None
    if counts and "counts" in pre.layers:
        target = RowMatrix.from_array(pre.layers["counts"], like=x)
        library = target.row_sums(library_genes)
    return ExpressionTensors(x=x, target=target, library=library, covariate=covariate)


def covariate_levels(pre: ad.AnnData, key: str) -> list[str]:
    """The sorted levels of the covariate column ``key`` (the training data's).

    Refused: samples without a value (they would make a level "nan"), and a column of
    numbers that nearly all differ (a measurement, not a batch: every new sample's value
    would be a level the model never saw).
    """
    _check_column(pre, key)
    column = pre.obs[key]
    missing = column.isna().to_numpy()
    if missing.any():
        raise InputError(
            f"covariate {key!r} has no value for {int(missing.sum()):,} samples (e.g. "
            f"{str(pre.obs_names[missing][0])!r}); give each its level (e.g. 'unknown'), or "
            "leave data.covariate out."
        )
    distinct = column.nunique()
    if pd.api.types.is_float_dtype(column) and distinct > max(20, len(column) // 2):
        raise InputError(
            f"covariate {key!r} holds {distinct:,} different numbers among {len(column):,} "
            "samples: a measurement, not a batch. data.covariate names a categorical column "
            "(batch, donor, ...)."
        )
    return sorted(set(column.astype(str)))


def covariate_codes(pre: ad.AnnData, key: str, levels: list[str]) -> torch.Tensor:
    """The index of each sample's level of covariate ``key`` among ``levels``."""
    _check_column(pre, key)
    values = pre.obs[key].astype(str).to_numpy()
    lookup = {c: i for i, c in enumerate(levels)}
    unknown = sorted(set(values) - set(lookup))
    if unknown:
        raise InputError(
            f"covariate {key!r} has values the model was not trained on: "
            f"{', '.join(unknown[:5])}; known: {', '.join(levels[:10])}."
        )
    return torch.as_tensor(np.array([lookup[v] for v in values]), dtype=torch.int64)


def _check_column(pre: ad.AnnData, key: str) -> None:
    if key not in pre.obs:
        raise InputError(
            f"covariate column {key!r} not found in obs; available: "
            f"{', '.join(map(str, pre.obs.columns)) or 'none'}."
        )
