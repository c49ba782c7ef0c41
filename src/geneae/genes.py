"""Gene embeddings and similar genes, from either kind of model.

Two routes place genes in a space where co-expressed genes are close:

- a **gene model** (``data.genes_as_samples``, ``geneae train --genes-as-samples``): each
  gene is a row, standardised across the samples; its latent mean is its embedding;
- a **sample model** (the default): each gene's signed decoder loadings, how every latent
  dimension moves it (:meth:`geneae.GeneAE.gene_loadings`).

Similarity is the cosine of the embedding vectors. A run stores its gene embedding in
``results.h5ad`` (``uns["geneae"]["genes"]``, see docs/results.md), which is what
``geneae similar-genes RUN GENE`` reads.

Examples
--------
>>> from geneae.genes import similar_genes
>>> similar_genes("runs/gtex_genes", "TP53", n=20)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geneae.errors import InputError, ModelFileError
from geneae.evaluate.genes import top_similar_genes

if TYPE_CHECKING:
    import anndata as ad

    from geneae.model import GeneAE
    from geneae.prepared import Prepared

__all__ = ["GeneEmbedding", "embed_genes", "read_gene_embedding", "similar_genes"]

# Annotation columns that hold another name of a gene (symbols beside Ensembl IDs).
SYMBOL_COLUMNS = (
    "description",
    "gene_symbol",
    "gene_symbols",
    "symbol",
    "gene_name",
    "gene_names",
    "feature_name",
)


@dataclass
class GeneEmbedding:
    """Genes x dims vectors, and what they are.

    Attributes
    ----------
    names
        (g,) gene names.
    vectors
        (g, d) latent means (``source="latent"``) or signed loadings (``"loadings"``).
    source
        ``"latent"`` (a gene model) or ``"loadings"`` (a sample model).
    variance
        (g,) variance of each gene's log expression across the samples, before any
        standardisation (NaN where unknown).
    labels
        (g,) known gene groups, or None.
    symbols
        (g,) another name of each gene (e.g. the symbol of an Ensembl ID, from a GCT file's
        ``Description`` column), or None; genes can be asked for by either.
    """

    names: np.ndarray
    vectors: np.ndarray
    source: str
    variance: np.ndarray
    labels: np.ndarray | None = None
    symbols: np.ndarray | None = None

    def lookup(self, gene: str) -> str:
        """The name of ``gene`` given by name or by symbol (the name itself if unknown)."""
        if self.symbols is None or gene in set(self.names.tolist()):
            return gene
        hits = np.flatnonzero(self.symbols == gene)
        return str(self.names[hits[0]]) if len(hits) else gene

    def to_frame(self) -> pd.DataFrame:
        """The vectors as a DataFrame indexed by gene."""
        columns = [f"dim_{i}" for i in range(self.vectors.shape[1])]
        return pd.DataFrame(self.vectors, index=pd.Index(self.names, name="gene"), columns=columns)


def embed_genes(
    model: GeneAE,
    data: ad.AnnData | Prepared,
    *,
    layer: str | None = None,
    latent: np.ndarray | None = None,
    loadings: np.ndarray | None = None,
) -> GeneEmbedding:
    """The gene embedding of a fitted model on ``data``.

    Parameters
    ----------
    model
        A fitted :class:`~geneae.GeneAE`: a gene model or a sample model.
    data
        Samples x genes (an AnnData, preprocessed here) or a
        :class:`~geneae.prepared.Prepared` from the model.
    layer
        With an AnnData: use this layer as the data.
    latent
        Precomputed latent means of all rows of ``data`` (saves a forward pass).
    loadings
        A sample model's precomputed :meth:`~geneae.GeneAE.gene_loadings`.
    """
    from geneae.prepared import Prepared

    prepared = data if isinstance(data, Prepared) else model.preprocess(data, layer=layer)
    rows = prepared.data
    if model.config.data.genes_as_samples:
        if latent is None:
            latent = model.predict(prepared, reconstruction_rows=np.zeros(0, int)).latent
        names = np.asarray(rows.obs_names.astype(str))
        labels = rows.obs["label"].astype(str).to_numpy() if "label" in rows.obs else None
        return GeneEmbedding(
            names,
            np.asarray(latent),
            "latent",
            _variance(model, rows),
            labels,
            _symbols(rows.obs, names),
        )
    if loadings is None:
        if latent is None:
            latent = model.predict(prepared, reconstruction_rows=np.zeros(0, int)).latent
        loadings = model.gene_loadings(latent, seed=model.config.train.seed)
    names = np.asarray(model.genes, dtype=str)
    return GeneEmbedding(
        names,
        np.asarray(loadings),
        "loadings",
        _variance(model, rows),
        symbols=_symbols(rows.var, names),
    )


def _symbols(annotations: pd.DataFrame, names: np.ndarray) -> np.ndarray | None:
    """Another name per gene from the first annotation column that has one, else None."""
    for column in SYMBOL_COLUMNS:
        if column in annotations:
            values = annotations[column].astype(str).reindex(names).fillna("").to_numpy()
            if (values != "").any() and not np.array_equal(values, names):
                return values.astype(str)
    return None


def read_gene_embedding(run_dir: str | Path) -> GeneEmbedding:
    """The gene embedding a run stored in ``RUN_DIR/results.h5ad``.

    Runs written before gene embeddings were stored fall back to the signed loadings
    (``varm["geneae_loadings"]``) of a sample model.
    """
    import anndata as ad

    path = Path(run_dir) / "results.h5ad"
    if not path.is_file():
        raise ModelFileError(
            f"{path}: not found; pass a run directory written by `geneae train --out`."
        )
    results = ad.read_h5ad(path)
    slot = results.uns.get("geneae", {}).get("genes")
    if isinstance(slot, dict) and "embedding" in slot:
        labels, symbols = slot.get("labels"), slot.get("symbols")
        return GeneEmbedding(
            names=np.asarray(slot["names"]).astype(str),
            vectors=np.asarray(slot["embedding"], dtype=np.float64),
            source=str(slot.get("source", "latent")),
            variance=np.asarray(slot.get("variance", np.full(len(slot["names"]), np.nan))),
            labels=None if labels is None else np.asarray(labels).astype(str),
            symbols=None if symbols is None else np.asarray(symbols).astype(str),
        )
    if "geneae_loadings" in results.varm:
        g = results.n_vars
        return GeneEmbedding(
            names=np.asarray(results.var_names.astype(str)),
            vectors=np.asarray(results.varm["geneae_loadings"], dtype=np.float64),
            source="loadings",
            variance=np.full(g, np.nan),
        )
    raise ModelFileError(
        f"{path}: holds no gene embedding (uns['geneae']['genes'] or varm['geneae_loadings']); "
        "re-run `geneae train` to write one."
    )


def similar_genes(
    source: Any,
    gene: str,
    n: int = 20,
    *,
    data: ad.AnnData | None = None,
    layer: str | None = None,
) -> pd.DataFrame:
    """The ``n`` genes most similar to ``gene`` by cosine in a gene embedding.

    Parameters
    ----------
    source
        A run directory (its ``results.h5ad``), a :class:`GeneEmbedding`, a DataFrame of
        genes x dims indexed by gene, or a fitted :class:`~geneae.GeneAE` together with
        ``data`` (a gene model embeds the genes of ``data``; a sample model's loadings are
        taken at the latent codes of ``data``).
    gene
        The gene of interest, by name or by symbol (see :class:`GeneEmbedding`); a gene
        not in the embedding is an :class:`~geneae.errors.InputError` suggesting close
        names.
    n
        Neighbours returned (the gene itself excluded).
    data, layer
        The data to embed, with a model as ``source``.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene``, ``similarity`` (cosine in [-1, 1]) and, when the genes have
        symbols, ``symbol``; most similar first.
    """
    embedding = _as_embedding(source, data, layer)
    names = list(embedding.names)
    table = top_similar_genes(embedding.lookup(gene), n, loadings=embedding.vectors, genes=names)
    if embedding.symbols is not None:
        symbol = dict(zip(names, embedding.symbols, strict=True))
        table.insert(1, "symbol", [symbol[g] for g in table["gene"]])
    return table


def _as_embedding(source: Any, data: Any, layer: str | None) -> GeneEmbedding:
    if isinstance(source, GeneEmbedding):
        return source
    if isinstance(source, (str, Path)):
        return read_gene_embedding(source)
    if isinstance(source, pd.DataFrame):
        g = len(source)
        return GeneEmbedding(
            np.asarray(source.index.astype(str)),
            source.to_numpy(float),
            "latent",
            np.full(g, np.nan),
        )
    from geneae.model import GeneAE

    if isinstance(source, GeneAE):
        if data is None:
            raise InputError(
                "similar_genes with a model needs the data to embed (data=adata): a gene "
                "model embeds its genes from them, a sample model's loadings depend on them."
            )
        return embed_genes(source, data, layer=layer)
    raise InputError(
        "similar_genes takes a run directory, a GeneEmbedding, a genes x dims DataFrame or a "
        f"GeneAE with data; got {type(source).__name__}."
    )


def _variance(model: GeneAE, rows: ad.AnnData) -> np.ndarray:
    """Variance of each gene's log expression across the samples, before standardisation.

    From the preprocessor's fitted statistics where it standardised (the training genes);
    otherwise from the model input itself (a column of a sample model, a row of a gene model).
    """
    import scipy.sparse as sp

    gene_model = model.config.data.genes_as_samples
    names = rows.obs_names if gene_model else rows.var_names
    pre = model.preprocessor
    if pre is not None and pre.steps_ is not None and pre.steps_.scale and "std" in pre.stats_:
        std = pd.Series(pre.stats_["std"], index=pd.Index(pre.genes_, dtype=str))
        return (std.reindex(names.astype(str)) ** 2).to_numpy(dtype=np.float64)
    x = rows.X
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    return np.asarray(x, dtype=np.float64).var(axis=1 if gene_model else 0)
