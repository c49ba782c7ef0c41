"""Squared-error reconstruction losses: over every entry, or over the non-zero ones only.

The losses of the ``mse`` and ``masked_mse`` likelihoods (see :mod:`geneae.likelihoods`):
unlike the log-likelihoods of :mod:`geneae.distributions` they return the loss itself,
element by element or reduced (``reduction``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["Reduction", "masked_mse", "mse"]

Reduction = Literal["none", "mean", "sum_per_sample"]


def _reduce(errors: Tensor, count: Tensor | None, reduction: Reduction) -> Tensor:
    """Apply ``reduction``; ``count`` is the number of scored entries (None: all of them)."""
    if reduction == "none":
        return errors
    if reduction == "mean":
        if count is None:
            return errors.mean()
        # A batch with nothing to score gives 0, not 0/0 = NaN.
        return errors.sum() / count.clamp_min(1)
    if reduction == "sum_per_sample":
        return errors.sum(dim=-1)
    raise ValueError(f"reduction={reduction!r} is not one of 'none', 'mean', 'sum_per_sample'.")


def mse(x: Tensor, x_hat: Tensor, reduction: Reduction = "none") -> Tensor:
    r"""Squared error :math:`(\hat x - x)^2` over every entry.

    Parameters
    ----------
    x
        Targets, ``(..., g)``.
    x_hat
        Reconstructions; broadcast against ``x``.
    reduction
        ``"none"``: element-wise squared errors (broadcast shape); ``"mean"``: their mean
        over all entries (a scalar); ``"sum_per_sample"``: the sum over the last (gene) axis,
        shape ``(...)``, e.g. ``(n,)``.

    Returns
    -------
    Tensor
        The squared errors, reduced as asked.
    """
    return _reduce((x_hat - x).square(), None, reduction)


def masked_mse(x: Tensor, x_hat: Tensor, reduction: Reduction = "none") -> Tensor:
    r"""Squared error over the non-zero entries of ``x`` only ("non-zero MSE").

    For dropout-heavy single-cell data a zero is often a failed measurement rather than
    absent expression, so the loss ignores it: with the mask :math:`m = [x \ne 0]`,

    .. math:: e_{ij} = m_{ij}(\hat x_{ij} - x_{ij})^2

    and the gradient with respect to ``x_hat`` is exactly 0 where ``x == 0`` (the errors
    there are selected away with ``torch.where``, not multiplied by 0, so even a non-finite
    reconstruction at a zero contributes nothing, in value or gradient).

    Parameters
    ----------
    x
        Targets, ``(..., g)``; its zeros define the mask.
    x_hat
        Reconstructions; broadcast against ``x``.
    reduction
        ``"none"``: :math:`e_{ij}` element-wise (0 where ``x == 0``), broadcast shape;
        ``"mean"``: :math:`\sum_{ij} e_{ij} / \sum_{ij} m_{ij}`, the mean over the non-zero
        entries of the whole tensor (0 if there are none), a scalar;
        ``"sum_per_sample"``: :math:`\sum_j e_{ij}`, the sum over the non-zero entries of
        each sample along the last (gene) axis, shape ``(...)``, e.g. ``(n,)``.

    Returns
    -------
    Tensor
        The masked squared errors, reduced as asked.
    """
    x, x_hat = torch.broadcast_tensors(x, x_hat)
    nonzero = x != 0
    # Select the difference (not the squared error) so that the backward of ``where`` hands
    # an explicit 0 to x_hat at the zeros: no ``0 * inf`` NaN if x_hat is non-finite there.
    diff = torch.where(nonzero, x_hat - x, torch.zeros_like(x_hat))
    errors = diff.square()
    return _reduce(errors, nonzero.sum().to(errors.dtype), reduction)
