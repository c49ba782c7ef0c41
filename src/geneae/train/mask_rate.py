"""The input-masking rate of each training step, for dynamic input masking.

:func:`dynamic_mask_rate` draws the rate from a counter-based hash of ``(seed, step)``
(SplitMix64), not from a global random state: like the KL schedules of
:mod:`geneae.train.schedules` it is a pure function, so resuming or replaying a run gives
the same rates.
"""

from __future__ import annotations

from geneae.errors import ConfigError

__all__ = ["dynamic_mask_rate"]

_MASK64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: odd, ~2**64 / golden ratio


def _mix64(z: int) -> int:
    """SplitMix64's finaliser: a bijection of 64-bit integers with full avalanche."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def dynamic_mask_rate(step: int, *, low: float, high: float, seed: int = 0) -> float:
    r"""Masking rate for dynamic input masking at training step ``step``.

    A deterministic pseudo-random draw, uniform in :math:`[\ell, h)`, that depends only on
    ``(seed, step)``: the ``step``-th output of a SplitMix64 generator keyed by the seed,

    .. math:: z = \mathrm{mix}\left(\mathrm{mix}(s) + (t + 1)\,\gamma \bmod 2^{64}\right),
              \qquad \text{rate} = \ell + (h - \ell)\,\lfloor z / 2^{11} \rfloor / 2^{53}

    (:math:`\gamma` = ``0x9E3779B97F4A7C15``, :math:`\mathrm{mix}` the SplitMix64
    finaliser). No global random state is read or advanced, so a resumed or replayed run
    sees the same rate at the same step, on any device.

    Parameters
    ----------
    step
        Global training step :math:`t \ge 0` (an integer; integral floats are accepted).
    low, high
        Range of the rate, :math:`0 \le \ell \le h \le 1` (``ModelConfig.mask_rate_min`` /
        ``mask_rate_max``); ``low == high`` gives that constant rate.
    seed
        Run seed :math:`s` (``TrainConfig.seed``); any integer.

    Returns
    -------
    float
        The masking rate at ``step``.
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ConfigError(f"need 0 <= low <= high <= 1 for the masking rate, got [{low}, {high}].")
    if step != int(step) or step < 0:
        raise ConfigError(f"step must be a non-negative integer, got {step!r}.")
    key = _mix64(int(seed) & _MASK64)
    z = _mix64((key + (int(step) + 1) * _GOLDEN_GAMMA) & _MASK64)
    u = (z >> 11) * 2.0**-53  # top 53 bits -> a double in [0, 1)
    return float(low) + (float(high) - float(low)) * u
