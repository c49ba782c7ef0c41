"""Assemble the report's HTML: sections, tables and embedded figures, inline CSS, no script.

Every value shown comes from the run directory; where a piece is missing, the section says
which file or key is missing instead of showing a number. All text from files is escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from geneae.evaluate import METRIC_DIRECTIONS
from geneae.pl import METRIC_LABELS
from geneae.report.figures import FigureItem, FigureSet
from geneae.report.rundata import CONFIG, METRICS, RunData

#: (id, heading) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("config", "Configuration"),
    ("data", "Data and model"),
    ("metrics", "geneae vs PCA: metrics"),
    ("training", "Training curves"),
    ("maps", "Maps"),
    ("reconstruction", "Reconstruction"),
    ("latent", "Latent space usage"),
    ("clusters", "Clusters"),
    ("expression", "Expression values"),
    ("genes", "Top genes per latent dimension"),
    ("timings", "Timings"),
)

# Where the number of clusters came from (compare_with_pca's "n_clusters_from").
_SOURCES = {
    "given": "set in the configuration",
    "labels": "the number of label classes",
    "gmvae clusters": "the GMVAE's mixture components in use",
    "leiden on geneae latent": "Leiden at resolution 1 on the geneae latent space",
    "leiden resolution 1": "Leiden at resolution 1, on each side separately",
}

TIMING_NAMES = {
    "read_s": "reading the data",
    "preprocess_s": "preprocessing",
    "train_s": "training",
    "seconds_per_epoch": "per epoch",
    "evaluate_s": "evaluation",
    "report_s": "report",
}


def render(run: RunData, figs: FigureSet, *, version: str = "") -> str:
    """The complete HTML document for ``run`` with the figures of ``figs``."""
    bodies = {
        "summary": _summary(run),
        "config": _config(run),
        "data": _data(run),
        "metrics": _metrics(run),
        "training": "",
        "maps": "",
        "reconstruction": "",
        "latent": "",
        "clusters": "",
        "expression": "",
        "genes": _genes(run),
        "timings": _timings(run),
    }
    sections = []
    for sid, heading in SECTIONS:
        parts = [bodies[sid], *_blocks(figs.blocks.get(sid, []))]
        sections.append(
            f'<section id="{sid}">\n<h2>{escape(heading)}</h2>\n'
            + "\n".join(parts)
            + "\n</section>"
        )
    toc = "".join(f'<li><a href="#{sid}">{escape(h)}</a></li>' for sid, h in SECTIONS)
    title = f"geneae report — {run.run_dir.name}"
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{escape(title)}</h1>
<p class="sub">Autoencoder vs a PCA baseline of the same dimension, on the same data.
Generated {escape(stamp)}{escape(f" by geneae {version}" if version else "")} from
<code>{escape(str(run.run_dir))}</code>.</p>
<nav aria-label="Sections"><ol>{toc}</ol></nav>
</header>
<main>
{chr(10).join(sections)}
</main>
</body>
</html>
"""


# -- helpers --------------------------------------------------------------------------------


def _p(text: str, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


def _missing(run: RunData, key: str, fallback: str) -> str:
    return _p(run.missing.get(key, fallback), "note")


def fmt(value: Any) -> str:
    """A number as shown in the report; anything missing or undefined is "n/a"."""
    if value is None or isinstance(value, bool):
        return "n/a" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.1f}"
        if abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.3f}"
    return str(value)


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "n/a"
    if value >= 60:
        minutes, secs = divmod(float(value), 60)
        return f"{int(minutes)} min {secs:.0f} s"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def winner(metric: str, ours: Any, theirs: Any) -> str | None:
    """``"geneae"``, ``"pca"``, ``"tie"`` or None (no direction or a value missing)."""
    direction = METRIC_DIRECTIONS.get(metric)
    try:
        a, b = float(ours), float(theirs)
    except (TypeError, ValueError):
        return None
    if direction is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    if a == b:
        return "tie"
    return "geneae" if (a > b) == (direction == "higher") else "pca"


