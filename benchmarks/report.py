"""Render BENCHMARKS.md (and the figures) from the JSON results that exist.

Every number in the document comes from ``quality.json``, ``speed.json`` or ``scaling.json``,
except the published reference figures, which are quoted from shared/data/README.md with
their source. Parts without results say "not run" and give the command that runs them.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BENCHMARKS_MD,
    DATASETS,
    PUBLISHED,
    SYNTHETIC_COUNT_DATASETS,
    dataset_kind,
    mean_std,
    now,
    read_json,
    save_figure_atomic,
    subsample_of,
    write_text_atomic,
)
from benchmarks.gpu_markdown import gpu_markdown
from benchmarks.outofcore import markdown as outofcore_markdown
from benchmarks.profile_step import profile_markdown
from benchmarks.quality import GENEAE_PRESETS, METHODS, PCA_METHODS, PEERS
from benchmarks.scaling import plot_scaling
from benchmarks.speed import SPEED_ROWS
from benchmarks.wallclock_markdown import markdown as wallclock_markdown

REFERENCES = ("scanpy-pca50", "pca50-unscaled", "scvi")


# -- aggregation ----------------------------------------------------------------------------
def aggregate(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{dataset: {method: {metric: (mean, std, n), ..., 'records': [...]}}} over seeds."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["dataset"], {}).setdefault(r["method"], {"records": []})["records"].append(
            r
        )
    metrics = (
        "ari",
        "nmi",
        "acc",
        "silhouette",
        "ari_leiden",
        "nmi_leiden",
        "ari_gmvae",
        "nmi_gmvae",
        "fit_s",
        "train_s",
        "seconds_per_epoch",
        "epochs",
        "peak_rss_mb",
    )
    for by_method in out.values():
        for agg in by_method.values():
            ok = [r for r in agg["records"] if r.get("status") == "ok"]
            agg["ok"] = ok
            for m in metrics:
                agg[m] = mean_std(r.get(m) for r in ok)
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _pm(stat: tuple[float | None, float | None, int], digits: int = 3) -> str:
    m, sd, n = stat
    if m is None:
        return "–"
    return f"{m:.{digits}f} ± {sd:.{digits}f}" if n > 1 else f"{m:.{digits}f}"


def _num(x: float | None) -> str:
    """Seconds / MB with sensible precision."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _ordered(methods: Any) -> list[str]:
    known = [m for m in METHODS if m in methods]
    return known + sorted(m for m in methods if m not in METHODS)


def _short(method: str) -> str:
    """Column-header name of a reference method: ``scanpy-pca50`` -> ``pca50``."""
    return method.removeprefix("scanpy-")


def _best_peer(by_method: dict[str, dict[str, Any]], metric: str = "ari") -> tuple[str, float]:
    best = ("", -math.inf)
    for m in PEERS:
        v = by_method.get(m, {}).get(metric, (None, None, 0))[0]
        if v is not None and v > best[1]:
            best = (m, v)
    return best


def _cmd(part: str) -> str:
    return f"`python -m benchmarks {part}`"


def _count_set(dataset: str) -> bool:
    """Whether ``dataset`` belongs in the count sets' tables (real counts, not a synthetic
    probe of one property, which has a section of its own)."""
    return (
        dataset_kind(dataset) == "counts"
        and dataset not in SYNTHETIC_COUNT_DATASETS
        and subsample_of(dataset) is None
    )


def _shared(datasets: Any) -> list[str]:
    """The datasets of shared/data among ``datasets``: the bundled set is a subset of one."""
    return [d for d in datasets if DATASETS.get(d) is not None]


def _ablation_section(doc: dict[str, Any] | None) -> list[str]:
    head = ["## Ablations: gene weighting and ensembles", ""]
    if doc is None or not (doc.get("weighting") or doc.get("ensemble")):
        return head + ["Not run. Run " + _cmd("ablation") + " (about 30 min on 2 cores).", ""]
    lines = head + [
        "Why no single preset reaches every published figure (benchmarks/ablation.py). Scores "
        "are ARI / NMI of KMeans (k = number of labels, n_init=10) averaged over "
        f"{_runs(doc)} random states: one KMeans run moves ARI by up to 0.05 here.",
        "",
    ]
    if doc.get("weighting"):
        lines += _weighting_table(doc["weighting"])
    if doc.get("ensemble"):
        lines += _ensemble_table(doc["ensemble"])
    return lines


