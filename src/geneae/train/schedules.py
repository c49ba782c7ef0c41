r"""KL-weight schedules: pure functions of the epoch.

Nothing here keeps state: each value is computed from the epoch alone, so resuming or
replaying a run gives the same weights. Epochs are floats so that the training plan can
update per step with the fractional epoch ``epoch + batch / steps_per_epoch``.

KL schedules (the weight :math:`\beta(e)` of the KL term at epoch :math:`e`):

* :func:`constant` -- :math:`\beta(e) = \beta`.
* :func:`linear_warmup` -- rises linearly from 0 to :math:`\beta` over ``warmup_epochs``.
* :func:`kappa_warmup` -- Tybalt's warm-up: grows by :math:`\kappa` per epoch up to
  :math:`\beta`.
* :func:`cyclic_cosine` -- cyclic annealing (Fu et al. 2019): repeated half-cosine ramps.

:func:`kl_weight_at` picks one of them from a :class:`~geneae.config.TrainConfig`.
:func:`warmup_finished_epoch` says from which epoch the weight stops changing (the plan
holds off early stopping until then, since losses under a rising KL weight are not
comparable). Unlike scvi-tools, whose default 400-epoch warm-up silently never finishes on
large data sets (which train for fewer epochs), the warm-up here always ends within the
epochs actually trained: see :func:`effective_warmup_epochs`.

The masking rate of each training step (dynamic input masking) is drawn in
:mod:`geneae.train.mask_rate`, likewise from the step alone.
"""

from __future__ import annotations

import math
import warnings

from geneae.config import TrainConfig
from geneae.errors import ConfigError, GeneaeWarning

__all__ = [
    "DEFAULT_MAX_WARMUP_EPOCHS",
    "ScheduleWarning",
    "constant",
    "cyclic_cosine",
    "effective_warmup_epochs",
    "kappa_warmup",
    "kl_weight_at",
    "linear_warmup",
    "warmup_finished_epoch",
]

DEFAULT_MAX_WARMUP_EPOCHS = 400
"""Upper bound of the default linear warm-up (a third of the epochs trained)."""


class ScheduleWarning(GeneaeWarning):
    """A schedule was changed (or cannot finish) to fit the number of epochs trained."""


# -- KL schedules -----------------------------------------------------------------------------


def constant(epoch: float, value: float) -> float:
    r"""Return ``value`` at every epoch: :math:`\beta(e) = v`.

    Parameters
    ----------
    epoch
        Current (possibly fractional) epoch; unused, kept for a uniform signature.
    value
        The constant weight.

    Returns
    -------
    float
        ``value``.
    """
    return float(value)


def linear_warmup(epoch: float, *, warmup_epochs: float, max_value: float) -> float:
    r"""Linear warm-up from 0 to ``max_value`` over ``warmup_epochs`` epochs.

    .. math:: \beta(e) = \beta_{max} \cdot \min\left(1, \max\left(0, e / W\right)\right)

    so :math:`\beta(0) = 0` and :math:`\beta(e) = \beta_{max}` for :math:`e \ge W`;
    ``warmup_epochs = 0`` means no warm-up (:math:`\beta_{max}` from the start).

    Parameters
    ----------
    epoch
        Current (possibly fractional) epoch :math:`e`.
    warmup_epochs
        Length :math:`W \ge 0` of the warm-up in epochs.
    max_value
        Final weight :math:`\beta_{max}`.

    Returns
    -------
    float
        The weight at ``epoch``.
    """
    if warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs must be >= 0, got {warmup_epochs}.")
    if warmup_epochs == 0:
        return float(max_value)
    return float(max_value) * min(1.0, max(0.0, epoch / warmup_epochs))


def kappa_warmup(epoch: float, *, kappa: float, max_value: float) -> float:
    r"""Tybalt's warm-up: the weight grows by ``kappa`` per epoch until it reaches ``max_value``.

    .. math:: \beta(e) = \min\left(\beta_{max}, \kappa \cdot \max(0, e)\right)

    (Way & Greene 2018 add :math:`\kappa` at the end of each epoch; with fractional epochs
    the same line is followed continuously.) The weight reaches :math:`\beta_{max}` at
    epoch :math:`\beta_{max} / \kappa`.

    Parameters
    ----------
    epoch
        Current (possibly fractional) epoch :math:`e`.
    kappa
        Increase per epoch, :math:`\kappa > 0`.
    max_value
        Final weight :math:`\beta_{max}`.

    Returns
    -------
    float
        The weight at ``epoch``.
    """
    if kappa <= 0:
        raise ConfigError(f"kappa must be > 0, got {kappa}.")
    value = kappa * max(0.0, epoch)
    # Snap to the maximum within float rounding, so that e.g. kappa = 0.3 reaches 0.9 at
    # epoch 3 (0.3 * 3 == 0.8999999999999999) as the formula intends.
    if value >= max_value * (1.0 - 1e-12):
        return float(max_value)
    return value


