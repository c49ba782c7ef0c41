"""The report's gene sections: top genes per latent dimension, and the gene embedding.

Plain values for the template (see :mod:`geneae.report.sections`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geneae.evaluate import top_genes
from geneae.report.formatting import fmt
from geneae.report.results import RESULTS, Results

__all__ = ["DIMS_PER_TABLE", "GENES_PER_DIM", "gene_embedding_body", "genes_body", "is_gene_model"]

GENES_PER_DIM = 10
DIMS_PER_TABLE = 8  # fits a printed page


def genes_body(results: Results) -> dict[str, Any]:
    """Tables of the genes that load most on each latent dimension, with their signs."""
    loadings = results.varm("geneae_loadings")
    if loadings is None:
        return {
            "note": f"{RESULTS} has no varm['geneae_loadings']: the model did not export gene "
            "loadings."
        }
    names = [str(g) for g in results.adata.var_names]
    table = top_genes(loadings, names, n=GENES_PER_DIM)
    dims = sorted(table["dim"].unique())
    tables = []
    for start in range(0, len(dims), DIMS_PER_TABLE):
        chunk = dims[start : start + DIMS_PER_TABLE]
        by_dim = {d: table[table["dim"] == d].set_index("rank") for d in chunk}
        ranks = sorted(table["rank"].unique())
        rows = []
        for r in ranks:
            cells = []
            for d in chunk:
                if r not in by_dim[d].index:
                    cells.append(None)
                    continue
                hit = by_dim[d].loc[r]
                loading = float(hit["loading"])
                cells.append(
                    {
                        "gene": str(hit["gene"]),
                        "loading": f"{loading:+#.3g}",
                        "sign": "pos" if loading >= 0 else "neg",
                    }
                )
            rows.append({"rank": int(r), "cells": cells})
        tables.append({"dims": [int(d) for d in chunk], "rows": rows})
    body: dict[str, Any] = {"tables": tables, "n_genes": GENES_PER_DIM}
    if is_gene_model(results):
        body["features_note"] = (
            "This model embeds genes (genes_as_samples): its features are the samples, so the "
            "table lists the samples that load most on each dimension. The genes are in the "
            "next section."
        )
    return body


def is_gene_model(results: Results) -> bool:
    """Whether the run embedded genes (``data.genes_as_samples``)."""
    data = results.config.get("data")
    return isinstance(data, dict) and bool(data.get("genes_as_samples"))


def gene_embedding_body(results: Results) -> dict[str, Any]:
    """The nearest genes of the most variable ones in the gene embedding."""
    slot = results.stored("genes")
    if slot is None or "embedding" not in slot:
        return {
            "note": f"{RESULTS} has no uns['geneae']['genes'] (the gene embedding, computed "
            "by geneae.tl.gene_embedding when a run is evaluated)."
        }
    names = np.atleast_1d(slot.get("names", [])).astype(str)
    variance = np.asarray(slot.get("variance", np.full(len(names), np.nan)), dtype=float)
    index = {n: i for i, n in enumerate(names)}
    symbols = slot.get("symbols")
    symbol = {}
    if symbols is not None:
        symbol = dict(zip(names, np.atleast_1d(symbols).astype(str), strict=False))

    def shown(name: str) -> str:
        other = symbol.get(name, "")
        return f"{name} ({other})" if other and other != name else name

    top = [str(g) for g in np.atleast_1d(slot.get("top", []))]
    neighbours = np.asarray(slot.get("neighbours", np.zeros((len(top), 0))))
    similarity = np.asarray(slot.get("similarity", np.zeros((len(top), 0))), dtype=float)
    rows = []
    for i, gene in enumerate(top):
        j = index.get(gene)
        rows.append(
            {
                "gene": shown(gene),
                "variance": fmt(float(variance[j])) if j is not None else "n/a",
                "neighbours": [
                    {"gene": shown(str(nb)), "similarity": f"{sim:.3f}"}
                    for nb, sim in zip(neighbours[i], similarity[i], strict=False)
                ],
            }
        )
    latent = str(slot.get("source")) == "latent"
    how = (
        "each gene's latent mean in this gene model (trained on the transposed matrix: each "
        "gene's standardised log expression across the samples)"
        if latent
        else "each gene's signed decoder loadings (how every latent dimension moves the gene)"
    )
    return {
        "intro": f"Genes are placed by {how}; similarity is the cosine of their vectors. "
        f"{len(names):,} genes. The table lists the nearest genes of the most variable ones "
        "(variance of log expression across the samples); ask for any gene with "
        "geneae similar-genes RUN GENE.",
        "rows": rows,
    }
