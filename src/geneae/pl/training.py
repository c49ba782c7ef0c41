"""Per-epoch training and validation curves, from a run's history table."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from geneae.pl._style import GENEAE_COLOR, VALIDATION_COLOR, grid, message, styled

# Panels of the training-curve figure: title, columns (train / validation pairs or single
# series) and whether the y-axis is logarithmic.
_CURVE_PANELS: list[tuple[str, list[str], bool]] = [
    ("loss", ["train_loss", "val_loss"], False),
    ("reconstruction", ["train_reconstruction", "val_reconstruction"], False),
    ("KL divergence", ["train_kl", "val_kl"], False),
    ("ELBO", ["train_elbo", "val_elbo"], False),
    ("learning rate", ["lr"], True),
    ("KL weight (β)", ["kl_weight", "beta"], False),
    ("masking rate", ["mask_rate"], False),
]


def series_rows(history: pd.DataFrame, col: str, epoch: pd.Series) -> pd.Series:
    """The rows of ``history`` where column ``col`` and the epoch are both numbers."""
    return pd.to_numeric(history[col], errors="coerce").notna() & epoch.notna()


@styled
def training_curves(history: pd.DataFrame) -> Figure:
    """Per-epoch training and validation curves, one panel per quantity present.

    Parameters
    ----------
    history
        One row per epoch (rows with NaN gaps are fine; an ensemble's members one after
        the other, told apart by a ``member`` column: one line each, the first member
        drawn boldest): ``epoch`` plus any of
        ``train_loss``, ``val_loss``, ``train_reconstruction``, ``val_reconstruction``,
        ``train_kl``, ``val_kl``, ``train_elbo``, ``val_elbo``, ``lr``, ``kl_weight`` (or
        ``beta``), ``mask_rate``; any other ``train_*`` / ``val_*`` pair gets a panel too.
        Columns that are missing or all NaN are skipped.

    Returns
    -------
    Figure
        One axes per panel (a single "no history" panel when nothing is plottable).
    """
    epoch = history["epoch"] if "epoch" in history else pd.Series(history.index, dtype=float)
    known = {c for _, cols, _ in _CURVE_PANELS for c in cols} | {"epoch", "step"}
    extra = sorted(
        {c.split("_", 1)[1] for c in history.columns if c.startswith(("train_", "val_"))}
        - {c.split("_", 1)[1] for c in known if "_" in c}
    )
    panels = list(_CURVE_PANELS) + [(e, [f"train_{e}", f"val_{e}"], False) for e in extra]

    def series(col: str) -> pd.Series | None:
        if col not in history:
            return None
        keep = series_rows(history, col, epoch)
        values = pd.to_numeric(history[col], errors="coerce")
        return None if not keep.any() else pd.Series(values[keep].to_numpy(), epoch[keep])

    present = []
    for title, cols, log in panels:
        curves = [(c, s) for c in cols if (s := series(c)) is not None]
        if curves:
            present.append((title, curves, log))
    if not present:
        return message("no training history", (5.0, 3.0))
    fig, axes = grid(len(present), 3, (4.2, 3.0))
    best = series("val_loss")
    # An ensemble's history stacks its members' epochs (column "member"): one line each.
    member = history["member"] if "member" in history else pd.Series(0, index=history.index)
    first = member.iloc[0] if len(member) else 0
    for ax, (title, curves, log) in zip(axes, present, strict=True):
        for col, s in curves:
            is_val = col.startswith("val_")
            name = "validation" if is_val else ("train" if col.startswith("train_") else col)
            rows = member[series_rows(history, col, epoch)].to_numpy()
            for i in pd.unique(rows):
                ax.plot(
                    s.index[rows == i],
                    s.to_numpy()[rows == i],
                    color=VALIDATION_COLOR if is_val else GENEAE_COLOR,
                    ls="--" if is_val else "-",
                    lw=1.4 if i == first else 0.9,
                    alpha=1.0 if i == first else 0.45,
                    label=name if i == first else None,
                )
        if "member" in history:
            best = None  # each member has its own best epoch
        if title == "loss" and best is not None and len(best) > 1:
            ax.axvline(best.idxmin(), color="0.4", lw=0.8, ls=":", label="best validation")
        if log and all((s > 0).all() for _, s in curves):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        if len(curves) > 1 or title == "loss":
            ax.legend()
    return fig
