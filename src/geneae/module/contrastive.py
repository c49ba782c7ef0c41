"""NT-Xent (normalised temperature-scaled cross-entropy, InfoNCE as in SimCLR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """NT-Xent loss between two views of the same n samples, averaged over the 2n anchors.

    Each row of ``z1`` has its positive in the same row of ``z2`` (and vice versa); the
    other 2n - 2 rows of both views are negatives. With cosine similarities
    ``s_ij / temperature``, the loss of anchor i is ``-log softmax_j(s_ij)[positive(i)]``
    over all j != i.

    Parameters
    ----------
    z1, z2
        (n, d) embeddings of the two views.
    temperature
        Softmax temperature.

    Returns
    -------
    Tensor
        Scalar loss; ``log(2n - 1)`` for uninformative embeddings, 0 at best.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)
    logits = z @ z.T / temperature
    # An anchor is never its own negative.
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), -torch.inf)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, positives)
