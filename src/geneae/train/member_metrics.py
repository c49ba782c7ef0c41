"""metrics.json's ``model`` section of an ensemble, from its members' sections.

Part of :mod:`geneae.model_training` (which trains the members): what the members share is
said once, what differs is listed per member.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from geneae.module import members_of

__all__ = ["mean_of", "merge_member_metrics"]


def mean_of(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are known; None where none is."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def merge_member_metrics(parts: list[dict[str, Any]], module: torch.nn.Module) -> dict[str, Any]:
    """metrics.json's ``model`` section of an ensemble from its members' sections.

    What the members share once; ``members`` (and of members of two kinds,
    ``wide_members`` and ``narrow_genes``); the ensemble's parameter count; per member
    (lists in member order) what differs: epochs, best epoch, early stop and the
    clustering phase's clusters and where it ran.
    """
    per_member = ("epochs_trained", "best_epoch", "stopped_early")
    merged = {k: v for k, v in parts[0].items() if k not in (*per_member, "cluster_phase")}
    merged["members"] = len(parts)
    members = members_of(module)
    wide = sum(1 for m in members if m.cfg.n_wide)
    if wide:  # members of two kinds: how many read every gene z-scored, and the others' genes
        merged["wide_members"] = wide
        merged["narrow_genes"] = int(members[0].n_genes)
    merged["n_parameters"] = int(sum(p.numel() for p in module.parameters()))
    for key in per_member:
        merged[key] = [part[key] for part in parts]
    phases = [part["cluster_phase"] for part in parts if "cluster_phase" in part]
    if phases:
        merged["cluster_phase"] = {
            **{k: phases[0][k] for k in ("epochs", "resolution", "weight")},
            **{
                k: [ph[k] for ph in phases]
                for k in ("clusters", "initial_sizes", "final_kl", "device")
            },
            "seconds": sum(ph["seconds"] for ph in phases),
        }
    return merged