def _weighting_table(rows: list[dict[str, Any]]) -> list[str]:
    alphas = sorted({r["alpha"] for r in rows})
    by = {(r["dataset"], r["alpha"]): r for r in rows}
    lines = [
        "**Gene weighting.** PCA 50 of the centred log-normalised HVGs with each gene "
        "divided by sd^alpha: alpha 0 is `pca50-unscaled`, alpha 1 z-scores (clipped at 10) "
        "like `scanpy-pca50`. The datasets disagree on the best alpha.",
        "",
        "| dataset | " + " | ".join(f"alpha {a:g}" for a in alphas) + " | best |",
        "|" + "---|" * (len(alphas) + 2),
    ]
    for d in dict.fromkeys(r["dataset"] for r in rows):
        cells = [by.get((d, a)) for a in alphas]
        best = max((r["ari"], r["alpha"]) for r in cells if r)[1]
        scores = " | ".join(f"{_fmt(r['ari'])} / {_fmt(r['nmi'])}" if r else "–" for r in cells)
        lines.append(f"| {d} | {scores} | alpha {best:g} |")
    return [*lines, ""]


def _ensemble_table(rows: list[dict[str, Any]]) -> list[str]:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    by = {(r["dataset"], r["kind"]): r for r in rows}
    lines = [
        "**Ensembles.** `recommended x seeds`: the latent spaces of the `recommended` "
        "preset fitted with each seed, concatenated; `recommended + beta-vae`: a count model "
        "and a z-scored Gaussian model of the same seed, concatenated (mean over seeds). "
        "Each block is centred and scaled to unit mean squared row norm. `fit s`: the "
        "members' fit times added up.",
        "",
        "| dataset | " + " | ".join(kinds) + " |",
        "|" + "---|" * (len(kinds) + 1),
    ]
    for d in datasets:
        cells = [by.get((d, k)) for k in kinds]
        scores = " | ".join(
            f"{_fmt(r['ari'])} / {_fmt(r['nmi'])} ({_num(r['fit_s'])} s)" if r else "–"
            for r in cells
        )
        lines.append(f"| {d} | {scores} |")
    shared = _shared(datasets) or datasets
    means = []
    for k in kinds:
        kept = [by[(d, k)] for d in shared if (d, k) in by]
        ari = sum(r["ari"] for r in kept) / len(kept) if kept else None
        nmi = sum(r["nmi"] for r in kept) / len(kept) if kept else None
        means.append(f"{_fmt(ari)} / {_fmt(nmi)}")
    return [*lines, f"| mean of {', '.join(shared)} | {' | '.join(means)} |", ""]


def _runs(doc: dict[str, Any]) -> str:
    runs = {r.get("kmeans_runs") for part in ("weighting", "ensemble") for r in doc.get(part, [])}
    return " / ".join(str(r) for r in sorted(x for x in runs if x))


# -- sections ---------------------------------------------------------------------------------
def _machine_section(docs: list[dict[str, Any]]) -> list[str]:
    doc = next((d for d in docs if d), None)
    if doc is None:
        return ["## Machine", "", "No results yet: run " + _cmd("all") + ".", ""]
    mach, ver = doc.get("machine", {}), doc.get("versions", {})
    lines = [
        "## Machine and versions",
        "",
        f"- CPU: {mach.get('cpu_model')} — {mach.get('cpu_cores')} cores "
        f"({mach.get('cpu_cores_usable')} usable), RAM {mach.get('ram_gb')} GB, "
        f"{mach.get('platform')}, Python {mach.get('python')}",
        "- "
        + ", ".join(f"{k} {v}" for k, v in ver.items() if v is not None)
        + (" — scvi-tools not installed" if not ver.get("scvi-tools") else ""),
    ]
    loads = _max_loads(docs)
    cores = mach.get("cpu_cores_usable") or mach.get("cpu_cores") or 1
    if loads:
        worst = max(loads)
        note = (
            f"- Highest 1-minute load average seen at the start or end of a run: {worst:.1f} "
            f"on {cores} cores."
        )
        if worst > cores:
            note += (
                " Other processes competed for the CPU during some runs, so wall times and "
                "seconds per epoch are inflated and noisy there; quality scores are not affected."
            )
        lines.append(note)
    lines.append("")
    return lines


def _max_loads(docs: list[dict[str, Any]]) -> list[float]:
    vals: list[float] = []
    for d in docs:
        if not d:
            continue
        for holder in [d, *d.get("records", [])]:
            for key in ("loadavg_start", "loadavg_end"):
                v = holder.get(key)
                if v:
                    vals.append(float(v[0]))
    return vals


def _commands_section(docs: dict[str, dict[str, Any] | None]) -> list[str]:
    lines = ["## How these numbers were made", ""]
    lines.append(
        "Everything: `python -m benchmarks all` (quality with 3 seeds, speed, scaling, "
        "ablations, this report); `make bench` installs the `bench` extra (scvi-tools) "
        "first. Commands recorded in the result files:"
    )
    lines.append("")
    for name, doc in docs.items():
        if doc is None:
            lines.append(f"- {name}.json: not run — {_cmd(name)}")
            continue
        lines.append(f"- {name}.json (last written {doc.get('updated')}):")
        lines += [f"  - `{c}`" for c in doc.get("commands", [])]
    lines.append("")
    return lines


