"""Genes as samples: a preprocessed samples x genes AnnData turned into the model's rows.

With ``data.genes_as_samples`` the :class:`~geneae.pp.Preprocessor` still runs on the
samples x genes matrix (library size and log1p per sample, standardisation per gene; see
:func:`geneae.resolve_preprocess.gene_preprocess`); :func:`genes_as_rows` then transposes the result
so that each gene is a row and the samples are the features. :func:`align_features` puts
the columns of new data in the order the model was trained on, by sample name.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from geneae.errors import DataWarning, InputError
from geneae.pp.checks import preview


def genes_as_rows(
    pre: ad.AnnData, *, label_column: str | None = None, labels_required: bool = True
) -> ad.AnnData:
    """``pre`` (samples x genes) as genes x samples, gene annotations as ``obs``.

    Parameters
    ----------
    pre
        Preprocessed samples x genes (the Preprocessor's output).
    label_column
        A column of ``pre.var`` with known gene groups (e.g. a module or pathway), copied to
        ``obs["label"]`` for evaluation only. ``None`` keeps a ``var["label"]`` column if
        there is one.
    labels_required
        False: a ``label_column`` that ``pre.var`` lacks is no error (new data).

    Returns
    -------
    anndata.AnnData
        ``X``: float32, dense when ``pre.X`` is dense, CSR otherwise; ``obs``: the gene
        annotations; ``var``: the samples (names only). Layers are not carried: the
        likelihoods of genes as samples model ``X`` itself.
    """
    x = pre.X
    if sp.issparse(x):
        rows = sp.csr_matrix(x.T, dtype=np.float32)
    else:
        rows = np.ascontiguousarray(np.asarray(x, dtype=np.float32).T)
    obs = pre.var.copy()
    if label_column is not None and label_column != "label":
        if label_column in obs:
            obs["label"] = obs.pop(label_column)
        elif labels_required:
            raise InputError(
                f"gene label column {label_column!r} not found: with genes_as_samples, labels "
                "are a column of the genes (var); available: "
                f"{', '.join(map(str, pre.var.columns)) or 'none'}."
            )
    if "label" in obs:
        obs["label"] = pd.Categorical(obs["label"].astype(str))
    var = pd.DataFrame(index=pd.Index(pre.obs_names.astype(str), name=None))
    return ad.AnnData(X=rows, obs=obs, var=var)


def align_features(rows: ad.AnnData, features: Sequence[str]) -> ad.AnnData:
    """``rows`` with its columns (samples) in the order of ``features``, matched by name.

    Every feature must be present; other columns are dropped with a
    :class:`~geneae.errors.DataWarning`.
    """
    names = pd.Index(rows.var_names.astype(str))
    cols = names.get_indexer(pd.Index(list(features)))
    missing = [f for f, c in zip(features, cols, strict=True) if c < 0]
    if missing:
        raise InputError(
            f"{len(missing):,} of the {len(features):,} samples this gene model was trained "
            f"on are missing from the data: {preview(missing)}. Genes are embedded from their "
            "expression across the same samples; give a file with those samples."
        )
    if len(names) > len(cols):
        extra = names[np.setdiff1d(np.arange(len(names)), cols)]
        warnings.warn(
            f"{len(extra):,} samples the gene model was not trained on were dropped "
            f"(e.g. {preview(list(extra))}).",
            DataWarning,
            stacklevel=3,
        )
    if np.array_equal(cols, np.arange(len(names))):
        return rows
    return rows[:, cols].copy()
