"""One self-contained HTML report per run, rendered from the run's results file alone.

``write_report(run_dir)`` reads ``run_dir/results.h5ad`` (see ``docs/results.md``), draws
every figure with :mod:`geneae.pl` from the stored slots (no PCA, t-SNE, UMAP or clustering
is fitted here), renders the Jinja2 template ``templates/report.html.j2`` with the images
embedded as data URIs, inline CSS and no script, so the page can be mailed, archived or
printed on its own, and writes ``run_dir/report.html`` and ``run_dir/figures/*.png``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

import jinja2

from geneae._atomic import write_bytes, write_text
from geneae.report.figures import FigureSet, draw_figures
from geneae.report.results import RESULTS, Results, load_results
from geneae.report.sections import SECTIONS, sections

logger = logging.getLogger(__name__)

REPORT = "report.html"
FIGURES = "figures"
TEMPLATE = "report.html.j2"


def write_report(run_dir: str | Path, *, location: str | Path | None = None) -> Path:
    """Draw the figures of a run and write its HTML report.

    Parameters
    ----------
    run_dir
        A run directory holding ``results.h5ad``. Pieces missing from that file (labels,
        loadings, responsibilities, the history, a map method, ...) make the corresponding
        sections say what is missing; nothing is invented.
    location
        Where the run will be read from, if not ``run_dir`` (a run is written in a staging
        directory and then moved into place): the report names this folder.

    Returns
    -------
    pathlib.Path
        ``run_dir/report.html``. It and every figure are written atomically: an interrupted
        run leaves the previous files intact.

    Raises
    ------
    geneae.errors.ModelFileError
        ``run_dir`` is not a directory, or ``results.h5ad`` is missing or unreadable (the
        message names the file and says to re-run ``geneae train``).
    """
    start = time.perf_counter()
    results = load_results(run_dir)
    figs = draw_figures(results)
    html = render(results, figs, version=_version(), location=location)
    figures_dir = results.run_dir / FIGURES
    for item in figs.items:
        write_bytes(figures_dir / f"{item.name}.png", item.png)
    remove_stale(figures_dir, keep={item.name for item in figs.items})
    path = results.run_dir / REPORT
    write_text(path, html)
    logger.info("report written to %s in %.1f s", path, time.perf_counter() - start)
    return path


def render(
    results: Results, figs: FigureSet, *, version: str = "", location: str | Path | None = None
) -> str:
    """The complete HTML document for ``results`` with the figures of ``figs``."""
    # Absolute, as a training run names it: `geneae report runs/x` re-renders the same page.
    run_dir = Path(os.path.abspath(location if location is not None else results.run_dir))
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("geneae.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template(TEMPLATE).render(
        title=f"geneae report — {run_dir.name}",
        stamp=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=version,
        run_dir=str(run_dir),
        sections=sections(results, figs),
    )


# Names of every figure this package can draw; stale ones (from an earlier rendering, e.g.
# with UMAP since turned off) are removed so figures/ always matches the report.
_OURS = (
    "metrics_bars",
    "training_curves",
    "map_",
    "reconstruction_profiles",
    "latent_usage",
    "confusion_",
    "clusters_geneae_vs_pca",
    "cluster_stability",
    "responsibilities",
    "expression_histograms",
    "gene_map",
)


def remove_stale(figures_dir: Path, keep: set[str]) -> None:
    """Delete the figures geneae drew earlier that are not in ``keep`` (names, no suffix)."""
    if not figures_dir.is_dir():
        return
    for png in figures_dir.glob("*.png"):
        if png.stem not in keep and png.stem.startswith(_OURS):
            png.unlink()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("geneae")
    except Exception:  # noqa: BLE001 - the version is decoration only
        return ""


__all__ = ["RESULTS", "SECTIONS", "Results", "load_results", "render", "write_report"]
