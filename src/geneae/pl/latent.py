"""How the latent space is used: variance (and KL to the prior) per latent dimension."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from geneae.errors import InputError
from geneae.pl._style import GENEAE_COLOR, VALIDATION_COLOR, new_axes, styled

#: Inches the latent-usage figure is wide at most, and dimension labels it writes at most.
MAX_WIDTH = 12.0
MAX_TICKS = 40


@styled
def latent_variance(usage: Mapping[str, Any], *, ax: Axes | None = None) -> Figure:
    """Variance of each latent dimension across cells, with its KL to the prior if known.

    Parameters
    ----------
    usage
        Output of :func:`geneae.evaluate.latent_usage` or any mapping with ``variance`` (per
        dim) and optionally ``kl`` (per dim) and ``active`` (per dim).
    ax
        Axes to draw into. With KL values a twin y-axis (right) is added for them.
    """
    if "variance" not in usage:
        raise InputError(
            "usage needs 'variance' (one per latent dimension), as "
            "geneae.evaluate.latent_usage gives it."
        )
    variance = np.asarray(usage["variance"], dtype=np.float64)
    kl = usage.get("kl")
    kl = None if kl is None else np.asarray(kl, dtype=np.float64)
    d = len(variance)
    # Wide enough to tell the bars apart, but never a strip too thin to read once scaled
    # to a page (an ensemble of seven members has 70 dimensions).
    fig, ax = new_axes(ax, (min(MAX_WIDTH, max(5.0, 0.45 * d + 2.5)), 3.4))
    pos = np.arange(d)
    width = 0.4 if kl is not None else 0.7
    active = np.asarray(usage.get("active", [True] * d), dtype=bool)
    colors = [GENEAE_COLOR if a else "#b3c6de" for a in active]
    ax.bar(pos - (width / 2 if kl is not None else 0), variance, width, color=colors)
    ax.set_ylabel("variance across cells", color=GENEAE_COLOR)
    ax.set_xlabel("latent dimension")
    step = max(1, int(np.ceil(d / MAX_TICKS)))
    ax.set_xticks(pos[::step])
    ax.set_xticklabels([str(i) for i in pos[::step]], fontsize=7 if d > 30 else 8)
    if kl is not None:
        twin = ax.twinx()
        twin.bar(pos + width / 2, kl, width, color=VALIDATION_COLOR)
        twin.set_ylabel("KL to prior (nats)", color=VALIDATION_COLOR)
        twin.spines["right"].set_visible(True)
    n_active = int(usage.get("n_active", active.sum()))
    criterion = usage.get("criterion")
    shown = {"kl": "KL"}.get(str(criterion), criterion)
    note = f" ({shown} > {usage.get('threshold', 0.01):g})" if criterion else ""
    ax.set_title(f"latent usage: {n_active} of {d} dimensions active{note}")
    return fig
