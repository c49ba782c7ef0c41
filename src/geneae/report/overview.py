"""The report's overview sections: the summary verdict, configuration, data and model, timings.

Plain values for the template (see :mod:`geneae.report.sections`); every value comes from
the results file, and a missing piece becomes a note naming the missing slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from geneae.evaluate import METRIC_DIRECTIONS
from geneae.pl import METRIC_LABELS
from geneae.report.formatting import fmt, formatted_rows, row_nouns, seconds, winner
from geneae.report.results import RESULTS, Results

__all__ = ["TIMING_NAMES", "config_body", "data_body", "summary_body", "timings_body"]

TIMING_NAMES = {
    "read_s": "reading the data",
    "preprocess_s": "preprocessing",
    "train_s": "training",
    "seconds_per_epoch": "per epoch",
    "evaluate_s": "evaluation",
    "report_s": "report",
}


def summary_body(results: Results) -> dict[str, Any]:
    """The verdict in sentences: geneae beside PCA on clustering, reconstruction, all metrics."""
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
    data = results.section("data")
    n_rows = comp.get("n_cells", data.get("n_cells_model", data.get("n_cells")))
    sentences = [
        f"On {fmt(n_rows)} {row_nouns(data)[1]}, geneae"
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


def config_body(results: Results) -> dict[str, Any]:
    """The configuration as written (config.yaml), with a warning where it is incomplete."""
    if results.config_text is None:
        return {"note": results.missing.get("config", "No configuration.")}
    return {
        "preset": results.config.get("preset"),
        "warning": results.missing.get("config"),
        "text": results.config_text.rstrip(),
    }


def data_body(results: Results) -> dict[str, Any]:
    """Tables of the data and the model, and which samples the metrics and figures use."""
    data, model = results.section("data"), results.section("model")
    body: dict[str, Any] = {}
    _, rows, columns = row_nouns(data)
    if data:
        body["data_rows"] = formatted_rows(
            (label, data.get(key))
            for key, label in (
                ("path", "file"),
                ("n_cells", "samples in the file"),
                ("n_genes", "genes in the file"),
                ("n_cells_model", f"{rows} the model encodes"),
                ("n_genes_model", f"{columns} the model reads"),
                ("value_type", "values"),
            )
            if key in data
        )
        classes = data.get("labels")
        if isinstance(classes, Mapping) and classes:
            body["labels"] = formatted_rows(classes.items())
    if model:
        names = {
            "family": "family",
            "likelihood": "likelihood",
            "latent_dim": "latent dimensions",
            "members": "members (latents side by side)",
            "wide_members": "of them wide (every gene z-scored, squared error)",
            "narrow_genes": "genes the other members read (the most variable)",
            "n_parameters": "parameters",
            "epochs_trained": "epochs trained",
            "best_epoch": "best epoch",
            "device": "device",
        }
        body["model_rows"] = formatted_rows(
            (label, model[k]) for k, label in names.items() if k in model
        )
    adata = results.adata
    # The model's rows (after the filters), of which the evaluation may take a subsample.
    n, n_all = adata.n_obs, data.get("n_cells_model", data.get("n_cells"))
    which = (
        f"all {n:,} {rows}"
        if n == n_all or not isinstance(n_all, int)
        else f"{n:,} evaluated {rows} (a seeded subsample of {n_all:,})"
    )
    plotted = results.obs("plotted")
    m = int(np.asarray(plotted, dtype=bool).sum()) if plotted is not None else None
    maps = (
        f" The 2-D maps show {m:,} of them (a seeded subsample)." if m is not None and m < n else ""
    )
    body["cells"] = (
        f"Metrics and figures use {which} x {adata.n_vars:,} {columns} ({RESULTS}).{maps}"
    )
    if not data and not model:
        body["missing"] = results.missing.get(
            "metrics", "The metrics have no data or model summary."
        )
    return body


def timings_body(results: Results) -> dict[str, Any]:
    """Seconds spent on each step of the run, with the maps and the stability repeats."""
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
