"""The likelihood table: one entry per reconstruction likelihood, read by config, CLI and module.

Adding a likelihood is one row here plus its element-wise function in
:mod:`geneae.distributions` (see docs/architecture.md); the squared errors are in
:mod:`geneae.squared_errors`. This module imports no torch, so
the configuration schema and the command line can list the choices without loading it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Link = Literal["identity", "sigmoid", "softmax"]


@dataclass(frozen=True)
class Likelihood:
    """How a decoder models its target.

    Attributes
    ----------
    name
        The config / CLI name (``model.likelihood``).
    summary
        One line for ``--help`` and the docs.
    models_counts
        The target is raw counts: the decoder outputs proportions over genes (softmax) that
        the library size scales into expected counts, and the data must hold counts.
    parameters
        The likelihood head's outputs that the loss function takes, in order, after the
        target: ``mean`` (expected target), ``var`` (gene-wise variance), ``logits``
        (Bernoulli), ``theta`` (gene-wise inverse dispersion), ``pi_logits`` (zero
        inflation).
    link
        How ``mean`` comes from the decoder's output: ``identity``, ``sigmoid`` (of the
        logits) or ``softmax`` (proportions, times the library size).
    function
        The element-wise function: a log-probability in :mod:`geneae.distributions`, or
        (``is_log_prob`` False) a loss in :mod:`geneae.squared_errors`.
    is_log_prob
        ``function`` returns log-probabilities (the loss is their negative); otherwise it
        returns the loss itself (squared errors).
    weighs_by_scale
        A gene's share of the loss grows with its scale (its expression for the count
        likelihoods, its variance for squared error), so that lowly expressed marker genes
        hardly count; such a likelihood gets the standardised term beside it by default
        (``model.standardized_weight``, geneae.resolve).
    """

    name: str
    summary: str
    models_counts: bool
    parameters: tuple[str, ...]
    link: Link
    function: str
    is_log_prob: bool = True
    weighs_by_scale: bool = False

    def loss_function(self) -> Callable[..., Any]:
        """The element-wise loss ``f(target, *parameters, nonzero=None)`` (imports torch).

        ``nonzero`` (flat positions of a sparse target's stored entries) reaches the count
        likelihoods, which evaluate their log-Gamma terms there only.
        """
        from geneae import distributions, squared_errors

        fn = getattr(distributions if self.is_log_prob else squared_errors, self.function)
        return functools.partial(_elementwise_loss, fn, self.is_log_prob, self.models_counts)


def _elementwise_loss(
    fn: Callable[..., Any],
    is_log_prob: bool,
    takes_nonzero: bool,
    target: Any,
    *params: Any,
    nonzero: Any = None,
) -> Any:
    kwargs = {"nonzero": nonzero} if takes_nonzero else {}
    value = fn(target, *params, **kwargs)
    return -value if is_log_prob else value


LIKELIHOODS: dict[str, Likelihood] = {
    entry.name: entry
    for entry in (
        Likelihood(
            "mse", "squared error on the preprocessed values", False, ("mean",), "identity", "mse",
            is_log_prob=False, weighs_by_scale=True,
        ),
        Likelihood(
            "masked_mse", "squared error on the non-zero entries only", False, ("mean",),
            "identity", "masked_mse", is_log_prob=False,
        ),
        Likelihood(
            "gaussian", "Gaussian with a variance per gene", False, ("mean", "var"), "identity",
            "gaussian_log_prob",
        ),
        Likelihood(
            "bernoulli", "Bernoulli (binary cross-entropy) for values in [0, 1]", False,
            ("logits",), "sigmoid", "bernoulli_log_prob",
        ),
        Likelihood(
            "poisson", "Poisson on raw counts", True, ("mean",), "softmax", "poisson_log_prob",
            weighs_by_scale=True,
        ),
        Likelihood(
            "nb", "negative binomial on raw counts, a dispersion per gene", True,
            ("mean", "theta"), "softmax", "nb_log_prob", weighs_by_scale=True,
        ),
        Likelihood(
            "zip", "zero-inflated Poisson on raw counts", True, ("mean", "pi_logits"), "softmax",
            "zip_log_prob", weighs_by_scale=True,
        ),
        Likelihood(
            "zinb", "zero-inflated negative binomial on raw counts", True,
            ("mean", "theta", "pi_logits"), "softmax", "zinb_log_prob",
            weighs_by_scale=True,
        ),
    )
}  # fmt: skip

COUNT_LIKELIHOODS: frozenset[str] = frozenset(n for n, e in LIKELIHOODS.items() if e.models_counts)
