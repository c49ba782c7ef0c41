"""geneae: autoencoders for gene-expression data.

Learn compact latent representations of samples x genes matrices (bulk RNA-seq, single-cell
counts) and use them to cluster, visualise and denoise — always side by side with PCA.

The public names below load on first use (PEP 562), so ``import geneae`` and the command
line start fast; torch, scanpy and matplotlib are imported only by what needs them.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("geneae")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

# public name -> module that defines it (a module itself when the name is a subpackage)
_EXPORTS: dict[str, str] = {
    "datasets": "geneae.datasets",
    "evaluate": "geneae.evaluate",
    "genes": "geneae.genes",
    "pl": "geneae.pl",
    "pp": "geneae.pp",
    "tl": "geneae.tl",
    "tune": "geneae.tune",
    "DataConfig": "geneae.config",
    "EvaluateConfig": "geneae.config",
    "ModelConfig": "geneae.config",
    "PreprocessConfig": "geneae.config",
    "RunConfig": "geneae.config",
    "TrainConfig": "geneae.config",
    "TuneConfig": "geneae.config",
    "ConfigError": "geneae.errors",
    "DataWarning": "geneae.errors",
    "GeneaeError": "geneae.errors",
    "GeneaeWarning": "geneae.errors",
    "InputError": "geneae.errors",
    "ModelFileError": "geneae.errors",
    "read": "geneae.io",
    "GeneAE": "geneae.model",
    "Preprocessor": "geneae.pp",
    "PRESETS": "geneae.presets",
    "resolve": "geneae.resolve",
    "describe": "geneae.facts",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'geneae' has no attribute {name!r}")
    module = import_module(target)
    value = module if target == f"geneae.{name}" else getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static type checkers and IDEs see the real names
    from geneae import datasets, evaluate, genes, pl, pp, tl, tune  # noqa: F401
    from geneae.config import (  # noqa: F401
        DataConfig,
        EvaluateConfig,
        ModelConfig,
        PreprocessConfig,
        RunConfig,
        TrainConfig,
        TuneConfig,
    )
    from geneae.errors import (  # noqa: F401
        ConfigError,
        DataWarning,
        GeneaeError,
        GeneaeWarning,
        InputError,
        ModelFileError,
    )
    from geneae.facts import describe  # noqa: F401
    from geneae.io import read  # noqa: F401
    from geneae.model import GeneAE  # noqa: F401
    from geneae.pp import Preprocessor  # noqa: F401
    from geneae.presets import PRESETS  # noqa: F401
    from geneae.resolve import resolve  # noqa: F401
