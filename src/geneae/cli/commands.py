"""The commands of ``geneae``: each parses its flags and calls the library, nothing more."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from geneae.cli.flags import TRAIN_FLAGS, build_config, given_settings, with_config_flags
from geneae.cli.tables import compare_table, summary_table
from geneae.config import RunConfig
from geneae.errors import ModelFileError

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="geneae",
    help="Autoencoders for gene-expression data: embed, cluster, visualise and denoise.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()

COMPARE_FLAGS = {k: TRAIN_FLAGS[k] for k in ("labels", "epochs", "seed", "quiet")}
LabelsFile = Annotated[
    Path | None,
    typer.Option(
        "--labels-file",
        help="labels for evaluation only: one per line in sample order, or a CSV/TSV of "
        "sample names and labels (a sheet of several columns: --labels names the column)",
    ),
]
GenesFile = Annotated[
    Path | None,
    typer.Option(
        "--genes-file",
        help="gene names, one per line in column order, for files without them (npy, npz, "
        "tables without gene identifiers); or an annotation table keyed by the file's gene "
        "IDs, e.g. GEO's GPLxxx.txt, naming them by its 'Gene Symbol' column",
    ),
]


def _show_version(value: bool) -> None:
    if value:
        from geneae import __version__

        out.print(f"geneae {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """The options of ``geneae`` itself, before a command (its help text is ``app``'s)."""


# -- output helpers -------------------------------------------------------------------------
def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder; give --out a file name, e.g. {path}/out.h5ad.")
    if path.exists() and not overwrite:
        raise ModelFileError(
            f"{path}: exists; pass --overwrite to replace it or choose another --out."
        )


# -- commands ------------------------------------------------------------------------------
def training_line(metrics: dict[str, Any]) -> str:
    """One line on what training did and what it took, from metrics.json's sections.

    The time per epoch leaves the clustering phase out (its 20 or more epochs would read as
    the cost of a short run's epochs); the phase's seconds are said beside it, for an
    ensemble added over its members (which may train side by side, so the sum can exceed
    the training's wall time).
    """
    t, m = metrics.get("timings", {}), metrics.get("model", {})
    epochs = m.get("epochs_trained")
    ensemble = isinstance(epochs, list)  # one count per member
    counts = ", ".join(map(str, epochs)) if ensemble else ""
    what = f"{len(epochs)} members ({counts} epochs)" if ensemble else f"{epochs} epochs"
    details = []
    if "seconds_per_epoch" in t:
        of = " of a member" if ensemble else ""
        details.append(f"{t['seconds_per_epoch']:.3f} s per epoch{of}")
    phase = m.get("cluster_phase", {}).get("seconds")
    if phase is not None:
        summed = " added over the members" if ensemble else ""
        details.append(f"clustering phase{'s' if ensemble else ''} {phase:.1f} s{summed}")
    inside = f" ({'; '.join(details)})" if details else ""
    return f"trained {what} in {t.get('train_s', 0):.1f} s{inside} on {m.get('device')}"


@app.command()
def info(
    data: Annotated[Path, typer.Argument(help="expression file or 10x directory")],
    labels: Annotated[str | None, typer.Option(help="obs column or labels file")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="force a format")] = None,
    transpose: Annotated[
        bool | None, typer.Option("--transpose/--no-transpose", help="genes are rows")
    ] = None,
    genes_file: GenesFile = None,
) -> None:
    """Describe a data file: cells, genes, value type, sparsity, labels, sample annotations.

    Example: geneae info pbmc.h5ad
    """
    from geneae.io import format_summary, read, summarize

    adata = read(data, fmt=fmt, labels=labels, transpose=transpose, genes=genes_file)
    out.print(format_summary(summarize(adata), str(data)))


