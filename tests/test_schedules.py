"""geneae.train.schedules: exact values, warm-up clipping, dispatch."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from geneae.config import TrainConfig
from geneae.errors import GeneaeWarning
from geneae.train.schedules import (
    ScheduleWarning,
    constant,
    cyclic_cosine,
    effective_warmup_epochs,
    kappa_warmup,
    kl_weight_at,
    linear_warmup,
    warmup_finished_epoch,
)

# -- the schedules themselves -----------------------------------------------------------------


def test_constant():
    assert constant(0, 0.3) == 0.3
    assert constant(123.4, 0.3) == 0.3


@pytest.mark.parametrize(
    ("epoch", "expected"), [(0, 0.0), (2.5, 0.25), (5, 0.5), (9.99, 0.999), (10, 1.0), (50, 1.0)]
)
def test_linear_warmup(epoch, expected):
    assert linear_warmup(epoch, warmup_epochs=10, max_value=1.0) == pytest.approx(expected)


def test_linear_warmup_edges():
    assert linear_warmup(0, warmup_epochs=0, max_value=0.7) == 0.7
    assert linear_warmup(-1, warmup_epochs=10, max_value=0.7) == 0.0
    assert linear_warmup(4, warmup_epochs=8, max_value=2.0) == 1.0
    with pytest.raises(ValueError, match="warmup_epochs"):
        linear_warmup(1, warmup_epochs=-1, max_value=1.0)


def test_kappa_warmup_follows_tybalt():
    # Tybalt: kappa = 1 reaches beta = 1 after one epoch; kappa = 0.05 after 20.
    assert kappa_warmup(0, kappa=1.0, max_value=1.0) == 0.0
    assert kappa_warmup(1, kappa=1.0, max_value=1.0) == 1.0
    values = [kappa_warmup(e, kappa=0.05, max_value=1.0) for e in range(25)]
    assert values[:20] == pytest.approx([0.05 * e for e in range(20)])
    assert values[20:] == [1.0] * 5
    assert kappa_warmup(2.5, kappa=0.1, max_value=1.0) == pytest.approx(0.25)
    # rounding does not keep it a hair below the maximum: 0.3 * 3 == 0.8999999999999999
    assert kappa_warmup(3, kappa=0.3, max_value=0.9) == 0.9
    with pytest.raises(ValueError, match="kappa"):
        kappa_warmup(1, kappa=0.0, max_value=1.0)


CYCLIC = dict(total_epochs=100, n_cycles=4, ramp_fraction=0.5, max_value=0.1)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 0.0),
        (25, 0.0),
        (50, 0.0),
        (75, 0.0),
        (6.25, 0.05),
        (31.25, 0.05),
        (12.5, 0.1),
        (18, 0.1),
        (24.99, 0.1),
        (99.99, 0.1),
        (100, 0.1),  # the end of training holds the last plateau
        (150, 0.1),
        (12.5 * (1 / 3), 0.1 * 0.5 * (1 - math.cos(math.pi / 3))),
    ],
)
def test_cyclic_cosine_values(epoch, expected):
    assert cyclic_cosine(epoch, **CYCLIC) == pytest.approx(expected, abs=1e-15)


def test_cyclic_cosine_is_a_half_cosine_ramp_in_every_cycle():
    ramp = np.linspace(0, 12.5, 51, endpoint=False)
    for c in range(4):
        values = [cyclic_cosine(25 * c + e, **CYCLIC) for e in ramp]
        expected = 0.05 * (1 - np.cos(np.pi * ramp / 12.5))
        np.testing.assert_allclose(values, expected, atol=1e-15)
        assert np.all(np.diff(values) > 0)


def test_cyclic_cosine_decay():
    kw = dict(CYCLIC, decay=0.5)
    assert [cyclic_cosine(25 * c + 20, **kw) for c in range(4)] == pytest.approx(
        [0.1, 0.05, 0.025, 0.0125]
    )
    assert cyclic_cosine(25 + 6.25, **kw) == pytest.approx(0.025)


def test_cyclic_cosine_full_ramp_and_single_cycle():
    # ramp_fraction = 1: no plateau; one cycle: a single warm-up over all epochs.
    assert cyclic_cosine(50, total_epochs=100, n_cycles=1, ramp_fraction=1.0, max_value=1.0) == (
        pytest.approx(0.5)
    )
    assert cyclic_cosine(100, total_epochs=100, n_cycles=1, ramp_fraction=1.0, max_value=1.0) == 1


@pytest.mark.parametrize(
    "bad",
    [
        dict(total_epochs=0),
        dict(n_cycles=0),
        dict(ramp_fraction=0.0),
        dict(ramp_fraction=1.5),
        dict(decay=0.0),
        dict(decay=1.5),
    ],
)
def test_cyclic_cosine_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        cyclic_cosine(1, **{**CYCLIC, **bad})


# -- dispatch from a TrainConfig ------------------------------------------------------------


def test_default_warmup_is_a_third_of_training_capped():
    cfg = TrainConfig(kl_weight=1.0)
    assert cfg.kl_schedule == "warmup" and cfg.kl_warmup_epochs is None
    assert effective_warmup_epochs(cfg, 100) == 33
    assert effective_warmup_epochs(cfg, 2) == 1
    assert effective_warmup_epochs(cfg, 1) == 1
    assert effective_warmup_epochs(cfg, 3000) == 400
    assert kl_weight_at(0, cfg, 100) == 0.0
    assert kl_weight_at(16.5, cfg, 100) == pytest.approx(0.5)
    assert kl_weight_at(33, cfg, 100) == 1.0
    assert warmup_finished_epoch(cfg, 100) == 33


def test_explicit_warmup_within_training_is_kept():
    cfg = TrainConfig(kl_warmup_epochs=50, kl_weight=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert effective_warmup_epochs(cfg, 100) == 50
        assert effective_warmup_epochs(cfg, 50) == 50
    assert kl_weight_at(25, cfg, 100) == pytest.approx(0.25)
    assert kl_weight_at(0, TrainConfig(kl_weight=1.0, kl_warmup_epochs=0), 100) == 1.0


def test_warmup_longer_than_training_is_clipped_with_a_warning():
    cfg = TrainConfig(kl_weight=1.0, kl_warmup_epochs=400)
    assert issubclass(ScheduleWarning, GeneaeWarning)
    with pytest.warns(ScheduleWarning, match="kl_warmup_epochs = 400"):
        assert effective_warmup_epochs(cfg, 30) == 30
    with pytest.warns(ScheduleWarning):
        assert warmup_finished_epoch(cfg, 30) == 30
    # the per-step function applies the same clip silently (it runs every step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kl_weight_at(15, cfg, 30) == pytest.approx(0.5)
        assert kl_weight_at(30, cfg, 30) == 1.0


def test_kappa_warmup_dispatch():
    cfg = TrainConfig(
        kl_weight=1.0, kl_kappa=0.05, kl_warmup_epochs=3
    )  # kappa wins over warm-up epochs
    assert kl_weight_at(10, cfg, 100) == pytest.approx(0.5)
    assert kl_weight_at(20, cfg, 100) == 1.0
    assert warmup_finished_epoch(cfg, 100) == 20
    assert warmup_finished_epoch(TrainConfig(kl_kappa=0.3, kl_weight=0.9), 100) == 3
    assert warmup_finished_epoch(TrainConfig(kl_kappa=0.4, kl_weight=1.0), 100) == 3


def test_kappa_warmup_that_cannot_finish_warns():
    cfg = TrainConfig(kl_weight=1.0, kl_kappa=0.01)
    with pytest.warns(ScheduleWarning, match="kl_kappa"):
        assert warmup_finished_epoch(cfg, 50) == 50
    assert kl_weight_at(50, cfg, 50) == pytest.approx(0.5)  # the schedule is kept as set


def test_cyclic_dispatch():
    cfg = TrainConfig(kl_schedule="cyclic", kl_weight=0.1, kl_cycles=4, kl_ramp_fraction=0.5)
    for epoch in (0, 6.25, 12.5, 24.99, 25, 87.5):
        assert kl_weight_at(epoch, cfg, 100) == cyclic_cosine(epoch, **CYCLIC)
    assert warmup_finished_epoch(cfg, 100) == 88  # last plateau starts at 87.5
    decayed = TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycle_decay=0.5, kl_cycles=2)
    assert kl_weight_at(90, decayed, 100) == pytest.approx(0.5)
    assert (
        warmup_finished_epoch(TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycles=4), 100)
        == 88
    )
    assert (
        warmup_finished_epoch(TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycles=5), 100)
        == 90
    )
    full = TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_ramp_fraction=1.0)
    assert warmup_finished_epoch(full, 100) == 100


def test_constant_dispatch():
    cfg = TrainConfig(kl_schedule="constant", kl_weight=0.25)
    assert kl_weight_at(0, cfg, 10) == 0.25
    assert kl_weight_at(7.3, cfg, 10) == 0.25
    assert warmup_finished_epoch(cfg, 10) == 0
    assert warmup_finished_epoch(TrainConfig(kl_weight=0.0), 10) == 0


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(kl_weight=1.0),
        TrainConfig(kl_weight=1.0, kl_warmup_epochs=7),
        TrainConfig(kl_kappa=0.07, kl_weight=0.5),
        TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycles=3, kl_ramp_fraction=0.3),
        TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycles=3, kl_cycle_decay=0.7),
        TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycles=3, kl_ramp_fraction=0.01),
        TrainConfig(
            kl_weight=1.0,
            kl_schedule="cyclic",
            kl_cycles=3,
            kl_ramp_fraction=0.01,
            kl_cycle_decay=0.5,
        ),
        TrainConfig(kl_weight=1.0, kl_schedule="cyclic", kl_cycles=1, kl_ramp_fraction=1.0),
        TrainConfig(kl_weight=1.0, kl_schedule="constant"),
    ],
)
@pytest.mark.parametrize("total", [1, 7, 100, 2000])
def test_warmup_finished_epoch_is_where_the_weight_stops_changing(cfg, total):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        end = warmup_finished_epoch(cfg, total)
    assert 0 <= end <= total
    final = kl_weight_at(total, cfg, total)
    # constant from `end` on (checked per 1/8 epoch), and not yet over the epoch before
    after = [kl_weight_at(e, cfg, total) for e in np.arange(end, total + 0.01, 0.125)]
    assert after == [final] * len(after)
    if end > 0:
        before = [kl_weight_at(e, cfg, total) for e in np.arange(end - 1, end, 0.01)]
        assert any(v != final for v in before)


def test_dispatch_rejects_bad_total_epochs():
    with pytest.raises(ValueError):
        effective_warmup_epochs(TrainConfig(kl_weight=1.0), 0)
    with pytest.raises(ValueError):
        warmup_finished_epoch(TrainConfig(kl_weight=1.0), 0)
