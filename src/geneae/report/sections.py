"""What each report section says: plain values for the template, no HTML here.

Every value shown comes from the results file; where a piece is missing, the section
carries a note saying which slot is missing instead of a number. The template escapes
everything (Jinja2 autoescape), so text from files can never become markup.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from geneae.evaluate import METRIC_DIRECTIONS, top_genes
from geneae.pl import METRIC_LABELS
from geneae.report.figures import FigureItem, FigureSet
from geneae.report.results import RESULTS, Results

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
    ("gene_embedding", "Gene embedding"),
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
GENES_PER_DIM = 10
DIMS_PER_TABLE = 8  # fits a printed page


def sections(results: Results, figs: FigureSet) -> list[dict[str, Any]]:
    """One dict per section, in page order: ``id``, ``heading``, ``body``, ``blocks``."""
    bodies = {
        "summary": _summary(results),
        "config": _config(results),
        "data": _data(results),
        "metrics": _metrics(results),
        "clusters": _clusters(results),
        "genes": _genes(results),
        "gene_embedding": _gene_embedding(results),
        "timings": _timings(results),
    }
    return [
        {"id": sid, "heading": heading, "body": bodies.get(sid, {}), "blocks": _blocks(figs, sid)}
        for sid, heading in SECTIONS
    ]


# -- formatting -----------------------------------------------------------------------------


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


def seconds(value: Any) -> str:
    """A duration as shown in the report ("n/a" when missing)."""
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


def _rows(pairs: Any) -> list[tuple[str, str]]:
    return [(str(k), fmt(v)) for k, v in pairs]


def _blocks(figs: FigureSet, section: str) -> list[dict[str, Any]]:
    """Notes, sub-headings and figures in drawing order; two half-width figures share a row."""
    out: list[dict[str, Any]] = []
    heading = None
    pending: list[dict[str, Any]] = []  # half-width figures waiting for a neighbour

    def flush() -> None:
        if pending:
            out.append({"kind": "pair", "figures": list(pending)})
            pending.clear()

    for block in figs.blocks.get(section, []):
        if isinstance(block, str):
            flush()
            out.append({"kind": "note", "text": block})
            continue
        if block.heading and block.heading != heading:
            flush()
            heading = block.heading
            out.append({"kind": "heading", "text": heading})
        figure = _figure(block)
        if block.half:
            pending.append(figure)
            if len(pending) == 2:
                flush()
        else:
            flush()
            out.append({"kind": "figure", "figure": figure})
    flush()
    return out


def _figure(item: FigureItem) -> dict[str, str]:
    data = base64.b64encode(item.png).decode("ascii")
    return {
        "id": f"fig-{item.name}",
        "src": f"data:image/png;base64,{data}",
        "alt": item.alt,
        "caption": item.caption,
    }


# -- sections -------------------------------------------------------------------------------


def _summary(results: Results) -> dict[str, Any]:
    comp = results.comparison
    ours, theirs = comp.get("geneae"), comp.get("pca")
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        why = results.missing.get("metrics", "the metrics have no 'comparison' with both sides")
        return {"note": f"No verdict: {why.rstrip('.')}, so geneae cannot be compared with PCA."}
    d = comp.get("n_components", "?")
    model = results.section("model")
    what = ", ".join(
        str(model[k]) for k in ("family", "likelihood") if isinstance(model.get(k), str)
    )
    n_cells = comp.get("n_cells", results.section("data").get("n_cells"))
    sentences = [
        f"On {fmt(n_cells)} cells, geneae"
        + (f" ({what})" if what else "")
        + f" with a {d}-dimensional latent space was compared with a PCA of {d} components "
        "fitted on the same preprocessed data."
    ]

    def pair(metric: str) -> str:
        name = METRIC_LABELS.get(metric, metric)
        return f"{name} {fmt(ours.get(metric))} vs {fmt(theirs.get(metric))}"

    def side(outcomes: list[str | None]) -> str:
        got = [r for r in outcomes if r in ("geneae", "pca", "tie")]
        if not got:
            return "cannot be judged"
        for who, says in (("geneae", "geneae is better"), ("pca", "PCA is better")):
            if all(r == who for r in got):
                return says
        return "they tie" if all(r == "tie" for r in got) else "the result is mixed"

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
    outcomes = [winner(k, ours.get(k), theirs.get(k)) for k in METRIC_DIRECTIONS if k in ours]
    won, lost = outcomes.count("geneae"), outcomes.count("pca")
    judged = sum(r is not None for r in outcomes)
    if judged:
        ties = judged - won - lost
        sentences.append(
            f"Over all {judged} metrics with a direction, geneae is better on {won} and PCA on "
            f"{lost}" + (f" ({ties} ties)." if ties else ".")
        )
    usage = results.section("latent_usage")
    if isinstance(usage.get("n_active"), int) and isinstance(usage.get("n_dims"), int):
        sentences.append(f"{usage['n_active']} of {usage['n_dims']} latent dimensions are active.")
    return {"verdict": " ".join(sentences)}


def _config(results: Results) -> dict[str, Any]:
    if results.config_text is None:
        return {"note": results.missing.get("config", "No configuration.")}
    return {
        "preset": results.config.get("preset"),
        "warning": results.missing.get("config"),
        "text": results.config_text.rstrip(),
    }


def _data(results: Results) -> dict[str, Any]:
    data, model = results.section("data"), results.section("model")
    body: dict[str, Any] = {}
    if data:
        body["data_rows"] = _rows(
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
        classes = data.get("labels")
        if isinstance(classes, Mapping) and classes:
            body["labels"] = _rows(classes.items())
    if model:
        names = {
            "family": "family",
            "likelihood": "likelihood",
            "latent_dim": "latent dimensions",
            "n_parameters": "parameters",
            "epochs_trained": "epochs trained",
            "best_epoch": "best epoch",
            "device": "device",
        }
        body["model_rows"] = _rows((label, model[k]) for k, label in names.items() if k in model)
    adata = results.adata
    n, n_all = adata.n_obs, data.get("n_cells")
    which = (
        f"all {n:,} cells"
        if n == n_all or not isinstance(n_all, int)
        else f"{n:,} evaluated cells (a seeded subsample of {n_all:,})"
    )
    plotted = results.obs("plotted")
    m = int(np.asarray(plotted, dtype=bool).sum()) if plotted is not None else None
    maps = (
        f" The 2-D maps show {m:,} of them (a seeded subsample)." if m is not None and m < n else ""
    )
    body["cells"] = f"Metrics and figures use {which} x {adata.n_vars:,} genes ({RESULTS}).{maps}"
    if not data and not model:
        body["missing"] = results.missing.get(
            "metrics", "The metrics have no data or model summary."
        )
    return body


def _metrics(results: Results) -> dict[str, Any]:
    comp = results.comparison
    ours, theirs = comp.get("geneae"), comp.get("pca")
    if not isinstance(ours, dict):
        return {"note": results.missing.get("metrics", "The metrics have no 'comparison'.")}
    theirs = theirs if isinstance(theirs, dict) else {}
    names = [m for m in METRIC_DIRECTIONS if m in ours or m in theirs]
    names += [m for m in ours if m not in names]
    rows = []
    for m in names:
        better = winner(m, ours.get(m), theirs.get(m))
        rows.append(
            {
                "name": METRIC_LABELS.get(m, m),
                "direction": {"higher": "↑ higher", "lower": "↓ lower"}.get(
                    METRIC_DIRECTIONS.get(m, ""), ""
                ),
                "cells": [
                    {"text": fmt(values.get(m)), "better": better == who}
                    for who, values in (("geneae", ours), ("pca", theirs))
                ],
            }
        )
    notes: list[tuple[str, bool]] = []  # (text, shown as a note)
    if not theirs:
        notes.append(("No PCA baseline in the metrics (evaluate.pca_baseline off?).", True))
    clustering = comp.get("clustering")
    if isinstance(clustering, dict):
        source = _SOURCES.get(str(clustering.get("n_clusters_from")), "source unknown")
        notes.append(
            (
                f"Clusters: geneae by {clustering.get('geneae', '?')}, PCA by "
                f"{clustering.get('pca', '?')}; number of clusters "
                f"{fmt(clustering.get('n_clusters'))} ({source}).",
                False,
            )
        )
    if comp.get("supervised") is False:
        notes.append(
            (
                "No labels: clustering scores are unsupervised only — silhouette, "
                "Calinski-Harabasz and Davies-Bouldin describe each method's own clusters in "
                "its own space, so they are not a like-for-like accuracy comparison.",
                True,
            )
        )
    else:
        notes.append(
            (
                "Silhouette, Calinski-Harabasz and Davies-Bouldin measure how well each latent "
                "space separates the known labels; ARI, NMI and accuracy compare the clusters "
                "with the labels; reconstruction metrics are in the preprocessed input space.",
                False,
            )
        )
    like = results.section("likelihood")
    return {
        "rows": rows,
        "pca_heading": f"PCA ({comp.get('n_components', '?')} components)",
        "notes": notes,
        "likelihood": _rows((_pretty_key(k), v) for k, v in like.items()),
    }


def _clusters(results: Results) -> dict[str, Any]:
    """One sentence on how reproducible each side's clusters are (``stability`` slot)."""
    slot = results.stored("stability")
    sides = {}
    for side in ("geneae", "pca"):
        one = None if slot is None else slot.get(side)
        if isinstance(one, dict) and "mean" in one:
            sides[side] = one
    if "geneae" not in sides:
        return {}
    ours = sides["geneae"]
    share = slot.get("fraction")
    share = f"{float(share):.0%}" if isinstance(share, (int, float)) else "a share"
    text = (
        f"Stability (no labels needed): the clustering was repeated {fmt(slot.get('repeats'))} "
        f"times on random {share} subsets of the cells; on average a cell stayed with the "
        f"other cells of its geneae cluster in a fraction {fmt(float(ours['mean']))} of the "
        "repeats"
    )
    if "pca" in sides:
        text += f" (PCA baseline: {fmt(float(sides['pca']['mean']))})"
    ari = np.asarray(ours.get("ari", []), dtype=np.float64)
    ari = ari[np.isfinite(ari)]
    if ari.size:
        text += (
            ", and the repeats matched the written geneae clusters with ARI "
            f"{fmt(float(ari.mean()))} on average (lowest {fmt(float(ari.min()))})"
        )
    per_cluster = np.asarray(ours.get("per_cluster", []), dtype=np.float64)
    names = [str(c) for c in np.atleast_1d(ours.get("clusters", []))]
    if per_cluster.size and len(names) == per_cluster.size and np.isfinite(per_cluster).any():
        worst = int(np.nanargmin(per_cluster))
        text += f". Least stable geneae cluster: {names[worst]} ({fmt(float(per_cluster[worst]))})"
    text += (
        ". This measures re-clustering this latent space; retraining the model with another "
        "seed moves the space itself and can move more cells."
    )
    return {"stability": text}