def _quality_sections(doc: dict[str, Any] | None, fig_link: str | None) -> list[str]:
    if doc is None or not doc.get("records"):
        return [
            "## Clustering quality",
            "",
            "Not run. Run " + _cmd("quality") + " (all datasets, all methods, seeds 0 1 2; "
            "hours on 2 cores), or e.g. `python -m benchmarks quality --datasets pbmc_10x "
            "--methods scanpy-pca50 recommended --seeds 0`.",
            "",
        ]
    from benchmarks.report_values import values_sections

    everything = aggregate(doc["records"])
    agg = {d: by for d, by in everything.items() if _count_set(d)}
    lines = [
        "## Clustering quality",
        "",
        "Same input for every method: raw counts and labels. Scores: KMeans with k = number of "
        "labels (restarts: see below, random_state=seed) on the embedding — ARI, NMI, "
        "Hungarian accuracy "
        "(acc) — and the silhouette of the *labels* on the embedding; Leiden columns: "
        "geneae.evaluate's Leiden on a 15-NN graph with the resolution searched to give k "
        "clusters; GMVAE columns: the scvae-gmvae model's own clusters (argmax q(y|x), "
        "k components). Values are mean ± std over seeds (n = seeds that finished). "
        "`fit s`: wall time from raw counts to a fitted model (preprocessing included; for PCA "
        "the whole scanpy pipeline); `s/epoch` = training time / epochs (first epoch included); "
        "`peak MB`: peak RSS of the run's own process (imports included). Methods: "
        "`scanpy-pca10/50` = BASELINES.md's scaled scanpy pipeline; `pca50-unscaled` = the "
        "same without `sc.pp.scale` (PCA of the log-normalised HVGs); `scvi` = scvi-tools SCVI "
        "defaults (ZINB, 1x128, latent 10), 100 epochs, same 2,000 seurat_v3 genes; the rest "
        "are geneae presets with their own defaults (epochs chosen from the data size, early "
        "stopping; genes: the default picks its own 2,000 by scanpy's seurat flavour where a "
        "file has more, the `*_allgenes` sets). The `*_allgenes` sets are the whole-genome "
        "count files of shared/data (every gene, as most users' files come); the others hold "
        "the 2,000 genes their sources chose.",
        "",
    ]
    lines += _concurrency_note(doc["records"])
    lines += _restarts_note(doc["records"])
    for dataset in [d for d in DATASETS if d in agg] + sorted(set(agg) - set(DATASETS)):
        lines += _dataset_table(dataset, agg[dataset])
    shared = {d: agg[d] for d in _shared(agg)}
    if shared and len(shared) < len(agg):
        # The bar: the shared (public, labelled) datasets, without geneae's bundled set.
        lines += _cross_dataset(
            shared,
            "Across the shared datasets",
            f"The {len(shared)} public datasets of shared/data ({', '.join(shared)}); geneae's "
            "bundled data are left out here. ",
        )
    lines += _cross_dataset(agg, "Across all datasets")
    lines += _published(agg)
    lines += _losses(agg)
    if fig_link:
        lines += [
            "### Quality vs training time",
            "",
            f"![mean ARI (KMeans) vs fit time per method]({fig_link})",
            "",
        ]
    return lines + values_sections(everything)


