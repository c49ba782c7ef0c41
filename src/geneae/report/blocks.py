"""A section's figures laid out for the template: notes, sub-headings, figure rows.

Turns the blocks :func:`geneae.report.figures.draw_figures` drew for a section into plain
dicts, the PNGs inlined as data URLs; two half-width figures share a row.
"""

from __future__ import annotations

import base64
from typing import Any

from geneae.report.figure_set import FigureItem, FigureSet

__all__ = ["figure_blocks"]


def figure_blocks(figs: FigureSet, section: str) -> list[dict[str, Any]]:
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
    """One figure as the template shows it: id, inline PNG, alt text, caption."""
    data = base64.b64encode(item.png).decode("ascii")
    return {
        "id": f"fig-{item.name}",
        "src": f"data:image/png;base64,{data}",
        "alt": item.alt,
        "caption": item.caption,
    }
