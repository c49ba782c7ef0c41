"""What a study found, in its output folder.

- ``trials.csv``: one row per trial: number, state, value, every tuned setting, epochs,
  best epoch, validation loss, seconds, worker, retries and errors.
- ``best_config.yaml``: the resolved configuration of the best trial;
  ``geneae train DATA --config best_config.yaml`` trains that model again, number for number.
- ``tune_report.md`` with ``figures/tune_history.png`` and
  ``figures/tune_importances.png``: the optimisation history and the importance of each
  setting (Optuna's default evaluator, fANOVA), computed here and drawn by :mod:`geneae.pl`.

Every file is written to a temporary name and renamed, so several workers finishing at once
leave complete files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geneae._atomic import atomic_path, write_bytes, write_text
from geneae.tune.objective import OBJECTIVES
from geneae.tune.space import Space

TRIALS = "trials.csv"
BEST_CONFIG = "best_config.yaml"
REPORT = "tune_report.md"
FIGURES = "figures"
HISTORY_PNG = "tune_history.png"
IMPORTANCES_PNG = "tune_importances.png"
# User attributes of a trial shown as columns of the table, in this order.
ATTR_COLUMNS = (
    "val_loss",
    "best_epoch",
    "epochs_trained",
    "pruned_epoch",
    "train_s",
    "host",
    "pid",
    "retry_of",
    "error",
)


def trials_table(study: Any, space: Space) -> pd.DataFrame:
    """One row per trial (trials handed back unrun are left out), by number."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "value": _value(t)}
        for key in space.keys:
            value = t.params.get(key)
            row[key] = value
        for key in ATTR_COLUMNS:
            row[key] = t.user_attrs.get(key)
        row["duration_s"] = round(t.duration.total_seconds(), 3) if t.duration is not None else None
        rows.append(row)
    columns = ["number", "state", "value", *space.keys, *ATTR_COLUMNS, "duration_s"]
    table = pd.DataFrame(rows, columns=columns)
    for column in columns:  # whole numbers stay whole where a trial has none (was: 5.0)
        given = [row.get(column) for row in rows if row.get(column) is not None]
        if given and all(
            isinstance(v, int | np.integer) and not isinstance(v, bool) for v in given
        ):
            table[column] = table[column].astype("Int64")
    return table.sort_values("number", ignore_index=True)


def history(study: Any) -> pd.DataFrame:
    """Trial number, state and value (pruned trials: their last reported value)."""
    table = [
        (t.number, t.state.name, _value(t))
        for t in study.get_trials(deepcopy=False)
        if not t.user_attrs.get("surplus")
    ]
    return pd.DataFrame(table, columns=["number", "state", "value"]).sort_values("number")


def importances(study: Any) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances (fANOVA) of the complete trials, or a note why none."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"{len(complete)} complete trial(s): importances need at least 2."
    try:
        values = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as exc:
        return {}, f"importances could not be computed ({exc})."
    return {str(k): float(v) for k, v in values.items()}, None


def write_outputs(
    study: Any, out_dir: Path, space: Space, objective: str, *, data_path: str
) -> list[Path]:
    """Write the trials table, best configuration and report; return their paths."""
    from optuna.trial import TrialState

    out_dir = Path(out_dir)
    files = []
    table = trials_table(study, space)
    with atomic_path(out_dir / TRIALS) as tmp:
        table.to_csv(tmp, index=False)
    files.append(out_dir / TRIALS)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    if best is not None and "config" in best.user_attrs:
        text = (
            f"# geneae tune: best trial {best.number} of study {study.study_name!r} "
            f"({objective} = {best.value:.6g})\n" + str(best.user_attrs["config"])
        )
        write_text(out_dir / BEST_CONFIG, text)
        files.append(out_dir / BEST_CONFIG)
    weights, note = importances(study)
    files += _figures(study, out_dir, objective, weights)
    report = _report(study, table, objective, weights, note, best, data_path, out_dir)
    write_text(out_dir / REPORT, report)
    files.append(out_dir / REPORT)
    return files