def _dataset_table(dataset: str, by_method: dict[str, dict[str, Any]]) -> list[str]:
    ok_any = next((a["ok"][0] for a in by_method.values() if a["ok"]), None)
    shape = (
        f" — {ok_any['n_cells']:,} {'samples' if dataset_kind(dataset) == 'bulk' else 'cells'}"
        f" x {ok_any['n_genes']:,} genes, {ok_any['n_labels']} labels"
        if ok_any
        else ""
    )
    lines = [f"### {dataset}{shape}", ""]
    head = (
        "| method | n | ARI | NMI | acc | silhouette | ARI Leiden | NMI Leiden | ARI GMVAE | "
        "NMI GMVAE | fit s | s/epoch | epochs | peak MB |"
    )
    lines += [head, "|" + "---|" * 14]
    notes = []
    capped: set[int] = set()
    newest = max(_restarts(r) for a in by_method.values() for r in a["ok"]) if ok_any else 0
    older = earlier_default = False
    for method in _ordered(by_method):
        a = by_method[method]
        for r in a["records"]:
            if r.get("status") != "ok":
                what = r.get("note") or r.get("error") or "no result"
                what = (what.strip().splitlines() or ["no result"])[0]  # its first line
                notes.append(f"- `{method}` seed {r['seed']}: {r.get('status')} — {what}")
        if not a["ok"]:
            continue
        caps = {
            r.get("max_epochs_override")
            for r in a["ok"]
            if r.get("max_epochs_override") and method not in PCA_METHODS  # PCA has no epochs
        }
        capped |= caps
        mark = " †" if caps else ""
        if any(_restarts(r) < newest for r in a["ok"]):
            older = True
            mark += " ‡"
        if method == "recommended" and any(_members(r) == 1 for r in a["ok"]):
            earlier_default = True
            mark += " §"
        ep = a["epochs"]
        ep_txt = "–" if ep[0] is None else _epoch_range(a["ok"])
        lines.append(
            f"| {method}{mark} | {a['ari'][2]} | {_pm(a['ari'])} | {_pm(a['nmi'])} | "
            f"{_pm(a['acc'])} | {_pm(a['silhouette'])} | {_pm(a['ari_leiden'])} | "
            f"{_pm(a['nmi_leiden'])} | {_pm(a['ari_gmvae'])} | {_pm(a['nmi_gmvae'])} | "
            f"{_num(a['fit_s'][0])} | {_num(a['seconds_per_epoch'][0])} | {ep_txt} | "
            f"{_num(a['peak_rss_mb'][0])} |"
        )
    lines.append("")
    if capped:
        lines.append(
            f"† epochs capped by `--max-epochs {', '.join(map(str, sorted(capped)))}`: a quick "
            "check, not the method's real result."
        )
        lines.append("")
    if older:
        lines.append(
            f"‡ scored (some seeds) with fewer KMeans restarts than the {newest} of the other "
            f"rows. {_RESTARTS_CAVEAT}"
        )
        lines.append("")
    if earlier_default:
        lines.append(
            "§ the default as it was before it trained members side by side "
            "(`model.members`; some seeds trained one model): not yet measured again."
        )
        lines.append("")
    if notes:
        lines += ["Runs without a result:", "", *notes, ""]
    return lines


_RESTARTS_CAVEAT = (
    "Scores made with different restarts are not comparable to the last 0.01-0.05 ARI "
    "(with 10, the best restart still changes with the KMeans seed)."
)


def _members(record: dict[str, Any]) -> int:
    """Members of a geneae record's model (records before the setting: one)."""
    return int(record.get("members") or 1)


def _restarts(record: dict[str, Any]) -> int:
    """KMeans restarts a record was scored with (records before the setting: 10)."""
    return int(record.get("kmeans_restarts") or 10)


def _epoch_range(ok: list[dict[str, Any]]) -> str:
    """The epochs of a method's runs: ``94``, ``40–94``, or per member ``3 x 136–146``."""
    per_member = [r["epochs_per_member"] for r in ok if r.get("epochs_per_member")]
    if per_member:
        eps = [int(e) for each in per_member for e in each]
        members = {len(each) for each in per_member}
        prefix = f"{'/'.join(map(str, sorted(members)))} x "
    else:
        eps = [int(r["epochs"]) for r in ok if r.get("epochs") is not None]
        prefix = ""
    if not eps:
        return "–"
    return prefix + (str(eps[0]) if min(eps) == max(eps) else f"{min(eps)}–{max(eps)}")


def _concurrency_note(records: list[dict[str, Any]]) -> list[str]:
    """How many runs shared the machine and with how many threads (times depend on both)."""
    setups = Counter(
        (int(r.get("concurrent_jobs") or 1), r.get("torch_threads"))
        for r in records
        if r.get("status") == "ok"
    )
    if not setups:
        return []
    text = "; ".join(
        f"{n} runs {jobs} at a time with {threads} torch thread(s) each"
        for (jobs, threads), n in sorted(setups.items())
    )
    return [
        f"Run conditions: {text}. Times compare methods fairly only within one condition; the "
        "speed section below measures per-epoch time on an idle machine.",
        "",
    ]


def _restarts_note(records: list[dict[str, Any]]) -> list[str]:
    """KMeans restarts of the scores (records older than the setting were scored with 10)."""
    restarts = Counter(_restarts(r) for r in records if r.get("status") == "ok")
    if not restarts:
        return []
    text = "; ".join(f"{n} runs with {k}" for k, n in sorted(restarts.items(), reverse=True))
    mixed = f" {_RESTARTS_CAVEAT}" if len(restarts) > 1 else ""
    return [f"KMeans restarts (k-means++ starts, least inertia kept): {text}.{mixed}", ""]