def _kv_table(rows: Iterable[tuple[str, Any]], cls: str = "kv") -> str:
    body = "".join(
        f'<tr><th scope="row">{escape(k)}</th><td>{escape(fmt(v))}</td></tr>' for k, v in rows
    )
    return f'<table class="{cls}"><tbody>{body}</tbody></table>'


def _blocks(blocks: list[FigureItem | str]) -> list[str]:
    """Notes and figures in drawing order; consecutive half-width figures share a row."""
    out: list[str] = []
    heading = None
    pending: list[str] = []  # half-width figures waiting for a neighbour

    def flush() -> None:
        if pending:
            out.append('<div class="pair">' + "".join(pending) + "</div>")
            pending.clear()

    for block in blocks:
        if isinstance(block, str):
            flush()
            out.append(_p(block, "note"))
            continue
        if block.heading and block.heading != heading:
            flush()
            heading = block.heading
            out.append(f"<h3>{escape(heading)}</h3>")
        data = base64.b64encode(block.png).decode("ascii")
        html = (
            f'<figure id="fig-{escape(block.name)}">'
            f'<img src="data:image/png;base64,{data}" alt="{escape(block.alt)}">'
            f"<figcaption>{escape(block.caption)}</figcaption></figure>"
        )
        if block.half:
            pending.append(html)
            if len(pending) == 2:
                flush()
        else:
            flush()
            out.append(html)
    flush()
    return out


# -- sections -------------------------------------------------------------------------------


def _summary(run: RunData) -> str:
    comp = run.comparison
    ours, theirs = comp.get("geneae"), comp.get("pca")
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        why = run.missing.get("metrics", f"{METRICS} has no 'comparison' with both sides")
        return _p(
            f"No verdict: {why.rstrip('.')}, so geneae cannot be compared with PCA here.", "note"
        )
    d = comp.get("n_components", "?")
    model = run.section("model")
    what = ", ".join(
        str(model[k]) for k in ("family", "likelihood") if isinstance(model.get(k), str)
    )
    n_cells = comp.get("n_cells", run.section("data").get("n_cells"))
    intro = (
        f"On {fmt(n_cells)} cells, geneae"
        + (f" ({what})" if what else "")
        + f" with a {d}-dimensional latent space was compared with a PCA of {d} components "
        "fitted on the same preprocessed data."
    )
    sentences = [intro]

    def pair(metric: str) -> str:
        name = METRIC_LABELS.get(metric, metric)
        return f"{name} {fmt(ours.get(metric))} vs {fmt(theirs.get(metric))}"

    def side(results: list[str | None]) -> str:
        got = [r for r in results if r in ("geneae", "pca", "tie")]
        if not got:
            return "cannot be judged"
        if all(r == "geneae" for r in got):
            return "geneae is better"
        if all(r == "pca" for r in got):
            return "PCA is better"
        if all(r == "tie" for r in got):
            return "they tie"
        return "the result is mixed"

    if comp.get("supervised", "ari" in ours):
        keys = [k for k in ("ari", "nmi") if k in ours and k in theirs]
        method = comp.get("clustering")
        how = ""
        if isinstance(method, dict) and method.get("geneae"):
            k = method.get("n_clusters")
            how = f" ({method['geneae']}" + (f", {k} clusters" if k else "") + ")"
        verdict = side([winner(k, ours.get(k), theirs.get(k)) for k in keys])
        sentences.append(
            f"Clustering against the known labels{how}: {verdict} — "
            + "; ".join(pair(k) for k in keys)
            + " (geneae vs PCA, higher is better)."
        )
    else:
        sentences.append(
            "No labels were given, so clustering scores are unsupervised only (silhouette, "
            "Calinski-Harabasz and Davies-Bouldin of each method's own clusters); ARI, NMI and "
            "accuracy cannot be computed."
        )
    rec = [k for k in ("mse", "pearson_gene") if k in ours and k in theirs]
    if rec:
        verdict = side([winner(k, ours.get(k), theirs.get(k)) for k in rec])
        sentences.append(
            f"Reconstruction: {verdict} — "
            + "; ".join(pair(k) for k in rec)
            + " (lower MSE and higher r are better)."
        )
    results = [winner(k, ours.get(k), theirs.get(k)) for k in METRIC_DIRECTIONS if k in ours]
    won = sum(r == "geneae" for r in results)
    lost = sum(r == "pca" for r in results)
    judged = sum(r is not None for r in results)
    if judged:
        sentences.append(
            f"Over all {judged} metrics with a direction, geneae is better on {won} and PCA on "
            f"{lost}" + (f" ({judged - won - lost} ties)." if judged - won - lost else ".")
        )
    usage = run.section("latent_usage")
    if isinstance(usage.get("n_active"), int) and isinstance(usage.get("n_dims"), int):
        sentences.append(f"{usage['n_active']} of {usage['n_dims']} latent dimensions are active.")
    return f'<p class="verdict">{escape(" ".join(sentences))}</p>'


