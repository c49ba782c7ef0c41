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
    (configuration, genes, version), from one forward pass of the model.

    Returns
    -------
    The AnnData when ``copy=True``, else None (``adata`` is changed in place).
    """
    from geneae import __version__
    from geneae.model import GeneAE

    adata = adata.copy() if copy else adata
    if model is None:
        model = GeneAE.from_preset(preset) if preset else GeneAE(config)
        model.fit(adata, layer=layer)
    rows: Any = None if denoise else np.zeros(0, dtype=np.int64)
    outputs = model.predict(adata, layer=layer, reconstruction_rows=rows)
    adata.obsm[key_added] = outputs.latent
    if denoise:
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
