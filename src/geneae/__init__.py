"""geneae: autoencoders for gene-expression data.

Learn compact latent representations of samples x genes matrices (bulk RNA-seq, single-cell
counts) and use them to cluster, visualise and denoise — always side by side with PCA.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("geneae")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from geneae import datasets, evaluate, pl, pp, tl  # noqa: E402
from geneae.config import (  # noqa: E402
    DataConfig,
    EvaluateConfig,
    ModelConfig,
    PreprocessConfig,
    RunConfig,
    TrainConfig,
)
from geneae.errors import (  # noqa: E402
    ConfigError,
    DataWarning,
    GeneaeError,
    GeneaeWarning,
    InputError,
    ModelFileError,
)
from geneae.io import read  # noqa: E402
from geneae.model import GeneAE, embed  # noqa: E402
from geneae.pp import Preprocessor  # noqa: E402
from geneae.presets import PRESETS  # noqa: E402

__all__ = [
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "DataWarning",
    "EvaluateConfig",
    "GeneAE",
    "GeneaeError",
    "GeneaeWarning",
    "InputError",
    "ModelConfig",
    "ModelFileError",
    "PreprocessConfig",
    "Preprocessor",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "datasets",
    "embed",
    "evaluate",
    "pl",
    "pp",
    "tl",
    "read",
]
