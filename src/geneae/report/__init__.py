"""One self-contained HTML report per run: metrics beside a PCA baseline, and figures.

``write_report(run_dir)`` reads the run directory written by training (``config.yaml``,
``metrics.json``, ``history.csv``, ``report_data.h5ad``, optionally ``top_genes.csv``),
(re)draws every figure into ``run_dir/figures/*.png`` and writes ``run_dir/report.html`` with
the images embedded as data URIs, inline CSS and no script, so the file can be mailed,
archived or printed on its own.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from geneae._atomic import write_text
from geneae.report.figures import draw_figures
from geneae.report.html import SECTIONS, render
from geneae.report.rundata import RunData, load_run

logger = logging.getLogger(__name__)

REPORT = "report.html"
FIGURES = "figures"


def write_report(run_dir: str | Path) -> Path:
    """Draw the figures of a run and write its HTML report.

    Parameters
    ----------
    run_dir
        A run directory. Missing optional pieces (labels, loadings, responsibilities, the
        history, even ``report_data.h5ad``) make the corresponding sections say what is
        missing; nothing is invented.

    Returns
    -------
    pathlib.Path
        ``run_dir/report.html``. It and every figure are written atomically: an interrupted
        run leaves the previous files intact.
    """
    start = time.perf_counter()
    run = load_run(run_dir)
    figures_dir = run.run_dir / FIGURES
    figs = draw_figures(run, figures_dir)
    _remove_stale(figures_dir, keep=figs.names)
    path = run.run_dir / REPORT
    write_text(path, render(run, figs, version=_version()))
    logger.info("report written to %s in %.1f s", path, time.perf_counter() - start)
    return path


# Names of every figure this package can draw; stale ones (from an earlier rendering, e.g.
# with UMAP since turned off) are removed so figures/ always matches the report.
def _remove_stale(figures_dir: Path, keep: set[str]) -> None:
    if not figures_dir.is_dir():
        return
    ours = (
        "metrics_bars",
        "training_curves",
        "map_",
        "reconstruction_profiles",
        "latent_usage",
        "confusion_",
        "clusters_geneae_vs_pca",
        "responsibilities",
        "expression_histograms",
    )
    for png in figures_dir.glob("*.png"):
        if png.stem not in keep and png.stem.startswith(ours):
            png.unlink()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("geneae")
    except Exception:  # noqa: BLE001 - the version is decoration only
        return ""


__all__ = ["SECTIONS", "RunData", "load_run", "write_report"]
