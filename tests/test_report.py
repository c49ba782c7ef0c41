import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from geneae.config import RunConfig
from geneae.errors import ModelFileError
from geneae.evaluate import compare_with_pca, latent_usage, top_genes
from geneae.report import SECTIONS, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run_dir(
    root: Path,
    *,
    n: int = 200,
    g: int = 60,
    d: int = 4,
    k: int = 4,
    labels: bool = True,
    loadings: bool = True,
    responsibilities: bool = True,
    raw: bool = True,
    history: bool = True,
    tsne: bool = False,
    umap: bool = False,
    seed: int = 0,
) -> Path:
    """A small but complete run directory in the layout the training code writes."""
    rng = np.random.default_rng(seed)
    run = root / "run"
    run.mkdir(parents=True)
    groups = rng.integers(0, k, size=n)
    names = np.array(["T cell", "B cell", "NK", "monocyte", "DC", "platelet"])[:k]
    y = names[groups]
    centres = rng.normal(scale=2.5, size=(k, d))
    z = centres[groups] + rng.normal(scale=0.6, size=(n, d))
    w = rng.normal(scale=0.6, size=(d, g))
    counts = rng.poisson(np.exp(np.clip(z @ w / 2, -3, 3)))
    lib = np.maximum(counts.sum(axis=1, keepdims=True), 1)
    x = np.log1p(counts / lib * 1e3)
    x_hat = np.maximum(x + rng.normal(scale=0.2, size=x.shape), 0)
    qz_var = np.full((n, d), 0.2)
    qz_var[:, -1] = 1.0
    latent = z.copy()
    latent[:, -1] = rng.normal(scale=0.02, size=n)  # a collapsed dimension

    result = compare_with_pca(
        x, latent, x_hat, y if labels else None, seed=seed, n_clusters=None if labels else k
    )
    comparison = result.metrics
    arrays = {"pca_embedding": result.pca_embedding, "clusters": result.clusters}
    usage = latent_usage(latent, qz_var)
    cfg = RunConfig().updated({"evaluate.tsne": tsne, "evaluate.umap": umap})
    (run / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    data = {
        "path": "/data/example.h5ad",
        "n_cells": n,
        "n_genes": g + 40,
        "value_type": "raw counts",
        "n_genes_model": g,
    }
    if labels:
        data["labels"] = {str(c): int((y == c).sum()) for c in names}
    metrics = {
        "comparison": comparison,
        "latent_usage": usage,
        "likelihood": {"val_elbo": -812.5, "val_reconstruction": 790.1, "val_kl": 22.4},
        "timings": {
            "read_s": 0.4,
            "preprocess_s": 1.2,
            "train_s": 75.3,
            "seconds_per_epoch": 0.75,
            "evaluate_s": 3.1,
        },
        "data": data,
        "model": {
            "family": "vae",
            "likelihood": "nb",
            "latent_dim": d,
            "n_parameters": 12345,
            "epochs_trained": 30,
            "best_epoch": 27,
            "device": "cpu",
        },
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    if history:
        epochs = np.arange(1, 31)
        frame = pd.DataFrame(
            {
                "epoch": epochs,
                "train_loss": 900 / np.sqrt(epochs),
                "val_loss": 950 / np.sqrt(epochs) + 5,
                "train_reconstruction": 880 / np.sqrt(epochs),
                "val_reconstruction": 920 / np.sqrt(epochs),
                "train_kl": 20 + np.log(epochs),
                "val_kl": 21 + np.log(epochs),
                "train_elbo": -900 / np.sqrt(epochs),
                "val_elbo": -950 / np.sqrt(epochs),
                "lr": np.where(epochs < 20, 1e-3, 5e-4),
                "kl_weight": np.minimum(epochs / 10, 1),
                "mask_rate": np.nan,
            }
        )
        frame.to_csv(run / "history.csv", index=False)

    adata = anndata.AnnData(X=sp.csr_matrix(x.astype(np.float32)))
    adata.obs_names = [f"cell{i}" for i in range(n)]
    adata.var_names = [f"GENE{j}" for j in range(g)]
    adata.layers["geneae_denoised"] = x_hat.astype(np.float32)
    if raw:
        adata.layers["raw"] = sp.csr_matrix(counts.astype(np.float32))
    adata.obsm["X_geneae"] = latent
    adata.obsm["X_pca"] = arrays["pca_embedding"]
    if labels:
        adata.obs["label"] = pd.Categorical(y)
    adata.obs["geneae_cluster"] = pd.Categorical(arrays["clusters"]["geneae"].astype(str))
    adata.obs["pca_cluster"] = pd.Categorical(arrays["clusters"]["pca"].astype(str))
    if responsibilities:
        logits = 4 * np.eye(k)[groups] + rng.normal(size=(n, k))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        adata.obsm["geneae_responsibilities"] = probs
    if loadings:
        adata.varm["geneae_loadings"] = w.T
        adata.uns["geneae_latent_var"] = latent.var(axis=0)
        adata.uns["geneae_latent_kl"] = np.asarray(usage["kl"])
    adata.write_h5ad(run / "report_data.h5ad")
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
        self._in_h2 = False
        self._in_metrics = False
        self._row: tuple[str, list] | None = None
        self._cell: list | None = None
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
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
        elif tag == "img":
            self.images.append(a | {"section": self._section})
        elif tag == "table" and "metrics" in (a.get("class") or ""):
            self._in_metrics = True
        elif self._in_metrics and tag == "tr":
            self._row = ["", []]
        elif self._in_metrics and tag in ("td", "th") and self._row is not None:
            self._cell = [a.get("class") or "", ""]

    def handle_endtag(self, tag):
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
        if self._in_h2 and self._section:
            self.h2[self._section] = self.h2.get(self._section, "") + data
        if self._cell is not None:
            self._cell[1] += data
        if self._section:
            self.text.setdefault(self._section, []).append(data)


def parse(path: Path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def section_text(parser: ReportParser, sid: str) -> str:
    return " ".join(" ".join(parser.text.get(sid, [])).split())


def check_self_contained(parser: ReportParser) -> None:
    assert parser.scripts == 0
    for url in parser.urls:
        assert not url.startswith(("http", "//")), url
        assert url.startswith(("#", "data:image/png;base64,")), url
    for img in parser.images:
        assert img.get("alt", "").strip(), img
        src = img["src"]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_SIGNATURE)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run = make_run_dir(tmp_path_factory.mktemp("full"), tsne=True)
    return run, write_report(run)


def test_full_report_sections_and_images(full_report):
    run, path = full_report
    assert path == run / "report.html"
    parser = parse(path)
    assert parser.sections == [sid for sid, _ in SECTIONS]
    assert parser.h2 == dict(SECTIONS)
    check_self_contained(parser)
    by_section = {}
    for img in parser.images:
        by_section[img["section"]] = by_section.get(img["section"], 0) + 1
    # PCA and t-SNE maps (UMAP off): 3 pairs each; both confusion matrices + responsibilities
    assert by_section == {
        "metrics": 1,
        "training": 1,
        "maps": 6,
        "reconstruction": 1,
        "latent": 1,
        "clusters": 3,
        "expression": 1,
    }
    pngs = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert len(pngs) == len(parser.images)
    assert all((run / "figures" / p).read_bytes().startswith(PNG_SIGNATURE) for p in pngs)
    html = path.read_text(encoding="utf-8")
    assert "could not be drawn" not in html
    assert "UMAP maps are turned off" in section_text(parser, "maps")
    assert "GENE" in section_text(parser, "genes")  # top genes table from the loadings


def test_metrics_table_marks_better_value(full_report):
    run, path = full_report
    comparison = json.loads((run / "metrics.json").read_text())["comparison"]
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


def test_summary_states_numbers_from_metrics(full_report):
    run, path = full_report
    comparison = json.loads((run / "metrics.json").read_text())["comparison"]
    text = section_text(parse(path), "summary")
    for metric in ("ari", "nmi", "mse"):
        assert f"{comparison['geneae'][metric]:.3f}" in text
        assert f"{comparison['pca'][metric]:.3f}" in text
    assert "3 of 4 latent dimensions are active" in text


def test_failed_rerender_keeps_previous_report(full_report, monkeypatch):
    run, path = full_report
    kept = path.read_bytes()
    import geneae.report as report
    from geneae.report.figures import FigureSet

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    # skip the drawing (tested elsewhere) and fail while rendering the page
    monkeypatch.setattr(report, "draw_figures", lambda run, d: FigureSet(d))
    monkeypatch.setattr(report, "render", broken)
    with pytest.raises(RuntimeError):
        write_report(run)
    assert path.read_bytes() == kept  # the old report survives a failed rendering
    assert not list(run.glob(".*.tmp")) and not list((run / "figures").glob(".*.tmp"))


def test_minimal_run_degrades_gracefully_and_rerenders(tmp_path):
    run = make_run_dir(
        tmp_path, labels=False, loadings=False, responsibilities=False, raw=False, history=False
    )
    parser = parse(write_report(run))
    assert parser.sections == [sid for sid, _ in SECTIONS]
    assert parser.h2 == dict(SECTIONS)
    check_self_contained(parser)
    assert "unsupervised only" in section_text(parser, "summary")
    assert "unsupervised only" in section_text(parser, "metrics")
    assert "history.csv not found" in section_text(parser, "training")
    assert "loadings" in section_text(parser, "genes")
    clusters = section_text(parser, "clusters")
    assert "No labels" in clusters and "only GMVAE runs" in clusters
    assert "layers['raw']" in section_text(parser, "expression")
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


def test_top_genes_csv_is_used_and_text_escaped(tmp_path):
    run = make_run_dir(tmp_path, loadings=False, responsibilities=False)
    w = np.eye(60, 4) * np.arange(1, 61)[:, None]
    top_genes(w, [f"MYGENE{i}" for i in range(60)]).to_csv(run / "top_genes.csv", index=False)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["data"]["path"] = '<img src="http://evil.example/x.png">'
    (run / "metrics.json").write_text(json.dumps(metrics))
    parser = parse(write_report(run))
    assert "MYGENE" in section_text(parser, "genes")
    check_self_contained(parser)  # the path is shown as text, not as an image
    assert "evil.example" in section_text(parser, "data")


def test_empty_run_dir(tmp_path):
    parser = parse(write_report(tmp_path))
    assert parser.sections == [sid for sid, _ in SECTIONS]
    assert parser.images == []
    assert "No verdict" in section_text(parser, "summary")
    assert "config.yaml not found" in section_text(parser, "config")
    assert re.search(r"report_data\.h5ad not found", section_text(parser, "maps"))
    with pytest.raises(ModelFileError):
        write_report(tmp_path / "does-not-exist")