def _genes(results: Results) -> dict[str, Any]:
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
    if _gene_model(results):
        body["features_note"] = (
            "This model embeds genes (genes_as_samples): its features are the samples, so the "
            "table lists the samples that load most on each dimension. The genes are in the "
            "next section."
        )
    return body


def _gene_model(results: Results) -> bool:
    data = results.config.get("data")
    return isinstance(data, dict) and bool(data.get("genes_as_samples"))


def _gene_embedding(results: Results) -> dict[str, Any]:
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


def _pretty_key(key: str) -> str:
    """``val_elbo`` -> ``validation ELBO``: readable names for metric keys."""
    words = {"val": "validation", "train": "training", "elbo": "ELBO", "kl": "KL", "nll": "NLL"}
    return " ".join(words.get(w, w) for w in str(key).split("_"))


def _timings(results: Results) -> dict[str, Any]:
    timings = results.section("timings")
    rows = [(TIMING_NAMES.get(k, k), seconds(v)) for k, v in timings.items()]
    maps = results.stored("maps")
    if maps is not None and "seconds" in maps:
        rows.append(("2-D maps (part of the evaluation)", seconds(float(maps["seconds"]))))
    stability = results.stored("stability") or {}
    spent = [
        float(one["seconds"])
        for one in stability.values()
        if isinstance(one, dict) and isinstance(one.get("seconds"), (int, float))
    ]
    if spent:
        rows.append(("cluster stability (part of the evaluation)", seconds(sum(spent))))
    if not rows:
        return {"note": results.missing.get("metrics", "The metrics have no timings.")}
    return {"device": results.section("model").get("device"), "rows": rows}