@app.command()
@with_config_flags(TRAIN_FLAGS)
def train(
    data: Annotated[
        Path,
        typer.Argument(help="expression file (h5ad, 10x, loom, h5, csv/tsv, gct, GEO matrix, npy)"),
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="run directory to create")],
    config: Annotated[
        Path | None, typer.Option("--config", help="run YAML (e.g. a saved RUN_DIR/config.yaml)")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="named preset, e.g. scvi-like, dca-zinb, deep-ae")
    ] = None,
    labels_file: LabelsFile = None,
    genes_file: GenesFile = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="continue the interrupted run of --out (same data; its own settings, which "
            "flags may repeat but not change)"
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="replace the run in --out, or write into a folder of other files (only "
            "geneae's files are replaced; others are kept)"
        ),
    ] = False,
    keep_checkpoints: Annotated[
        bool,
        typer.Option(help="keep the resume checkpoints in the finished run (default: deleted)"),
    ] = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Train an autoencoder, evaluate it against PCA and write the report.

    Every setting not given follows the data; the resolved settings are written to
    RUN_DIR/config.yaml, which --config reproduces. The run is written into RUN_DIR.partial
    and moved to RUN_DIR when complete; a killed run continues with --resume.
    Example: geneae train pbmc.h5ad --out runs/pbmc --preset scvi-like --labels cell_type
    """
    from geneae.train.member_process import spares

    cfg = build_config(config, preset, overrides)
    # The members' processes import torch beside this one's imports and reading.
    with spares(cfg):
        from geneae.run import train_run

        result = train_run(
            data,
            out_dir,
            cfg,
            overwrite=overwrite,
            resume=resume,
            labels_file=labels_file,
            genes_file=genes_file,
            given=given_settings(config, preset, overrides) if resume else None,
            keep_checkpoints=keep_checkpoints,
        )
    if result.model.is_global_zero:
        _print_run(result)


def _print_run(result: Any) -> None:
    out.print(
        summary_table(
            result.metrics, f"geneae vs PCA on {result.metrics.get('data', {}).get('path', '')}"
        )
    )
    out.print(training_line(result.metrics))
    out.print(f"run directory: {result.run_dir}")
    report = result.run_dir / "report.html"
    if report.exists():
        out.print(f"report: {report}")


@app.command()
def encode(
    run_dir: Annotated[Path, typer.Argument(help="a run / model directory")],
    data: Annotated[Path, typer.Argument(help="expression file to encode")],
    out_file: Annotated[Path, typer.Option("--out", help="output .h5ad, .csv, .tsv or .npy")],
    genes_file: GenesFile = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
) -> None:
    """Write the latent means of new data (preprocessed and gene-aligned as in training).

    Example: geneae encode runs/pbmc new_sample.h5ad --out new_latent.csv
    """
    import numpy as np

    from geneae.io import write_matrix
    from geneae.model import GeneAE
    from geneae.run import load_data, naming_file

    _refuse_existing(out_file, overwrite)
    model = GeneAE.load(run_dir)
    adata = load_data(data, model.config, with_labels=False, genes=genes_file)
    # The rows are the outputs' own (the genes, for a model trained with genes as samples).
    with naming_file(data):
        outputs = model.predict(
            adata, layer=model.config.data.layer, reconstruction_rows=np.zeros(0, int)
        )
    latent = outputs.latent
    columns = [f"latent_{i}" for i in range(latent.shape[1])]
    # The samples' annotations travel into an .h5ad (not a gene model's rows: the genes).
    obs = None if model.config.data.genes_as_samples else adata.obs
    write_matrix(latent, out_file, obs_names=list(outputs.obs_names), columns=columns, obs=obs)
    out.print(f"wrote {latent.shape[0]} x {latent.shape[1]} latent means to {out_file}")


@app.command()
def reconstruct(
    run_dir: Annotated[Path, typer.Argument(help="a run / model directory")],
    data: Annotated[Path, typer.Argument(help="expression file to denoise")],
    out_file: Annotated[Path, typer.Option("--out", help="output .h5ad, .csv, .tsv or .npy")],
    space: Annotated[
        str,
        typer.Option(
            help="values: the data's own units (expected counts for count data) | input: "
            "the model's preprocessed input | target: what the model reconstructs"
        ),
    ] = "values",
    genes_file: GenesFile = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
) -> None:
    """Write the denoised (reconstructed) matrix of the modelled genes.

    The file says what its values are: uns['geneae']['values'] in an h5ad file, the header
    of the row-name column of a CSV/TSV table (e.g. "values: expected counts"). A file the
    model reads out of core is reconstructed chunk by chunk into an .h5ad or .npy file.
    Example: geneae reconstruct runs/pbmc pbmc.h5ad --out denoised.h5ad
    """
    from geneae.model import GeneAE
    from geneae.model_outputs import SPACES
    from geneae.run import load_data, naming_file

    if space not in SPACES:
        raise typer.BadParameter(
            f"{space!r} is not one of {', '.join(SPACES)}.", param_hint="--space"
        )
    _refuse_existing(out_file, overwrite)
    model = GeneAE.load(run_dir)
    adata = load_data(data, model.config, with_labels=False, genes=genes_file)
    with naming_file(data):
        n_rows, n_genes = model.reconstruct_to(
            adata, out_file, layer=model.config.data.layer, space=space
        )
    units = model.reconstruction_units(space)
    out.print(f"wrote {n_rows} x {n_genes} denoised values ({units}) to {out_file}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a run / model directory")],
    data: Annotated[Path, typer.Argument(help="expression file (with labels for ARI / NMI)")],
    labels: Annotated[
        str | None,
        typer.Option(
            help="column or file with known labels (default: the training label column or "
            "one named label, cell_type, ... when the file has one; none needed)"
        ),
    ] = None,
    labels_file: LabelsFile = None,
    genes_file: GenesFile = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="metrics JSON (default RUN_DIR/evaluate_<data>.json)"),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out file")] = False,
) -> None:
    """Evaluate a trained model on any dataset, side by side with PCA.

    Example: geneae evaluate runs/pbmc other_pbmc.h5ad --labels cell_type
    """
    from geneae.model import GeneAE
    from geneae.run import evaluate_file, load_data, naming_file
    from geneae.saved_model import write_json

    target = out_file or run_dir / f"evaluate_{data.name.split('.')[0]}.json"
    _refuse_existing(target, overwrite)
    model = GeneAE.load(run_dir)
    adata = load_data(
        data, model.config, labels=labels_file or labels, with_labels=False, genes=genes_file
    )
    with naming_file(data):
        metrics = evaluate_file(model, adata)
    metrics.setdefault("data", {})["path"] = str(data)
    write_json(target, metrics)
    out.print(summary_table(metrics, f"geneae vs PCA on {data}"))
    out.print(f"metrics: {target}")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """Re-render RUN_DIR/report.html (and its figures) from the files of a run.

    Example: geneae report runs/pbmc
    """
    from geneae.report import write_report

    if not (run_dir / "metrics.json").is_file():
        raise ModelFileError(
            f"{run_dir}: no metrics.json; is this a run directory of `geneae train`?"
        )
    path = write_report(run_dir)
    out.print(f"report: {path}")


@app.command()
@with_config_flags(COMPARE_FLAGS)
def compare(
    data: Annotated[Path, typer.Argument(help="expression file")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory for the runs and the table")],
    grid: Annotated[
        str, typer.Option(help='e.g. "latent_dim=10,50 model=ae,vae likelihood=mse,masked_mse"')
    ],
    config: Annotated[Path | None, typer.Option("--config", help="base run YAML")] = None,
    preset: Annotated[str | None, typer.Option(help="base preset")] = None,
    labels_file: LabelsFile = None,
    genes_file: GenesFile = None,
    overwrite: Annotated[bool, typer.Option(help="replace existing runs in --out")] = False,
    *,
    overrides: dict[str, Any],
) -> None:
    """Train every combination of a grid; print ARI and MSE beside PCA, write table and figure.

    The MSE is given over all entries and over the non-zero entries of the model input
    (columns mse_all_entries, mse_nonzero_entries of comparison.csv). Each setting is a run
    of its own in --out, with its report unless the base YAML says evaluate.report: false
    (seconds per setting saved on a large grid; the comparison figure needs no report).

    Example: geneae compare pbmc.h5ad --out cmp --grid "latent_dim=10,50 likelihood=mse,masked_mse"
    """
    import pandas as pd

    from geneae.compare import parse_grid, run_grid

    axes = parse_grid(grid)
    base = build_config(config, preset, overrides)
    n = len(list(itertools.product(*axes.values())))
    out.print(f"{n} runs: {', '.join(f'{k} in {v}' for k, v in axes.items())}")
    table_path = run_grid(
        data,
        out_dir,
        base,
        axes,
        overwrite=overwrite,
        labels_file=labels_file,
        genes_file=genes_file,
        echo=out.print,
    )
    title = "geneae vs PCA of as many components (MSE in the model's input space)"
    out.print(compare_table(pd.read_csv(table_path), title))
    out.print(f"table: {table_path}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="where to write the demo run")] = Path(
        "geneae_demo"
    ),
    epochs: Annotated[int | None, typer.Option(help="maximum epochs")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """The main job on the bundled real 10x PBMC subset (2,100 cells, 8 labelled types).

    Trains the default count model, evaluates it against PCA, writes the report.
    Example: geneae demo --out demo_run
    """
    from geneae import datasets
    from geneae.run import train_run

    if (out_dir / "report.html").exists() or (out_dir / "config.yaml").exists():
        overwrite = True  # a previous demo's output, regenerated
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise ModelFileError(
            f"{out_dir}: exists and is not a geneae demo run; choose another --out."
        )
    else:
        overwrite = False
    adata = datasets.pbmc_10x()
    overrides: dict[str, object] = {"train.max_epochs": epochs}
    if quiet:
        overrides["train.quiet"] = True
    cfg = RunConfig().updated({k: v for k, v in overrides.items() if v is not None})
    out.print(f"geneae demo: {adata.n_obs} PBMCs x {adata.n_vars} genes (10x Genomics, bundled)")
    result = train_run("bundled:pbmc_10x", out_dir, cfg, adata=adata, overwrite=overwrite)
    _print_run(result)
