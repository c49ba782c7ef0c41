"""Exceptions and warnings raised by geneae.

Every error a user can cause is a :class:`GeneaeError`: its message says what went wrong,
where (file, key, column) and how to fix it. The CLI prints the message and exits 2.
"""

from __future__ import annotations


class GeneaeError(Exception):
    """Base class of every error a user can cause and fix."""


class InputError(GeneaeError, ValueError):
    """The data given (a file, a matrix, labels, a gene list) cannot be used as it is."""


class ConfigError(GeneaeError, ValueError):
    """A configuration value, preset name or command-line flag is invalid."""


class ModelFileError(GeneaeError):
    """A saved model or run directory is missing, incomplete, or would be overwritten."""


class NotFittedError(GeneaeError, ValueError, AttributeError):
    """A preprocessor or model was used before it was fitted or loaded.

    Same bases as scikit-learn's ``NotFittedError``, so code written for scikit-learn's
    estimators catches it as ``ValueError`` / ``AttributeError``.
    """


class GeneaeWarning(UserWarning):
    """Base class of geneae's warnings (tests turn these into errors)."""


class TuneWarning(GeneaeWarning):
    """A study's objective may not measure what is wanted (tuned to labels, not comparable)."""


class DataWarning(GeneaeWarning):
    """The data was changed to make it usable (names made unique, rows dropped, genes dropped)."""