def _cross_dataset(
    agg: dict[str, dict[str, dict[str, Any]]], title: str = "Across datasets", scope: str = ""
) -> list[str]:
    methods = _ordered({m for by in agg.values() for m, a in by.items() if a["ok"]})
    if not methods:
        return []
    lines = [
        f"### {title}",
        "",
        scope
        + "Mean over the datasets each method finished (per-dataset means over seeds, then the "
        "mean over datasets). Ratios are taken over the datasets both methods finished: "
        "mean(method) / mean(reference). `beats best peer`: datasets where the method's mean "
        f"ARI exceeds that of every peer ({', '.join(PEERS)}) run on it. `largest ARI sd`: "
        "the largest seed-to-seed standard deviation of the ARI over the datasets (stability).",
        "",
        "| method | datasets | mean ARI | mean NMI | "
        + " | ".join(f"{metric} / {_short(ref)}" for ref in REFERENCES for metric in ("ARI", "NMI"))
        + " | beats best peer (ARI) | largest ARI sd |",
        "|" + "---|" * (6 + 2 * len(REFERENCES)),
    ]
    for m in methods:
        ds = [d for d, by in agg.items() if m in by and by[m]["ari"][0] is not None]
        ari = sum(agg[d][m]["ari"][0] for d in ds) / len(ds)
        nmi = sum(agg[d][m]["nmi"][0] for d in ds) / len(ds)
        ratios = []
        for ref in REFERENCES:
            for metric in ("ari", "nmi"):
                common = [d for d in ds if ref in agg[d] and agg[d][ref][metric][0] is not None]
                if not common or m == ref:
                    ratios.append("–")
                    continue
                num = sum(agg[d][m][metric][0] for d in common)
                den = sum(agg[d][ref][metric][0] for d in common)
                ratios.append(_fmt(num / den, 2) + (f" ({len(common)})" if common != ds else ""))
        wins = []
        for d in ds:
            peer, best = _best_peer(agg[d])
            if peer and m not in PEERS and agg[d][m]["ari"][0] > best:
                wins.append(d)
        win_txt = (
            "–"
            if m in PEERS
            else f"{len(wins)} / {len(ds)}" + (f" ({', '.join(wins)})" if wins else "")
        )
        spreads = [(agg[d][m]["ari"][1], d) for d in ds if agg[d][m]["ari"][2] > 1]
        spread = max(spreads) if spreads else None
        spread_txt = "–" if spread is None else f"{spread[0]:.3f} ({spread[1]})"
        lines.append(
            f"| {m} | {len(ds)} | {_fmt(ari)} | {_fmt(nmi)} | {' | '.join(ratios)} | {win_txt} "
            f"| {spread_txt} |"
        )
    lines.append("")
    return lines


