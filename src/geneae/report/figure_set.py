"""Drawn report figures kept as PNG bytes, with notes, per section: :class:`FigureSet`.

:meth:`FigureSet.draw` renders a figure to PNG once (the same bytes are embedded in the
page and written to ``figures/``); a figure that fails to draw becomes a note with the
error and a logged warning, so one bad piece never costs the whole report. Which figures
a report draws is :mod:`geneae.report.figures`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from matplotlib.figure import Figure

__all__ = ["DPI", "FigureItem", "FigureSet"]

logger = logging.getLogger("geneae.report.figures")

DPI = 110


@dataclass
class FigureItem:
    """One drawn figure: file name, PNG bytes, alt text and a one-line reading guide."""

    name: str
    png: bytes
    alt: str
    caption: str
    heading: str | None = None
    half: bool = False  # shown at half width, beside its neighbour


@dataclass
class FigureSet:
    """Figures and notes per report section, in drawing order."""

    blocks: dict[str, list[FigureItem | str]] = field(default_factory=dict)

    def note(self, section: str, text: str) -> None:
        """Add a note (in place of a figure) to ``section``."""
        self.blocks.setdefault(section, []).append(text)

    def draw(
        self,
        section: str,
        name: str,
        make: Callable[[], Figure],
        *,
        alt: str,
        caption: str,
        heading: str | None = None,
        half: bool = False,
    ) -> None:
        """Draw one figure with ``make`` and keep its PNG bytes."""
        try:
            buffer = io.BytesIO()
            make().savefig(buffer, format="png", dpi=DPI)
        except Exception as exc:  # noqa: BLE001 - a report shows what it can
            logger.warning("report: figure %s failed", name, exc_info=True)
            self.note(
                section, f"The figure “{alt}” could not be drawn ({type(exc).__name__}: {exc})."
            )
            return
        item = FigureItem(name, buffer.getvalue(), alt, caption, heading, half)
        self.blocks.setdefault(section, []).append(item)

    @property
    def items(self) -> list[FigureItem]:
        """Every figure, in section and drawing order (the notes left out)."""
        return [b for blocks in self.blocks.values() for b in blocks if isinstance(b, FigureItem)]
