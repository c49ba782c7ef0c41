"""Hyperparameter search on Optuna (``geneae tune``).

- :mod:`~geneae.tune.space`: the search space (dotted config keys with ranges or choices),
  checked against the configuration schema.
- :mod:`~geneae.tune.objective`: one trial: draw, train, score (validation loss, or a label
  metric when asked).
- :mod:`~geneae.tune.reporter`: the Lightning callback that reports each epoch's validation
  loss to the trial (pruning, heartbeat).
- :mod:`~geneae.tune.storage`: storages from URLs, the identity of a study, dead workers.
- :mod:`~geneae.tune.worker`: the loop every worker runs; local worker processes.
- :mod:`~geneae.tune.study`: run or continue a study with one or more workers.
- :mod:`~geneae.tune.outputs`: trials table, ``best_config.yaml``, report.

Examples
--------
>>> from geneae import RunConfig, TuneConfig
>>> from geneae.tune import tune
>>> settings = TuneConfig(space={"model.latent_dim": "int:4:32"}, trials=20)
>>> tune("pbmc.h5ad", "studies/pbmc", RunConfig(), settings)  # doctest: +SKIP
"""

from geneae.tune.space import Dimension, Space, build_space, parse_space_text, read_space_file
from geneae.tune.study import TuneResult, tune

__all__ = [
    "Dimension",
    "Space",
    "TuneResult",
    "build_space",
    "parse_space_text",
    "read_space_file",
    "tune",
]
