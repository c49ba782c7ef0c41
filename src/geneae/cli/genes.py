"""``geneae similar-genes``: the nearest genes of a gene in a run's gene embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from geneae.cli.commands import _refuse_existing, app, out


@app.command("similar-genes")
def similar_genes(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (with results.h5ad)")],
    gene: Annotated[str, typer.Argument(help="the gene of interest")],
    n: Annotated[int, typer.Option("-n", "--n", min=1, help="neighbours to list")] = 20,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="also write the table as CSV")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
) -> None:
    """The genes most similar to GENE: cosine of their vectors in the run's gene embedding.

    A gene model (train --genes-as-samples) embeds each gene from its expression across the
    samples; a sample model places genes by their signed decoder loadings.
    Example: geneae similar-genes runs/gtex_genes TP53 -n 20
    """
    from geneae.genes import read_gene_embedding
    from geneae.genes import similar_genes as find

    if out_file is not None:
        _refuse_existing(out_file, overwrite)
    embedding = read_gene_embedding(run_dir)
    table = find(embedding, gene, n)
    how = "latent space (gene model)" if embedding.source == "latent" else "decoder loadings"
    shown = Table(title=f"nearest genes of {gene}", caption=f"cosine in the {how}")
    shown.add_column("rank", justify="right")
    shown.add_column("gene")
    if "symbol" in table:
        shown.add_column("symbol")
    shown.add_column("similarity", justify="right")
    for rank, row in enumerate(table.to_dict("records"), start=1):
        symbol = [str(row["symbol"])] if "symbol" in table else []
        shown.add_row(str(rank), str(row["gene"]), *symbol, f"{row['similarity']:.4f}")
    out.print(shown)
    if out_file is not None:
        from geneae._atomic import atomic_path

        with atomic_path(out_file) as tmp:
            table.to_csv(tmp, index=False)
        out.print(f"table: {out_file}")
