import base64
import json
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import geneae.report as report
from geneae import tl
from geneae.errors import ModelFileError
from geneae.report import RESULTS, SECTIONS, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr"}


def make_run_dir(root: Path, results_factory, *, name: str = "run", edit=None, **options) -> Path:
    """A run directory holding only results.h5ad, built by the tl functions (conftest)."""
    results, _ = results_factory(**options)
    if edit is not None:
        edit(results)
    run = root / name
    run.mkdir(parents=True)
    results.write_h5ad(run / RESULTS)
    return run


class ReportParser(HTMLParser):
    """Collects sections, headings, images, links and the metrics table's cells."""

    def __init__(self):
        super().__init__()
        self.sections: list[str] = []
        self.h2: dict[str, str] = {}
        self.images: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.metric_rows: list[tuple[str, list[tuple[str, str]]]] = []
        self.scripts = 0
        self._section: str | None = None
        self._figure: str | None = None
        self._in_h2 = False
        self._in_metrics = False
        self._row: tuple[str, list] | None = None
        self._cell: list | None = None
        self.text: dict[str, list[str]] = {}
        self.open_tags: list[str] = []
        self.mismatched: list[tuple[str, str | None]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in VOID:
            self.open_tags.append(tag)
        self._in_style = tag == "style"
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])
        if tag == "script":
            self.scripts += 1
        if tag == "section":
            self._section = a.get("id")
            self.sections.append(a.get("id"))
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "figure":
            self._figure = a.get("id")
        elif tag == "img":
            self.images.append(a | {"section": self._section, "figure": self._figure})
        elif tag == "table" and "metrics" in (a.get("class") or ""):
            self._in_metrics = True
        elif self._in_metrics and tag == "tr":
            self._row = ["", []]
        elif self._in_metrics and tag in ("td", "th") and self._row is not None:
            self._cell = [a.get("class") or "", ""]

    def handle_endtag(self, tag):
        top = self.open_tags.pop() if self.open_tags else None
        if top != tag:
            self.mismatched.append((tag, top))
        self._in_style = False
        if tag == "h2":
            self._in_h2 = False
        elif tag == "table":
            self._in_metrics = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            if not self._row[0]:
                self._row[0] = self._cell[1]
            else:
                self._row[1].append(tuple(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.metric_rows.append((self._row[0], self._row[1]))
            self._row = None

    def handle_data(self, data):
        if self._in_style:
            self.style += data
        if self._in_h2 and self._section:
            self.h2[self._section] = self.h2.get(self._section, "") + data
        if self._cell is not None:
            self._cell[1] += data
        if self._section:
            self.text.setdefault(self._section, []).append(data)


def parse(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def section_text(parser: ReportParser, sid: str) -> str:
    return " ".join(" ".join(parser.text.get(sid, [])).split())


def check_page(parser: ReportParser) -> None:
    """Well-formed (every element closed in order), self-contained, PNG data URIs only."""
    assert parser.mismatched == [] and parser.open_tags == []
    assert parser.sections == [sid for sid, _ in SECTIONS]
    assert parser.h2 == dict(SECTIONS)
    assert parser.scripts == 0
    assert "@media print" in parser.style
    for url in parser.urls:
        assert not url.startswith(("http", "//")), url
        assert url.startswith(("#", "data:image/png;base64,")), url
    for img in parser.images:
        assert img.get("alt", "").strip(), img
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_SIGNATURE)


def images_by_section(parser: ReportParser) -> dict[str, int]:
    counts: dict[str, int] = {}
    for img in parser.images:
        counts[img["section"]] = counts.get(img["section"], 0) + 1
    return counts


@pytest.fixture(scope="module")
def full_report(tmp_path_factory, results_factory):
    run = make_run_dir(tmp_path_factory.mktemp("full"), results_factory, methods=("pca", "tsne"))
    return run, write_report(run)


def test_full_report_sections_and_images(full_report):
    run, path = full_report
    assert path == run / "report.html"
    parser = parse(path)
    check_page(parser)
    # PCA and t-SNE maps (UMAP off): 3 pairs each; both confusion matrices, the cluster
    # stability and the responsibilities
    assert images_by_section(parser) == {
        "metrics": 1,
        "training": 1,
        "maps": 6,
        "reconstruction": 1,
        "latent": 1,
        "clusters": 4,
        "expression": 1,
    }
    pngs = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert len(pngs) == len(parser.images)
    embedded = {base64.b64decode(i["src"].split(",", 1)[1]) for i in parser.images}
    assert {(run / "figures" / p).read_bytes() for p in pngs} == embedded  # the same PNGs
    html = path.read_text(encoding="utf-8")
    assert "could not be drawn" not in html
    maps = section_text(parser, "maps")
    assert "UMAP maps are turned off" in maps
    assert "150 of the 200 samples" in maps  # the plotted subsample of tl.maps
    assert "The 2-D maps show 150 of them" in section_text(parser, "data")
    assert "2-D maps" in section_text(parser, "timings")
    assert "preset: null" in section_text(parser, "config")


def test_neighbour_maps_of_the_compared_spaces_only(tmp_path, results_factory):
    # The run's default: t-SNE / UMAP of the latent and the PCA baseline only; the input and
    # the reconstruction appear in the PCA maps, and the page says so instead of "lacks".
    run = make_run_dir(
        tmp_path,
        results_factory,
        methods=("pca", "tsne"),
        neighbour_spaces=("geneae", "pca"),
    )
    parser = parse(write_report(run))
    assert images_by_section(parser)["maps"] == 4  # 3 PCA pairs, 1 t-SNE pair
    maps = section_text(parser, "maps")
    assert "t-SNE draws the spaces compared" in maps
    assert "the geneae reconstruction and the original data are drawn in the PCA maps only" in maps
    assert "lacks" not in maps
    names = {p.name for p in (run / "figures").glob("map_*.png")}
    assert names == {
        "map_pca_reconstruction.png",
        "map_pca_latent.png",
        "map_pca_baseline.png",
        "map_tsne_baseline.png",
    }


def test_metrics_table_marks_better_value(full_report):
    run, path = full_report
    comparison = stored_metrics(run)["comparison"]
    rows = dict(parse(path).metric_rows)
    marked = 0
    for label, metric, higher in (
        ("ARI", "ari", True),
        ("MSE", "mse", False),
        ("Davies-Bouldin", "davies_bouldin", False),
    ):
        ours, theirs = comparison["geneae"][metric], comparison["pca"][metric]
        cells = rows[label]
        geneae_cell, pca_cell = cells[1], cells[2]
        if ours == theirs:
            continue
        expect_geneae = (ours > theirs) == higher
        better, worse = (geneae_cell, pca_cell) if expect_geneae else (pca_cell, geneae_cell)
        assert "better" in better[0] and "✓" in better[1]
        assert "better" not in worse[0] and "✓" not in worse[1]
        assert f"{(ours if expect_geneae else theirs):.3f}" in better[1]
        marked += 1
    assert marked >= 2
    assert "n/a" not in rows["ARI"][1][1]


def stored_metrics(run: Path) -> dict:
    import anndata

    return json.loads(anndata.read_h5ad(run / RESULTS).uns["geneae"]["metrics"])


def test_summary_states_numbers_from_metrics(full_report):
    run, path = full_report
    comparison = stored_metrics(run)["comparison"]
    text = section_text(parse(path), "summary")
    for metric in ("ari", "nmi", "mse"):
        assert f"{comparison['geneae'][metric]:.3f}" in text
        assert f"{comparison['pca'][metric]:.3f}" in text
    assert "3 of 4 latent dimensions are active" in text
    assert "geneae is better" in text or "PCA is better" in text or "mixed" in text


def test_signed_loadings_described_and_marked(full_report):
    _, path = full_report
    parser = parse(path)
    genes = section_text(parser, "genes")
    assert "positive (red): the gene rises as the dimension grows" in genes
    assert "negative (blue): the gene falls" in genes
    html = path.read_text(encoding="utf-8")
    assert '<span class="neg">-' in html and '<span class="pos">+' in html
    # Many dimensions make the table wider than the page: it scrolls in its own box.
    assert '<div class="scroll"><table class="grid genes">' in html
    assert ".scroll { overflow-x: auto" in html


def test_rerender_fits_nothing_and_draws_each_figure_once(full_report, monkeypatch):
    run, path = full_report
    images = len(parse(path).images)

    def forbidden(*args, **kwargs):
        raise AssertionError("the report must not compute")

    for name in ("maps", "histograms", "profiles", "embed_2d", "cluster_stability"):
        monkeypatch.setattr(tl, name, forbidden)
    import openTSNE
    import sklearn.cluster
    import sklearn.decomposition
    import umap

    import geneae.evaluate.stability

    monkeypatch.setattr(sklearn.cluster.KMeans, "fit", forbidden)
    monkeypatch.setattr(geneae.evaluate.stability, "repeat_clustering", forbidden)

    monkeypatch.setattr(openTSNE.TSNE, "fit", forbidden)
    monkeypatch.setattr(umap.UMAP, "fit", forbidden)
    monkeypatch.setattr(sklearn.decomposition.PCA, "fit", forbidden)
    monkeypatch.setattr(sklearn.decomposition.PCA, "fit_transform", forbidden)
    saved = []
    original = Figure.savefig

    def counting(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", counting)
    again = parse(write_report(run))
    check_page(again)
    assert len(again.images) == images == len(saved)
    assert "could not be drawn" not in path.read_text(encoding="utf-8")


def test_failed_rerender_keeps_previous_report(full_report, monkeypatch):
    run, path = full_report
    kept = path.read_bytes()
    figures = {p.name: p.read_bytes() for p in (run / "figures").glob("*.png")}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "render", broken)
    with pytest.raises(RuntimeError):
        write_report(run)
    assert path.read_bytes() == kept  # the old report survives a failed rendering
    assert {p.name: p.read_bytes() for p in (run / "figures").glob("*.png")} == figures
    assert not list(run.glob(".*.tmp")) and not list((run / "figures").glob(".*.tmp"))


def test_cluster_stability_shown_beside_the_clusters(full_report):
    import anndata

    run, path = full_report
    parser = parse(path)
    slot = anndata.read_h5ad(run / RESULTS).uns["geneae"]["stability"]
    ours = slot["geneae"]
    text = section_text(parser, "clusters")
    assert f"repeated {slot['repeats']} times" in text
    assert f"{ours['mean']:.3f}" in text and f"{slot['pca']['mean']:.3f}" in text
    assert f"ARI {ours['ari'].mean():.3f} on average" in text
    worst = int(np.nanargmin(ours["per_cluster"]))
    assert f"Least stable geneae cluster: {ours['clusters'][worst]}" in text
    assert "a dark square off the diagonal means two clusters were often merged" in text
    figure = [i for i in parser.images if i["figure"] == "fig-cluster_stability"]
    assert figure and figure[0]["section"] == "clusters"
    assert "co-clustering" in figure[0]["alt"]
    assert (run / "figures" / "cluster_stability.png").is_file()
    assert "cluster stability" in section_text(parser, "timings")
    rows = dict(parser.metric_rows)
    assert f"{stored_metrics(run)['comparison']['geneae']['cluster_stability']:.3f}" in str(
        rows["cluster stability"]
    )


def test_cluster_stability_turned_off_or_not_repeatable(tmp_path, results_factory):
    off = parse(write_report(make_run_dir(tmp_path, results_factory, name="off", stability=0)))
    check_page(off)
    assert "Cluster stability is turned off" in section_text(off, "clusters")
    assert not any(i["figure"] == "fig-cluster_stability" for i in off.images)

    def gmvae(results):
        metrics = json.loads(results.uns["geneae"]["metrics"])
        metrics["comparison"]["clustering"]["geneae"] = "gmvae"
        results.uns["geneae"]["metrics"] = json.dumps(metrics)
        del results.uns["geneae"]["stability"]["geneae"]

    mixture = parse(write_report(make_run_dir(tmp_path, results_factory, name="g", edit=gmvae)))
    check_page(mixture)
    assert "GMVAE's own mixture assignment" in section_text(mixture, "clusters")


def test_minimal_run_degrades_gracefully_and_rerenders(tmp_path, results_factory):
    run = make_run_dir(
        tmp_path,
        results_factory,
        labels=False,
        loadings=False,
        responsibilities=False,
        raw=False,
        history=False,
    )
    parser = parse(write_report(run))
    check_page(parser)
    assert "unsupervised only" in section_text(parser, "summary")
    assert "unsupervised only" in section_text(parser, "metrics")
    assert "uns['geneae']['history']" in section_text(parser, "training")
    assert "varm['geneae_loadings']" in section_text(parser, "genes")
    clusters = section_text(parser, "clusters")
    assert "No labels" in clusters and "only GMVAE runs" in clusters
    assert "['raw']" in section_text(parser, "expression")
    assert images_by_section(parser)["expression"] == 1  # the preprocessed values still
    rows = dict(parser.metric_rows)
    assert "ARI" not in rows and "silhouette" in rows
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "could not be drawn" not in html

    # Re-rendering replaces the report and the figures whole, with the same sections; a
    # stale figure of an earlier rendering (UMAP was on then) is removed.
    stale = run / "figures" / "map_umap_latent.png"
    stale.write_bytes(PNG_SIGNATURE)
    figures = sorted(p.name for p in (run / "figures").glob("*.png") if p != stale)
    again = parse(write_report(run))
    assert again.sections == parser.sections
    assert len(again.images) == len(parser.images)
    assert not stale.exists()
    assert sorted(p.name for p in (run / "figures").glob("*.png")) == figures
    assert not list(run.glob(".*.tmp")) and not list((run / "figures").glob(".*.tmp"))


def drop_computed(results):
    """A results file written before tl ran: no maps, histograms, profiles, stability; bad
    metrics."""
    for key in [k for k in results.obsm if k.startswith("map_")]:
        del results.obsm[key]
    for key in ("plotted", "geneae_stability", "pca_stability"):
        del results.obs[key]
    for key in ("maps", "histograms", "profiles", "stability", "config"):
        del results.uns["geneae"][key]
    results.uns["geneae"]["metrics"] = "{not json"


def test_missing_pieces_are_noted_not_invented(tmp_path, results_factory):
    run = make_run_dir(tmp_path, results_factory, edit=drop_computed)
    parser = parse(write_report(run))
    check_page(parser)
    assert "no 2-D maps" in section_text(parser, "maps")
    assert "uns['geneae']['profiles']" in section_text(parser, "reconstruction")
    assert "uns['geneae']['histograms']" in section_text(parser, "expression")
    assert "uns['geneae']['config']" in section_text(parser, "config")
    assert "No verdict: the metrics could not be read" in section_text(parser, "summary")
    assert "metrics could not be read" in section_text(parser, "timings")
    assert "uns['geneae']['stability']" in section_text(parser, "clusters")
    # Without metrics the latent figure falls back to the variance of the latent codes.
    assert "obsm['X_geneae']" in section_text(parser, "latent")
    assert set(images_by_section(parser)) == {"training", "latent", "clusters"}


def test_a_missing_map_space_is_named(tmp_path, results_factory):
    def edit(results):
        del results.obsm["map_pca_reconstruction"]

    parser = parse(write_report(make_run_dir(tmp_path, results_factory, edit=edit)))
    maps = section_text(parser, "maps")
    assert "obsm['map_pca_reconstruction']" in maps
    assert images_by_section(parser)["maps"] == 2  # latent and baseline pairs still drawn
    assert "t-SNE and UMAP maps are turned off" in maps


def test_text_from_the_file_is_escaped(tmp_path, results_factory):
    def edit(results):
        metrics = json.loads(results.uns["geneae"]["metrics"])
        metrics["data"]["path"] = '<img src="http://evil.example/x.png">'
        metrics["model"]["family"] = "<script>alert(1)</script>"
        results.uns["geneae"]["metrics"] = json.dumps(metrics)

    parser = parse(write_report(make_run_dir(tmp_path, results_factory, edit=edit)))
    check_page(parser)  # the path is shown as text, not as an image; no script element
    assert "evil.example" in section_text(parser, "data")
    assert "<script>alert(1)</script>" in section_text(parser, "summary")


@pytest.mark.parametrize("content", [None, b"not an h5ad file"])
def test_missing_or_unreadable_results_file(tmp_path, content):
    if content is not None:
        (tmp_path / RESULTS).write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        write_report(tmp_path)
    message = str(info.value)
    assert str(tmp_path / RESULTS) in message and "geneae train" in message
    assert not (tmp_path / "report.html").exists()
    with pytest.raises(ModelFileError):
        write_report(tmp_path / "does-not-exist")


def test_cli_report_without_results_is_one_line(tmp_path, capsys):
    from geneae.cli import main

    (tmp_path / "metrics.json").write_text("{}")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert RESULTS in err and "geneae train" in err


def test_template_is_packaged():
    templates = files("geneae.report") / "templates"
    assert (templates / "report.html.j2").is_file() and (templates / "report.css").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"report/templates/*"' in pyproject and '"jinja2>=3.1"' in pyproject


def test_the_data_sentence_names_what_the_rows_are():
    # A bulk run's report said "cells"; a gene model's called its 636 genes "cells" and
    # "a seeded subsample of 700" (700 being the samples).
    import anndata as ad

    from geneae.report.overview import data_body
    from geneae.report.results import Results

    genes = ad.AnnData(np.zeros((636, 700), dtype=np.float32))
    data = {"n_cells": 700, "n_genes": 765, "n_cells_model": 636, "n_genes_model": 700}
    body = data_body(
        Results(Path("run"), genes, metrics={"data": {**data, "genes_as_samples": True}})
    )
    assert body["cells"].startswith("Metrics and figures use all 636 genes x 700 samples")
    rows = dict(body["data_rows"])
    assert rows["genes the model encodes"] == "636" and rows["samples the model reads"] == "700"
    bulk = ad.AnnData(np.zeros((120, 500), dtype=np.float32))
    data = {"n_cells": 123, "n_genes": 900, "n_cells_model": 120, "n_genes_model": 500}
    body = data_body(Results(Path("run"), bulk, metrics={"data": data}))
    assert body["cells"].startswith("Metrics and figures use all 120 samples x 500 genes")


def test_a_report_rendered_from_a_relative_path_names_the_run_absolutely(full_report, monkeypatch):
    # `geneae report runs/x` named "runs/x" where the training run had named its full path.
    run, _ = full_report
    monkeypatch.chdir(run.parent)
    path = write_report(Path(run.name))
    assert f"<code>{run.resolve()}</code>" in path.read_text(encoding="utf-8")
