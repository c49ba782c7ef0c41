"""The base class of every configuration section (see :mod:`geneae.config`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    """A configuration section: unknown keys are errors, assignments are validated.

    A misspelt key is an error naming the key and the allowed ones, never silently
    ignored; assigning a bad value to a field fails as reading it would.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
