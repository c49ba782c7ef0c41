"""Scanpy-style encoding: a model's latent space and denoised values stored in the AnnData."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import anndata as ad

    from geneae.config import RunConfig
    from geneae.model import GeneAE


def encode(
    adata: ad.AnnData,
    model: GeneAE | None = None,
    *,
    config: RunConfig | None = None,
    preset: str | None = None,
    layer: str | None = None,
    key_added: str = "X_geneae",
    denoise: bool = True,
    copy: bool = False,
) -> ad.AnnData | None:
    """Encode ``adata`` (fitting a model first unless one is given) and store the results.

    Writes ``obsm[key_added]`` (latent means), ``layers["geneae_denoised"]`` (the expected
    reconstruction of the modelled genes, in the model's target units; NaN for genes the
    model does not use; skipped with ``denoise=False``) and ``uns["geneae"]``
    (configuration, genes, version), from one forward pass of the model. A model of genes
    (``data.genes_as_samples``) writes ``varm[key_added]`` instead (each gene's latent
    means; NaN for genes it does not embed) and no denoised layer.

    ``model``: a fitted model; else one is fitted on ``adata`` from ``config`` or
    ``preset`` (one of them at most; neither with a model).

    Returns
    -------
    The AnnData when ``copy=True``, else None (``adata`` is changed in place).
    """
    from geneae import __version__
    from geneae.errors import ConfigError
    from geneae.model import GeneAE
    from geneae.pp.checks import in_memory

    if model is not None and (config is not None or preset is not None):
        raise ConfigError(
            "give a fitted model, or config / preset to fit one on adata, not both (the model "
            "was trained with its own settings)."
        )
    if config is not None and preset is not None:
        raise ConfigError(
            "give config or preset, not both (a preset's settings with changes: "
            "GeneAE.from_preset(name, overrides).fit(adata), then encode(adata, model))."
        )
    if copy:  # a backed AnnData's copy needs a new file: the copy is held in memory
        adata = in_memory(adata) if adata.isbacked else adata.copy()
    if model is None:
        model = GeneAE.from_preset(preset) if preset else GeneAE(config)
        model.fit(adata, layer=layer)
    genes_as_samples = model.config.data.genes_as_samples
    rows: Any = None if denoise and not genes_as_samples else np.zeros(0, dtype=np.int64)
    outputs = model.predict(adata, layer=layer, reconstruction_rows=rows)
    if genes_as_samples:  # the model's rows are adata's genes
        at = pd.Index(adata.var_names).get_indexer(pd.Index(outputs.obs_names))
        embedding = np.full((adata.n_vars, outputs.latent.shape[1]), np.nan, dtype=np.float32)
        embedding[at[at >= 0]] = outputs.latent[at >= 0]
        adata.varm[key_added] = embedding
    else:
        adata.obsm[key_added] = outputs.latent
    if denoise and not genes_as_samples:
        full = np.full(adata.shape, np.nan, dtype=np.float32)
        full[:, pd.Index(adata.var_names).get_indexer(model.genes)] = outputs.reconstruction
        adata.layers["geneae_denoised"] = full
    adata.uns["geneae"] = {
        "config": model.config.to_yaml(),
        "key_added": key_added,
        "genes": list(model.genes),
        "version": __version__,
    }
    return adata if copy else None