def _figures(study: Any, out_dir: Path, objective: str, weights: dict[str, float]) -> list[Path]:
    import io

    from geneae import pl

    h = history(study)
    figures = {
        HISTORY_PNG: pl.optimization_history(
            h["number"],
            h["value"],
            h["state"],
            direction=OBJECTIVES[objective][0],
            label=objective,
        ),
        IMPORTANCES_PNG: pl.param_importances(weights),
    }
    paths = []
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        write_bytes(out_dir / FIGURES / name, buffer.getvalue())
        paths.append(out_dir / FIGURES / name)
    return paths


def _report(
    study: Any,
    table: pd.DataFrame,
    objective: str,
    weights: dict[str, float],
    note: str | None,
    best: Any,
    data_path: str,
    out_dir: Path,
) -> str:
    direction, meaning = OBJECTIVES[objective]
    counts = table["state"].value_counts().to_dict()
    lines = [
        f"# geneae tune: study `{study.study_name}`",
        "",
        f"- data: `{data_path}`",
        f"- objective: **{objective}** ({direction}): {meaning}",
        "- trials: "
        + ", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL"))
        + (f", {counts['RUNNING']} running" if counts.get("RUNNING") else ""),
        "",
        "## Best trial",
        "",
    ]
    if best is None:
        lines += ["No trial has completed yet.", ""]
    else:
        attrs = best.user_attrs
        lines += [
            f"Trial {best.number}: {objective} = {best.value:.6g}"
            + (f", best epoch {attrs['best_epoch']}" if "best_epoch" in attrs else "")
            + (f" of {attrs['epochs_trained']} trained" if "epochs_trained" in attrs else "")
            + ".",
            "",
            "| setting | value |",
            "|---|---|",
            *[f"| `{k}` | {v} |" for k, v in best.params.items()],
            "",
            f"Its resolved configuration is `{BEST_CONFIG}`; train it again with",
            "",
            f"    geneae train {data_path} --config {out_dir / BEST_CONFIG} --out runs/best",
            "",
        ]
    lines += [
        "## Optimisation history",
        "",
        f"![Value of each trial and the best so far]({FIGURES}/{HISTORY_PNG})",
        "",
        "Blue: complete trials; grey crosses: pruned trials at the last value they reported "
        "(the validation loss of their last epoch); red: the best value so far.",
        "",
        "## Parameter importances",
        "",
    ]
    if weights:
        lines += [
            "How much of the variation of the objective each setting explains (Optuna's "
            "fANOVA evaluator over the complete trials; the values sum to 1).",
            "",
            "| setting | importance |",
            "|---|---|",
            *[f"| `{k}` | {v:.3f} |" for k, v in weights.items()],
            "",
            f"![Parameter importances]({FIGURES}/{IMPORTANCES_PNG})",
            "",
        ]
    else:
        lines += [f"Not available: {note}", ""]
    shown = table[table["state"].isin(["COMPLETE", "PRUNED"])]
    ascending = direction == "minimize"
    shown = shown.sort_values("value", ascending=ascending, na_position="last").head(10)
    keys = [c for c in table.columns if "." in c]
    lines += [
        "## Best trials",
        "",
        f"All trials are in `{TRIALS}`.",
        "",
        "| trial | state | " + objective + " | " + " | ".join(f"`{k}`" for k in keys) + " |",
        "|---" * (3 + len(keys)) + "|",
    ]
    for _, row in shown.iterrows():
        cells = [str(int(row["number"])), str(row["state"]), _fmt(row["value"])]
        cells += [_fmt(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _value(trial: Any) -> float:
    if trial.value is not None:
        return float(trial.value)
    steps = trial.intermediate_values
    if steps:
        return float(steps[max(steps)])
    return math.nan


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