def cyclic_cosine(
    epoch: float,
    *,
    total_epochs: float,
    n_cycles: int,
    ramp_fraction: float,
    max_value: float,
    decay: float = 1.0,
) -> float:
    r"""Cyclic KL annealing with half-cosine ramps (after Fu et al. 2019).

    Training is cut into ``n_cycles`` cycles of length :math:`L = T / n`. With
    :math:`u = e\,n / T`, cycle :math:`c = \min(\lfloor u \rfloor, n - 1)` and position
    :math:`\tau = u - c` in the cycle (in [0, 1); beyond :math:`T` the last cycle's plateau
    continues),

    .. math:: \beta(e) = \beta_{max}\, d^{c} \cdot \begin{cases}
              \tfrac12\left(1 - \cos(\pi \tau / r)\right) & \tau < r \\
              1 & \tau \ge r \end{cases}

    i.e. each cycle ramps from 0 to its maximum :math:`\beta_{max} d^c` along a half cosine
    during its first fraction :math:`r` and then holds that maximum.

    Parameters
    ----------
    epoch
        Current (possibly fractional) epoch :math:`e`.
    total_epochs
        Epochs trained, :math:`T > 0`.
    n_cycles
        Number of cycles, :math:`n \ge 1`.
    ramp_fraction
        Fraction :math:`r \in (0, 1]` of each cycle spent ramping up.
    max_value
        Maximum weight of the first cycle, :math:`\beta_{max}`.
    decay
        Factor :math:`d \in (0, 1]` applied to the maximum from one cycle to the next.

    Returns
    -------
    float
        The weight at ``epoch``.
    """
    if total_epochs <= 0:
        raise ConfigError(f"total_epochs must be > 0, got {total_epochs}.")
    if n_cycles < 1:
        raise ConfigError(f"n_cycles must be >= 1, got {n_cycles}.")
    if not 0 < ramp_fraction <= 1:
        raise ConfigError(f"ramp_fraction must be in (0, 1], got {ramp_fraction}.")
    if not 0 < decay <= 1:
        raise ConfigError(f"decay must be in (0, 1], got {decay}.")
    # e * n / T rather than e / (T / n): exact for integer epochs at cycle boundaries.
    u = max(0.0, epoch) * n_cycles / total_epochs
    cycle = min(math.floor(u), n_cycles - 1)
    tau = u - cycle
    peak = float(max_value) * decay**cycle
    if tau >= ramp_fraction:
        return peak
    return peak * 0.5 * (1.0 - math.cos(math.pi * tau / ramp_fraction))


# -- dispatch from a TrainConfig -----------------------------------------------------------------