def _published(agg: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    lines = [
        "### Published reference figures",
        "",
        "Quoted from shared/data/README.md (not measured here; the data variants of the "
        "sources differ, so they are reference points, not exact targets).",
        "",
        "| dataset | published | source | recommended ARI | reaches it? | best geneae preset ARI |",
        "|---|---|---|---|---|---|",
    ]
    for d, ref in PUBLISHED.items():
        pub = f"ARI {ref['ari']}" + (f" / NMI {ref['nmi']}" if ref.get("nmi") else "")
        rec = agg.get(d, {}).get("recommended")
        if rec is None or rec["ari"][0] is None:
            lines.append(f"| {d} | {pub} | {ref['method']} | not run | – | – |")
            continue
        reaches = "yes" if rec["ari"][0] >= ref["ari"] else "no"
        if ref.get("nmi") and rec["nmi"][0] is not None:
            reaches += " (NMI " + ("yes" if rec["nmi"][0] >= ref["nmi"] else "no") + ")"
        presets = [
            (p, agg[d][p]["ari"][0])
            for p in GENEAE_PRESETS
            if p in agg[d] and agg[d][p]["ari"][0] is not None
        ]
        best = max(presets, key=lambda t: t[1]) if presets else None
        best_txt = f"{_fmt(best[1])} ({best[0]})" if best else "–"
        lines.append(
            f"| {d} | {pub} | {ref['method']} | {_pm(rec['ari'])} | {reaches} | {best_txt} |"
        )
    lines.append("")
    return lines


def _losses(agg: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    items = []
    for d, by in agg.items():
        peer, best = _best_peer(by)
        if not peer:
            continue
        for metric, name in (("ari", "ARI"), ("nmi", "NMI"), ("ari_leiden", "Leiden ARI")):
            p_m, p_v = _best_peer(by, metric)
            rec = by.get("recommended", {}).get(metric, (None, None, 0))[0]
            if rec is not None and rec < p_v:
                items.append(
                    f"- {d}: `recommended` {name} {rec:.3f} < best peer "
                    f"`{p_m}` {p_v:.3f} ({rec - p_v:+.3f})."
                )
        presets = [(p, by[p]["ari"][0]) for p in GENEAE_PRESETS if p in by and by[p]["ari"][0]]
        if presets:
            bp, bv = max(presets, key=lambda t: t[1])
            if bv < best:
                items.append(
                    f"- {d}: no geneae preset reaches the best peer's ARI "
                    f"(best preset `{bp}` {bv:.3f} vs `{peer}` {best:.3f})."
                )
    lines = ["### Where geneae loses (quality)", ""]
    lines += items or [
        "- Nowhere among the runs present: `recommended` matches or beats the best "
        "peer on ARI and NMI on every dataset run."
    ]
    lines.append("")
    return lines


def _speed_section(doc: dict[str, Any] | None) -> list[str]:
    if doc is None:
        return [
            "## Speed",
            "",
            "Not run. Run " + _cmd("speed") + ".",
            "",
        ]
    ds = doc.get("dataset", {})
    lines = [
        "## Speed",
        "",
        f"{ds.get('name')} ({ds.get('n_cells'):,} cells x {ds.get('n_genes'):,} genes): geneae "
        f"VAE-NB and scvi-tools SCVI (NB), both one hidden layer of 128, latent 10, batch 128, "
        f"no validation, no early stopping, in the same process with "
        f"{doc.get('torch_threads')} torch threads. Per-epoch time = (t(2N) - t(N)) / N with "
        f"N = {doc['cpu']['epochs'][0]} (set-up and warm-up "
        f"excluded); `naive` = t(2N) / 2N. Achieved GFLOP/s = 6 x cells x sum(in x out) of the "
        "linear layers a training step actually runs (traced with forward hooks), per epoch; "
        "compared with a 2048^3 float32 matmul and with the same GEMM shapes at batch 128 "
        "measured alone (forward, grad-input, grad-weight). "
        f"1-minute load average at start / end: {_load1(doc.get('loadavg_start'))} / "
        f"{_load1(doc.get('loadavg_end'))} on {doc.get('machine', {}).get('cpu_cores')} cores.",
        "",
    ]
    lines += _speed_table("CPU", doc.get("cpu"), doc.get("matmul_cpu"))
    return lines


def _load1(load: list[float] | None) -> str:
    return "–" if not load else f"{load[0]:.1f}"


def _speed_table(title: str, part: dict[str, Any] | None, mm: dict[str, Any] | None) -> list[str]:
    if not part:
        return [f"{title}: not run.", ""]
    mm = mm or {}
    bf16 = mm.get("gflops_2048_bf16")
    lines = [
        f"### {title}",
        "",
        f"2048^3 matmul: {_num(mm.get('gflops_2048'))} GFLOP/s in float32"
        + (f", {_num(bf16)} in bfloat16" if bf16 else "")
        + (f" ({mm.get('threads')} threads)" if mm.get("threads") else "")
        + ". `precision`: what the row trained in (geneae: its default `train.precision: "
        "auto`, see geneae.precision; the float32 row is geneae with `train.precision: 32`).",
        "",
        "| model | precision | s/epoch | naive s/epoch | cells/s | linear MACs / cell | "
        "GFLOP/s | % of float32 2048 matmul | % of 2048 matmul in own precision | % of own "
        "GEMMs at batch 128 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SPEED_ROWS:
        r = part.get(name)
        if not r:
            continue
        if r.get("status") != "ok":
            lines.append(f"| {name} | | failed: {r.get('error')} | | | | | | | |")
            continue
        f1 = r.get("fraction_of_matmul_2048")
        f_own = r.get("fraction_of_matmul_2048_own_precision")
        f2 = r.get("fraction_of_gemm_at_batch")
        lines.append(
            f"| {name} | {r.get('precision', '32')} | {_fmt(r['seconds_per_epoch'])} | "
            f"{_fmt(r['seconds_per_epoch_naive'])} | "
            f"{_num(r.get('cells_per_s'))} | {r['linear_macs_per_cell']:,} | "
            f"{_fmt(r.get('achieved_gflops'), 2)} | {_fmt(100 * f1 if f1 else None, 1)} | "
            f"{_fmt(100 * f_own if f_own else None, 1)} | {_fmt(100 * f2 if f2 else None, 1)} |"
        )
    lines.append("")
    ratio = part.get("ratio_geneae_over_scvi")
    if ratio is not None:
        verdict = (
            f"geneae is {1 / ratio:.2f}x as fast per epoch as scvi-tools"
            if ratio < 1
            else f"geneae is slower per epoch than scvi-tools ({ratio:.2f}x its time)"
        )
        lines += [f"Per-epoch time geneae / scvi-tools: **{ratio:.2f}** — {verdict}.", ""]
    full, fast = part.get("geneae-float32"), part.get("geneae")
    if full and fast and full.get("status") == fast.get("status") == "ok":
        gain = full["seconds_per_epoch"] / fast["seconds_per_epoch"]
        lines += [f"geneae {fast.get('precision')} / float32 per-epoch speed-up: {gain:.2f}x.", ""]
    gemm = (part.get("geneae") or {}).get("gemm_at_batch", {})
    shapes = gemm.get("layers")
    if shapes:
        lines += [
            f"GEMM shapes of geneae's step at batch 128 in {gemm.get('dtype', 'float32')}, "
            "measured alone (GFLOP/s):",
            "",
            "| layer in -> out | forward | grad-input | grad-weight |",
            "|---|---|---|---|",
        ]
        for s in shapes:
            lines.append(
                f"| {s['in']} -> {s['out']} | {_num(s['forward_gflops'])} | "
                f"{_num(s['grad_input_gflops'])} | {_num(s['grad_weight_gflops'])} |"
            )
        lines.append("")
    return lines


def _scaling_section(doc: dict[str, Any] | None, fig_link: str | None) -> list[str]:
    recs = sorted(
        (r for r in (doc or {}).get("records", [])),
        key=lambda r: r["n_cells"],
    )
    if not recs:
        return ["## Scaling", "", "Not run. Run " + _cmd("scaling") + ".", ""]
    lines = [
        "## Scaling",
        "",
        "Default geneae count model (`GeneAE()` defaults: NB VAE, 1 x 128, latent 10, 10% "
        "validation; these figures were measured at batch 128, the default before 256) on "
        "synthetic sparse NB counts (benchmarks/synthetic.py: 10 clusters, "
        "2,000 genes, generated in chunks, seed 0), each size in its own process. `s/epoch` = "
        "training time / epochs (first epoch included). `data MB`: the CSR matrix (data, "
        "indices, indptr); `peak MB`: peak RSS of the whole run, including generating the data "
        "(a transient 2x of it while blocks are concatenated); `fit peak MB`: peak RSS from the "
        "data in memory to the fitted model (the peak is reset after generating, Linux "
        "clear_refs); `fit peak - imports`: that minus the process's RSS after importing its "
        "libraries, i.e. what the data and geneae's preprocessing and training hold at most.",
        "",
        "| cells | zeros | data MB | dense MB | epochs | s/epoch | µs / cell / epoch | peak MB "
        "| fit peak MB | fit peak - imports MB | (fit peak - imports) / data |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok = []
    for r in recs:
        if r.get("status") != "ok":
            lines.append(
                f"| {r['n_cells']:,} | {r.get('status')}: {r.get('error')} | | | | | | | | | |"
            )
            continue
        ok.append(r)
        extra = _fit_peak(r) - r["rss_after_imports_mb"]
        lines.append(
            f"| {r['n_cells']:,} | {100 * r['sparsity']:.1f}% | {_num(r['data_mb'])} | "
            f"{_num(r['dense_mb'])} | {r['epochs']} | {_num(r['seconds_per_epoch'])} | "
            f"{_num(1e6 * r['seconds_per_epoch'] / r['n_cells'])} | {_num(r['peak_rss_mb'])} | "
            f"{_num(r.get('peak_rss_fit_mb'))} | {_num(extra)} | {_fmt(extra / r['data_mb'], 1)} |"
        )
    lines.append("")
    lines += _scaling_summary(ok)
    if fig_link:
        lines += [f"![seconds per epoch and memory vs cells]({fig_link})", ""]
    return lines


def _fit_peak(r: dict[str, Any]) -> float:
    """Peak RSS while fitting where measured (records from before it: the run's peak)."""
    return float(r.get("peak_rss_fit_mb") or r["peak_rss_mb"])


def _scaling_summary(ok: list[dict[str, Any]]) -> list[str]:
    """Growth between the smallest and the largest size that finished."""
    if len(ok) < 2:
        return []
    a, b = ok[0], ok[-1]
    ma = _fit_peak(a) - a["rss_after_imports_mb"]
    mb = _fit_peak(b) - b["rss_after_imports_mb"]
    d_data = b["data_mb"] - a["data_mb"]
    if ma <= 0 or d_data <= 0 or a["seconds_per_epoch"] <= 0 or b["seconds_per_epoch"] <= 0:
        return []
    t_ratio = b["seconds_per_epoch"] / a["seconds_per_epoch"]
    t_slope = math.log(t_ratio) / math.log(b["n_cells"] / a["n_cells"])
    per_mb = (mb - ma) / d_data
    return [
        f"From {a['n_cells']:,} to {b['n_cells']:,} cells the time per epoch grew "
        f"{t_ratio:.1f}x (log-log slope {t_slope:.2f}; 1 = linear in cells) and the memory "
        f"the fit held at its peak grew {mb / ma:.1f}x for {b['data_mb'] / a['data_mb']:.1f}x "
        "the data: "
        f"{per_mb:.1f} MB per MB of sparse data on top of about "
        f"{ma - a['data_mb'] * per_mb:.0f} MB (a straight line through the smallest and the "
        "largest size).",
        "",
    ]


# -- figures ------------------------------------------------------------------------------------
def plot_quality_vs_time(doc: dict[str, Any] | None, path: Path) -> Path | None:
    if doc is None or not doc.get("records"):
        return None
    agg = aggregate(doc["records"])
    panels = [d for d in [*DATASETS, *sorted(set(agg) - set(DATASETS))] if d in agg]
    panels = [d for d in panels if _count_set(d)]
    panels = [d for d in panels if any(a["ok"] for a in agg[d].values())]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = _ordered({m for d in panels for m in agg[d]})
    cmap = plt.get_cmap("tab10")
    colors = {m: cmap(i % 10) for i, m in enumerate(methods)}
    n = len(panels) + 1
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    flat = axes.ravel()
    for ax, d in zip(flat, panels, strict=False):
        for m in methods:
            a = agg[d].get(m)
            if not a or a["ari"][0] is None or a["fit_s"][0] is None:
                continue
            marker = "s" if m in PEERS else "o"
            ax.errorbar(
                a["fit_s"][0],
                a["ari"][0],
                yerr=a["ari"][1] or 0,
                fmt=marker,
                color=colors[m],
                label=m,
                capsize=2,
            )
        ax.set_xscale("log")
        ax.set_title(d)
        ax.set_xlabel("fit time (s)")
        ax.set_ylabel("ARI (KMeans)")
        ax.grid(alpha=0.3)
    ax = flat[len(panels)]
    for m in methods:
        ds = [d for d in panels if m in agg[d] and agg[d][m]["ari"][0] is not None]
        if not ds:
            continue
        ari = sum(agg[d][m]["ari"][0] for d in ds) / len(ds)
        t = sum(agg[d][m]["fit_s"][0] for d in ds) / len(ds)
        ax.plot(t, ari, "s" if m in PEERS else "o", color=colors[m], label=f"{m} ({len(ds)})")
    ax.set_xscale("log")
    ax.set_title("mean over datasets (n datasets)")
    ax.set_xlabel("mean fit time (s)")
    ax.set_ylabel("mean ARI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    for extra in flat[len(panels) + 1 :]:
        extra.axis("off")
    fig.suptitle("Clustering quality vs training time (squares: peers, circles: geneae)")
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)
    return path


# -- the document -----------------------------------------------------------------------------
def write_report(out_dir: Path, path: Path | None = None) -> Path:
    path = Path(path) if path is not None else BENCHMARKS_MD
    docs = {
        "quality": read_json(out_dir / "quality.json"),
        "speed": read_json(out_dir / "speed.json"),
        "scaling": read_json(out_dir / "scaling.json"),
        "ablation": read_json(out_dir / "ablation.json"),
        "wallclock": read_json(out_dir / "wallclock.json"),
        "outofcore": read_json(out_dir / "outofcore.json"),
        "profile": read_json(out_dir / "profile.json"),
        "gpu": read_json(out_dir / "gpu.json"),
    }

    def link(p: Path | None) -> str | None:
        return None if p is None else os.path.relpath(p, path.parent).replace(os.sep, "/")

    qfig = link(plot_quality_vs_time(docs["quality"], out_dir / "quality_vs_time.png"))
    sfig = link(plot_scaling(docs["scaling"], out_dir / "scaling.png"))
    lines = [
        "# geneae benchmarks",
        "",
        f"Generated by `python -m benchmarks report` on {now()} from the JSON files in "
        f"`{link(out_dir) or out_dir}/`; edit the harness (benchmarks/), not this file. "
        "Every number below comes from those files, except the published reference figures, "
        "which are quoted with their source.",
        "",
    ]
    # The GPU part ran on another machine: its own section names it.
    lines += _machine_section([d for name, d in docs.items() if d and name != "gpu"])
    lines += _commands_section(docs)
    lines += _quality_sections(docs["quality"], qfig)
    lines += _speed_section(docs["speed"])
    lines += profile_markdown(docs["profile"])
    lines += gpu_markdown(docs["gpu"])
    lines += wallclock_markdown(docs["wallclock"], docs.get("quality"))
    lines += _scaling_section(docs["scaling"], sfig)
    lines += _ablation_section(docs["ablation"])
    lines += outofcore_markdown(docs["outofcore"])
    write_text_atomic(path, "\n".join(lines).rstrip() + "\n")
    return path