def _config(run: RunData) -> str:
    if run.config_text is None:
        return _missing(run, "config", f"{CONFIG} not found.")
    note = _p(run.missing["config"], "note") if "config" in run.missing else ""
    preset = run.config.get("preset")
    lead = _p(f"Preset: {preset}.") if preset else ""
    return f'{lead}{note}<pre class="config">{escape(run.config_text.rstrip())}</pre>'


def _data(run: RunData) -> str:
    data, model = run.section("data"), run.section("model")
    parts = []
    if data:
        parts.append("<h3>Data</h3>")
        parts.append(
            _kv_table(
                (label, data.get(key))
                for key, label in (
                    ("path", "file"),
                    ("n_cells", "cells"),
                    ("n_genes", "genes in the file"),
                    ("n_genes_model", "genes the model uses"),
                    ("value_type", "values"),
                )
                if key in data
            )
        )
        classes = data.get("labels")
        if isinstance(classes, Mapping) and classes:
            rows = "".join(
                f"<tr><td>{escape(str(k))}</td><td>{escape(fmt(v))}</td></tr>"
                for k, v in classes.items()
            )
            parts.append(
                f'<table class="grid small"><caption>{len(classes)} label classes</caption>'
                f"<thead><tr><th>label</th><th>cells</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        else:
            parts.append(_p("No labels: the data came without known groups."))
    if model:
        parts.append("<h3>Model</h3>")
        names = {
            "family": "family",
            "likelihood": "likelihood",
            "latent_dim": "latent dimensions",
            "n_parameters": "parameters",
            "epochs_trained": "epochs trained",
            "best_epoch": "best epoch",
            "device": "device",
        }
        parts.append(_kv_table((label, model[k]) for k, label in names.items() if k in model))
    if run.adata is not None:
        n_obs, n_all = run.adata.n_obs, data.get("n_cells")
        which = (
            f"all {n_obs:,} cells"
            if n_obs == n_all
            else f"a seeded subsample of {n_obs:,} cells"
            + (f" (of {n_all:,})" if isinstance(n_all, int) else "")
        )
        parts.append(
            _p(
                f"Figures are drawn from {which} x {run.adata.n_vars:,} genes (report_data.h5ad); "
                "the metrics use all cells."
            )
        )
    if not parts:
        return _missing(run, "metrics", f"{METRICS} has no data or model summary.")
    return "\n".join(parts)


def _metrics(run: RunData) -> str:
    comp = run.comparison
    ours, theirs = comp.get("geneae"), comp.get("pca")
    if not isinstance(ours, dict):
        return _missing(run, "metrics", f"{METRICS} has no 'comparison'.")
    theirs = theirs if isinstance(theirs, dict) else {}
    names = [m for m in METRIC_DIRECTIONS if m in ours or m in theirs]
    names += [m for m in ours if m not in names]
    rows = []
    for m in names:
        better = winner(m, ours.get(m), theirs.get(m))
        cells = []
        for side, values in (("geneae", ours), ("pca", theirs)):
            text = escape(fmt(values.get(m)))
            if better == side:
                cells.append(
                    f'<td class="num better">{text} <span aria-label="better">✓</span></td>'
                )
            else:
                cells.append(f'<td class="num">{text}</td>')
        arrow = {"higher": "↑ higher", "lower": "↓ lower"}.get(METRIC_DIRECTIONS.get(m, ""), "")
        rows.append(
            f'<tr><th scope="row">{escape(METRIC_LABELS.get(m, m))}</th>'
            f'<td class="dir">{arrow}</td>{"".join(cells)}</tr>'
        )
    d = comp.get("n_components", "?")
    table = (
        '<table class="grid metrics"><thead><tr><th>metric</th><th>better</th>'
        f"<th>geneae</th><th>PCA ({escape(str(d))} components)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    notes = []
    if not theirs:
        notes.append(_p("No PCA baseline in metrics.json (evaluate.pca_baseline off?).", "note"))
    clustering = comp.get("clustering")
    if isinstance(clustering, dict):
        notes.append(
            _p(
                f"Clusters: geneae by {clustering.get('geneae', '?')}, PCA by "
                f"{clustering.get('pca', '?')}; number of clusters "
                f"{fmt(clustering.get('n_clusters'))} "
                f"({_SOURCES.get(str(clustering.get('n_clusters_from')), 'source unknown')})."
            )
        )
    if comp.get("supervised") is False:
        notes.append(
            _p(
                "No labels: clustering scores are unsupervised only — silhouette, "
                "Calinski-Harabasz and Davies-Bouldin describe each method's own clusters in its "
                "own space, so they are not a like-for-like accuracy comparison.",
                "note",
            )
        )
    else:
        notes.append(
            _p(
                "Silhouette, Calinski-Harabasz and Davies-Bouldin measure how well each latent "
                "space separates the known labels; ARI, NMI and accuracy compare the clusters "
                "with the labels; reconstruction metrics are in the preprocessed input space."
            )
        )
    like = run.section("likelihood")
    if like:
        notes.append("<h3>Likelihood (geneae only; PCA has none)</h3>")
        notes.append(_kv_table((_pretty_key(k), v) for k, v in like.items()))
    return table + "\n" + "\n".join(notes)


def _genes(run: RunData) -> str:
    table = run.top_genes
    if table is None:
        return _missing(run, "top_genes", "No gene loadings.")
    if "rank" not in table:
        table = table.assign(rank=table.groupby("dim").cumcount() + 1)
    table = table[table["rank"] <= 10]
    dims = sorted(table["dim"].unique(), key=_dim_key)
    out = [
        _p(
            "Genes with the largest absolute loading on each latent dimension (decoder weights "
            "or mean absolute decoder Jacobian, as exported by the model); the sign says in "
            "which direction the gene moves when the dimension grows."
        )
    ]
    for start in range(0, len(dims), 8):  # at most 8 dimensions per table: fits a page
        chunk = dims[start : start + 8]
        head = "".join(f"<th>dim {escape(str(d))}</th>" for d in chunk)
        ranks = sorted(table["rank"].unique())
        body = []
        for r in ranks:
            cells = []
            for d in chunk:
                hit = table[(table["dim"] == d) & (table["rank"] == r)]
                if hit.empty:
                    cells.append("<td></td>")
                    continue
                gene, loading = str(hit["gene"].iloc[0]), float(hit["loading"].iloc[0])
                sign = "pos" if loading >= 0 else "neg"
                cells.append(
                    f'<td><span class="gene">{escape(gene)}</span> '
                    f'<span class="{sign}">{loading:+#.3g}</span></td>'
                )
            body.append(f'<tr><th scope="row">{r}</th>{"".join(cells)}</tr>')
        out.append(
            f'<table class="grid genes"><thead><tr><th>rank</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    return "\n".join(out)


def _pretty_key(key: str) -> str:
    """``val_elbo`` -> ``validation ELBO``: readable names for metrics.json keys."""
    words = {"val": "validation", "train": "training", "elbo": "ELBO", "kl": "KL", "nll": "NLL"}
    return " ".join(words.get(w, w) for w in str(key).split("_"))


def _dim_key(d: Any) -> tuple[int, Any]:
    return (0, d) if isinstance(d, (int, float)) else (1, str(d))


def _timings(run: RunData) -> str:
    timings = run.section("timings")
    if not timings:
        return _missing(run, "timings", f"{METRICS} has no timings.")
    rows = "".join(
        f'<tr><th scope="row">{escape(TIMING_NAMES.get(k, k))}</th>'
        f'<td class="num">{escape(_seconds(v))}</td></tr>'
        for k, v in timings.items()
    )
    device = run.section("model").get("device")
    lead = _p(f"Device: {device}.") if device else ""
    return f'{lead}<table class="kv"><tbody>{rows}</tbody></table>'


CSS = """
:root { --ink:#1d2733; --muted:#5b6673; --line:#d9dee4; --accent:#2166ac; --good:#e3f1e3;
        --goodink:#1b5e20; --warn:#fff5db; --warnline:#e0a800; }
* { box-sizing: border-box; }
body { margin:0; color:var(--ink); background:#fff; line-height:1.5;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; }
header, main { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6rem; margin: 0 0 4px; }
h2 { font-size: 1.3rem; margin: 0 0 10px; padding-bottom: 4px; border-bottom: 2px solid
     var(--accent); }
h3 { font-size: 1.05rem; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 10px; }
nav ol { display:flex; flex-wrap:wrap; gap:4px 14px; list-style:none; padding:0;
         margin:8px 0 14px; font-size:0.9rem; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
section { padding: 22px 0 6px; }
.verdict { font-size: 1.05rem; background: #f3f7fb; border-left: 4px solid var(--accent);
           padding: 10px 14px; margin: 0; }
.note { background: var(--warn); border-left: 3px solid var(--warnline); padding: 6px 10px;
        margin: 8px 0; font-size: 0.92rem; }
pre { background:#f6f8fa; border:1px solid var(--line); padding:10px 12px; overflow:auto;
      font-size: 0.8rem; line-height: 1.35; }
pre.config { columns: 3 250px; column-rule: 1px solid var(--line); }
code { font-size: 0.85em; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.9rem; }
caption { text-align:left; color: var(--muted); font-size: 0.85rem; padding-bottom: 2px; }
th, td { padding: 4px 10px; text-align: left; vertical-align: top; }
table.grid th, table.grid td { border-bottom: 1px solid var(--line); }
table.grid thead th { border-bottom: 2px solid #9aa5b1; background: #f6f8fa; }
table.kv th { color: var(--muted); font-weight: 500; padding-left: 0; }
table.small { font-size: 0.82rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.dir { color: var(--muted); font-size: 0.82rem; white-space: nowrap; }
td.better { background: var(--good); color: var(--goodink); font-weight: 600; }
table.metrics { min-width: 560px; }
table.genes { font-size: 0.8rem; }
table.genes td { white-space: nowrap; }
.gene { font-weight: 600; }
.pos { color: #b2182b; } .neg { color: #2166ac; }
figure { margin: 10px 0 22px; }
figure img { display:block; max-width: 100%; height: auto; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 0 24px; align-items: start; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 4px; max-width: 900px; }
@media print {
  @page { size: A4; margin: 12mm; }
  body { font-size: 10pt; }
  header, main { max-width: none; padding: 0; }
  nav { display: none; }
  section { padding-top: 10px; }
  h2 { break-after: avoid; }
  h3 { break-after: avoid; }
  figure, table, .verdict, .note { break-inside: avoid; }
  pre.config { columns: 3; font-size: 7pt; }
  figure img { max-height: 230mm; width: auto; max-width: 100%; }
  pre { overflow: visible; white-space: pre-wrap; }
  td.better { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
}
"""