def _linear_warmup_epochs(train_config: TrainConfig, total_epochs: int) -> tuple[int, bool]:
    """Length of the linear warm-up and whether an explicit value had to be clipped."""
    if total_epochs < 1:
        raise ConfigError(f"total_epochs must be >= 1, got {total_epochs}.")
    requested = train_config.kl_warmup_epochs
    if requested is None:
        return min(DEFAULT_MAX_WARMUP_EPOCHS, max(1, total_epochs // 3)), False
    if requested > total_epochs:
        return total_epochs, True
    return requested, False


def effective_warmup_epochs(train_config: TrainConfig, total_epochs: int) -> int:
    r"""Length in epochs of the linear KL warm-up, guaranteed to end within training.

    * ``kl_warmup_epochs = None`` (default): :math:`\min(400, \max(1, \lfloor T/3
      \rfloor))` for :math:`T` = ``total_epochs``, so the last two thirds of training
      optimise the final objective.
    * an explicit value larger than :math:`T` is clipped to :math:`T`, with a
      :class:`ScheduleWarning`: a warm-up that never finishes would leave the model trained
      on an objective it never reaches (scvi-tools' fixed 400-epoch default does exactly that
      on large data). Values up to :math:`T` are used as they are.

    Call this (or :func:`warmup_finished_epoch`) once at set-up; :func:`kl_weight_at`, which
    runs every step, applies the same rule silently.

    Parameters
    ----------
    train_config
        Supplies ``kl_warmup_epochs``.
    total_epochs
        Epochs actually trained, :math:`T \ge 1`.

    Returns
    -------
    int
        The warm-up length :math:`W \in [0, T]`.
    """
    epochs, clipped = _linear_warmup_epochs(train_config, total_epochs)
    if clipped:
        warnings.warn(
            f"train.kl_warmup_epochs = {train_config.kl_warmup_epochs} is longer than the "
            f"{total_epochs} epochs trained; the KL warm-up is shortened to {epochs} epochs "
            "so that it finishes. Set kl_warmup_epochs <= max_epochs to silence this.",
            ScheduleWarning,
            stacklevel=2,
        )
    return epochs


def kl_weight_at(epoch: float, train_config: TrainConfig, total_epochs: int) -> float:
    """KL weight at ``epoch`` under the schedule chosen by ``train_config.kl_schedule``.

    * ``"constant"``: :func:`constant` with ``kl_weight``;
    * ``"warmup"``: :func:`kappa_warmup` with ``kl_kappa`` if it is set, otherwise
      :func:`linear_warmup` over :func:`effective_warmup_epochs` epochs;
    * ``"cyclic"``: :func:`cyclic_cosine` over ``total_epochs`` with ``kl_cycles``,
      ``kl_ramp_fraction`` and ``kl_cycle_decay``;

    each rising to ``kl_weight``. Emits no warning (it runs every step); see
    :func:`warmup_finished_epoch`.

    Parameters
    ----------
    epoch
        Current (possibly fractional) epoch.
    train_config
        The schedule's settings.
    total_epochs
        Epochs this run trains.

    Returns
    -------
    float
        The KL weight.
    """
    cfg = train_config
    if cfg.kl_schedule == "constant":
        return constant(epoch, cfg.kl_weight)
    if cfg.kl_schedule == "warmup":
        if cfg.kl_kappa is not None:
            return kappa_warmup(epoch, kappa=cfg.kl_kappa, max_value=cfg.kl_weight)
        warmup, _ = _linear_warmup_epochs(cfg, total_epochs)
        return linear_warmup(epoch, warmup_epochs=warmup, max_value=cfg.kl_weight)
    if cfg.kl_schedule == "cyclic":
        return cyclic_cosine(
            epoch,
            total_epochs=total_epochs,
            n_cycles=cfg.kl_cycles,
            ramp_fraction=cfg.kl_ramp_fraction,
            max_value=cfg.kl_weight,
            decay=cfg.kl_cycle_decay,
        )
    raise ConfigError(
        f"train.kl_schedule = {cfg.kl_schedule!r}; allowed: 'constant', 'warmup', 'cyclic'."
    )


def warmup_finished_epoch(train_config: TrainConfig, total_epochs: int) -> int:
    r"""First whole epoch from which the KL weight stays at its final value.

    The plan holds off early stopping until this epoch. It is the smallest integer
    :math:`e \le T` with :math:`\beta(e') = \beta(T)` for all :math:`e' \ge e`:

    * ``"constant"`` (or ``kl_weight = 0``): 0;
    * linear warm-up: :math:`W` from :func:`effective_warmup_epochs` (which warns if it
      clips an explicit value);
    * :math:`\kappa` warm-up: :math:`\lceil \beta_{max} / \kappa \rceil`, capped at
      :math:`T` with a :class:`ScheduleWarning` when the weight would still be rising at the
      end of training (the schedule itself is left as configured);
    * cyclic: the start of the last cycle's plateau,
      :math:`\lceil (n - 1 + r)\, T / n \rceil` (:math:`T` when :math:`r = 1`).

    Parameters
    ----------
    train_config
        The schedule's settings.
    total_epochs
        Epochs this run trains, :math:`T \ge 1`.

    Returns
    -------
    int
        The epoch, in :math:`[0, T]`.
    """
    cfg = train_config
    if total_epochs < 1:
        raise ConfigError(f"total_epochs must be >= 1, got {total_epochs}.")
    if cfg.kl_schedule == "constant" or cfg.kl_weight == 0:
        return 0
    if cfg.kl_schedule == "warmup" and cfg.kl_kappa is None:
        return effective_warmup_epochs(cfg, total_epochs)
    if cfg.kl_schedule == "warmup":
        # The first integer epoch at which the weight is at its maximum: a search started at
        # the analytic value, so that it agrees with kappa_warmup's float arithmetic.
        def at_max(e: int) -> bool:
            return kappa_warmup(e, kappa=cfg.kl_kappa, max_value=cfg.kl_weight) >= cfg.kl_weight

        end = math.ceil(cfg.kl_weight / cfg.kl_kappa)
        while end > 0 and at_max(end - 1):
            end -= 1
        while not at_max(end):
            end += 1
        if end > total_epochs:
            warnings.warn(
                f"with train.kl_kappa = {cfg.kl_kappa} the KL weight reaches "
                f"kl_weight = {cfg.kl_weight} only after {end} epochs, but {total_epochs} "
                f"are trained; it ends at {cfg.kl_kappa * total_epochs:.4g}. Raise kl_kappa "
                "to at least kl_weight / max_epochs or train longer.",
                ScheduleWarning,
                stacklevel=2,
            )
            return total_epochs
        return end
    # Cyclic. Within the last cycle the weight only rises, then holds; so the answer is the
    # first integer epoch that is in the last cycle and already at the final weight. Found by
    # a short search around the analytic plateau start, using the schedule's own arithmetic
    # (a plateau of the previous cycle can equal the final weight too, hence the cycle test).
    n, total = cfg.kl_cycles, total_epochs
    final = kl_weight_at(total, cfg, total)

    def stays_final(e: int) -> bool:
        in_last_cycle = e * n / total >= n - 1  # as cyclic_cosine computes the cycle
        return in_last_cycle and kl_weight_at(e, cfg, total) == final

    end = min(total, math.ceil((n - 1 + cfg.kl_ramp_fraction) * total / n) + 1)
    while end < total and not stays_final(end):
        end += 1
    while end > 0 and stays_final(end - 1):
        end -= 1
    return end
