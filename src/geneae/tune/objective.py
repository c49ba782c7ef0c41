"""One trial: draw a configuration, train it once, score it with the study's objective.

Objectives:

- ``loss`` (the default, label-free): the validation loss at the best epoch, i.e. the
  lowest ``val_loss`` of the training history (the held-out cells' reconstruction loss
  plus the KL term at its final weight for variational families); minimised.
- ``ari`` / ``nmi``: agreement of clusters of the latent space (the configuration's
  ``evaluate.cluster_method``, as many clusters as label classes unless
  ``evaluate.n_clusters`` says otherwise) with the known labels, on all cells; maximised.
  This tunes the model to those labels: quote the chosen model's scores on other data.

Trials whose preprocessing is the same share the preprocessed data (:class:`DataCache`),
so a study over model and training settings preprocesses once per worker.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import anndata as ad
import numpy as np

from geneae.config import RunConfig
from geneae.errors import InputError
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.tune.space import Space

# objective -> (Optuna direction, what the value is)
OBJECTIVES: dict[str, tuple[str, str]] = {
    "loss": (
        "minimize",
        "validation loss at the best epoch (the lowest val_loss of the training history: "
        "held-out reconstruction loss plus the weighted KL term); lower is better",
    ),
    "ari": (
        "maximize",
        "adjusted Rand index of latent-space clusters against the known labels; higher is "
        "better (tuned to the labels)",
    ),
    "nmi": (
        "maximize",
        "normalised mutual information of latent-space clusters and the known labels; "
        "higher is better (tuned to the labels)",
    ),
}


class DataCache:
    """The data of one worker, preprocessed once per distinct preprocessing.

    Keeps the last ``size`` preprocessed versions (a study that tunes preprocessing keys
    would otherwise hold one copy of the data per combination).
    """

    def __init__(self, adata: ad.AnnData, *, layer: str | None = None, size: int = 2) -> None:
        self.adata = adata
        self.layer = layer
        self.size = size
        self.entries: list[tuple[Any, Any]] = []  # (donor model, prepared)

    def model_for(self, config: RunConfig) -> tuple[Any, Any]:
        """A new model for ``config`` and the data prepared for it."""
        from geneae.model import GeneAE

        model = GeneAE(config)
        for donor, prepared in self.entries:
            try:
                model.share_preprocessing(donor, prepared)
            except ValueError:
                continue
            return model, prepared
        prepared = model.preprocess_for_training(self.adata, layer=self.layer)
        self.entries.append((model, prepared))
        del self.entries[: -max(1, self.size)]
        return model, prepared


def run_trial(
    trial: Any,
    *,
    base: RunConfig,
    space: Space,
    objective: str,
    cache: DataCache,
    prune: bool,
) -> float:
    """Train the configuration ``trial`` draws from ``space`` on top of ``base``; its score.

    Records on the trial: ``config`` (the resolved configuration, YAML: what
    ``best_config.yaml`` holds), ``val_loss``, ``best_epoch``, ``epochs_trained``,
    ``train_s`` and, when pruned, ``pruned_epoch``. Raises :class:`optuna.TrialPruned`
    when the pruner stops it.
    """
    from geneae.tune.reporter import TrialReporter

    overrides = space.suggest(trial)
    config = base.updated(overrides, source=f"trial {trial.number}")
    config.train.quiet = True
    with _quiet():
        model, prepared = cache.model_for(config)
    stored = model.config.model_copy(deep=True)
    stored.train.quiet = base.train.quiet  # quiet in trials; as asked in best_config.yaml
    trial.set_user_attr("config", stored.to_yaml())
    reporter = TrialReporter(trial, prune=prune and objective == "loss")
    start = time.perf_counter()
    try:
        with _quiet():
            model.train(prepared, callbacks=[reporter])
    finally:
        trial.set_user_attr("train_s", round(time.perf_counter() - start, 3))
        if reporter.pruned_epoch is not None:
            trial.set_user_attr("pruned_epoch", reporter.pruned_epoch)
            trial.set_user_attr("epochs_trained", reporter.pruned_epoch + 1)
    history = model.history
    trial.set_user_attr("epochs_trained", int(len(history)))
    loss = _best_loss(history)
    if loss is not None:
        trial.set_user_attr("val_loss", loss[0])
        trial.set_user_attr("best_epoch", loss[1])
    if objective == "loss":
        if loss is None:
            raise InputError(
                "the loss objective needs the validation loss, but training logged none; "
                "set train.validation > 0."
            )
        return loss[0]
    return label_score(model, prepared, objective)


def no_labels(objective: str) -> InputError:
    """The refusal of a label objective on data without labels."""
    return InputError(
        f"--objective {objective} needs known labels; name their column with --labels "
        "(or give --labels-file), or use the label-free --objective loss."
    )


def label_score(model: Any, prepared: Any, objective: str) -> float:
    """ARI or NMI of clusters of ``model``'s latent space against ``prepared``'s labels."""
    from geneae.evaluate import cluster, clustering_scores
    from geneae.results import labels_of

    labels = labels_of(prepared.data)
    if labels is None:
        raise no_labels(objective)
    outputs = model.predict(prepared, reconstruction_rows=np.zeros(0, int))
    cfg = model.config.evaluate
    method, clusters = cfg.cluster_method, None
    if method == "gmvae":
        if outputs.cluster_probabilities is not None:
            clusters = outputs.cluster_probabilities.argmax(1)
        else:
            method = "kmeans"
    seed = model.config.train.seed
    labelled = np.array([v is not None for v in labels], dtype=bool)
    if not labelled.any():
        raise InputError(f"--objective {objective}: no cell has a label (all NaN or blank).")
    # Every cell is clustered; cells without a label are left out of the score.
    k = cfg.n_clusters
    if k is None and clusters is None and method != "leiden":
        k = len(set(labels[labelled]))
    assigned = cluster(outputs.latent, method=method, n_clusters=k, seed=seed, clusters=clusters)
    scores = clustering_scores(
        outputs.latent[labelled], labels[labelled].astype(str), clusters=assigned[labelled],
        seed=seed,
    )  # fmt: skip
    return float(scores[objective])


def comparability_notes(space: Space, objective: str) -> list[str]:
    """Why trials' values may not be comparable under ``objective`` (empty: they are)."""
    if objective != "loss":
        return [
            f"--objective {objective} tunes the model to the known labels: the chosen "
            "settings fit these labels, so report the chosen model's scores on other data "
            "(or use the label-free --objective loss)."
        ]
    notes = []
    keys = {d.key: d for d in space.dimensions}
    for key, why in (
        ("train.kl_weight", "the loss weighs the KL term by it"),
        ("model.family", "variational families add a KL term, deterministic ones do not"),
        ("model.contrastive_weight", "it adds a contrastive term to the loss"),
    ):
        if key in keys:
            notes.append(
                f"{key} is tuned, but {why}: the validation losses of trials differ in kind."
            )
    likelihood = keys.get("model.likelihood")
    if likelihood is not None:
        kinds = {_loss_kind(v) for v in likelihood.choices}
        if len(kinds) > 1:
            notes.append(
                "model.likelihood mixes "
                + " and ".join(sorted(kinds))
                + ": their losses are in different units and cannot be compared; tune "
                "count likelihoods (poisson, nb, zip, zinb) among themselves."
            )
    tuned_pp = [k for k in keys if k.startswith("preprocess.")]
    if tuned_pp:
        notes.append(
            f"{', '.join(tuned_pp)} is tuned, but preprocessing changes the genes and values "
            "a model reconstructs, so the losses of trials are not on the same data."
        )
    return notes


def _loss_kind(likelihood: Any) -> str:
    if likelihood in COUNT_LIKELIHOODS:
        return "count likelihoods"
    if likelihood == "auto":
        return "auto (resolved from the data)"
    if likelihood in ("mse", "masked_mse"):
        return f"squared errors ({likelihood})"
    return f"{likelihood} log-likelihoods"


def _quiet() -> contextlib.AbstractContextManager[None]:
    """No Lightning banner (devices, tips) and no data decisions for every trial.

    One study trains many models: the decisions of the data were printed once for the base
    configuration (:func:`geneae.tune.tune`), and each trial's are in its configuration.
    """
    from geneae.train.trainer import LIGHTNING_LOGGERS, quiet_loggers

    return quiet_loggers(*LIGHTNING_LOGGERS, "geneae.resolve")


def _best_loss(history: Any) -> tuple[float, int] | None:
    if history is None or history.empty or "val_loss" not in history:
        return None
    values = history["val_loss"].astype(float)
    if not np.isfinite(values).any():
        return (float("nan"), -1)
    i = int(values.idxmin())
    return float(values.loc[i]), int(history.loc[i, "epoch"])
