"""The clustering phase after training (DEC, Xie et al. 2016; as scDeepCluster, 2019).

The trained encoder's latent means are clustered by Leiden on their 15-NN graph at a fixed
resolution: the number of clusters is what Leiden finds, never given (geneae knows no
labels). Their means seed K learnable centroids. Then every parameter is fine-tuned on

    module.loss(batch, final KL weight)  +  weight * n_genes * KL(P || Q)

per sample, ``Q`` the Student-t soft assignment of the latent mean to the centroids and
``P`` DEC's sharpened target ``q^2 / f`` (rows normalised), recomputed on all samples at
the start of each epoch. ``n_genes`` puts the clustering term on the scale of a
reconstruction summed over genes. The reconstruction keeps the latent tied to the data;
the clustering term makes its groups compact, so that any clustering of the latent
(KMeans included) finds them more reliably (BENCHMARKS.md: +0.015 mean ARI, seed-to-seed
spread down on the bundled PBMC).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geneae.batches import Batch, ExpressionTensors
from geneae.config import TrainConfig
from geneae.errors import GeneaeWarning
from geneae.module.base import ExpressionModule, LossOutput
from geneae.precision import autocast_for
from geneae.train.compiled import CompiledLoss
from geneae.train.optimizers import adam

# Keeps log() finite for assignments that underflow.
TINY = 1e-12

#: A run that asks for at least this many times as many clusters as the phase sharpened
#: groups is warned: the phase pulls types finer than its groups together (on 40 subtypes in
#: 5 lineages it found and sharpened the 5 lineages; docs/design/default-model.md, round 29).
#: On the five labelled count sets of the benchmark the classes are 0.4-1.5x the groups.
FINER_THAN_PHASE = 2


class ClusterPhaseWarning(GeneaeWarning):
    """The clusters asked for are much finer than the groups the clustering phase sharpened."""


def soft_assign(z: Tensor, centroids: Tensor) -> Tensor:
    """(n, K) Student-t (one degree of freedom) assignment probabilities of ``z``."""
    q = 1.0 / (1.0 + torch.cdist(z, centroids).square())
    return q / q.sum(1, keepdim=True)


def target_distribution(q: Tensor) -> Tensor:
    """DEC's target: ``q^2`` over each cluster's total assignment, rows normalised."""
    p = q.square() / q.sum(0)
    return p / p.sum(1, keepdim=True)


def kl_to_target(p: Tensor, q: Tensor) -> Tensor:
    """Mean over rows of KL(p || q)."""
    return (p * (p.clamp_min(TINY).log() - q.clamp_min(TINY).log())).sum(1).mean()


@torch.no_grad()
def latent_means(module: ExpressionModule, tensors: ExpressionTensors, block: int = 4096) -> Tensor:
    """(n, d) latent means of every row of ``tensors`` (eval mode)."""
    module.eval()
    parts = []
    for start in range(0, tensors.n_obs, block):
        batch = tensors.inputs(start, min(start + block, tensors.n_obs))
        parts.append(module.encode(batch["x"], batch.get("covariate")))
    return torch.cat(parts)


def step_latent(module: ExpressionModule, batch: dict[str, Tensor], out: LossOutput) -> Tensor:
    """The latent summary of a phase step's batch, in the graph.

    The loss's own encoding when its input was the batch itself (no corruption): one
    encoder pass serves both terms (a second one cost 3-20 % of the phase, design round
    25); a corrupting family's clustering term reads the uncorrupted input, encoded again.
    """
    if module.cfg.noise == "none":
        return module.posterior(out.inference)["latent"]
    return module.encode(batch["x"], batch.get("covariate"))


def refine_clusters(
    module: ExpressionModule,
    tensors: ExpressionTensors,
    cfg: TrainConfig,
    n_genes: int,
    kl_weight: float,
) -> dict[str, Any]:
    """Run the phase in place on ``module``, on its device; returns what it did.

    Parameters
    ----------
    module
        The trained module (its best weights).
    tensors
        The training data (all rows: the phase is unsupervised and has no validation), on
        the module's device.
    cfg
        ``cluster_epochs``, ``cluster_resolution``, ``cluster_weight``, ``cluster_lr``,
        ``cluster_batch_size``, ``seed`` and ``precision`` (resolved: not ``auto``).
    n_genes
        Genes of the model (the clustering term's scale).
    kl_weight
        The KL weight at the end of training (0 for deterministic families).
    """
    from geneae.evaluate.leiden_clustering import leiden

    start_time = time.perf_counter()
    seed = cfg.seed
    device = next(module.parameters()).device
    z0 = latent_means(module, tensors).cpu()
    initial = leiden(z0.numpy(), resolution=cfg.cluster_resolution, seed=seed)
    k = int(initial.max()) + 1
    centroids = torch.nn.Parameter(
        torch.stack([z0[torch.from_numpy(initial == c)].mean(0) for c in range(k)]).to(device)
    )
    optimizer = adam([*module.parameters(), centroids], lr=cfg.cluster_lr)
    order = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed * 1_000_003 + 7_919)  # dropout and reparameterisation draws
    weight = cfg.cluster_weight * n_genes
    # Mixed precision as training had it; the likelihoods and the heads' outputs stay float32.
    mixed = autocast_for(cfg.precision, device.type)
    # Each batch's stored entries counted on the host: a GPU's gather then never waits.
    stored = tensors.x.stored_per_row()
    # train.compile: the phase's steps run through the compiled loss too (CPU only).
    stepper = CompiledLoss(module, enabled=bool(cfg.compile) and device.type == "cpu")
    clustering = torch.tensor(float("nan"))

    def backward(out: LossOutput, batch: Batch, wanted: Tensor) -> None:
        """The clustering term of the step's batch, backpropagated with the loss."""
        nonlocal clustering
        with mixed:
            q = soft_assign(step_latent(module, batch, out), centroids)
            clustering = kl_to_target(wanted, q)
        optimizer.zero_grad(set_to_none=True)
        (out.loss + weight * clustering).backward()

    for _ in range(cfg.cluster_epochs or 0):
        with torch.no_grad():
            target = target_distribution(soft_assign(latent_means(module, tensors), centroids))
        module.train()
        for idx in torch.randperm(tensors.n_obs, generator=order).split(cfg.cluster_batch_size):
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            n_stored = None if stored is None else int(stored[idx.numpy()].sum())
            idx = idx.to(device)
            batch = tensors.batch(idx, n_stored)
            step_backward = functools.partial(backward, batch=batch, wanted=target[idx])
            stepper.step(batch, step_backward, around=mixed, kl_weight=kl_weight)
            optimizer.step()
    module.eval()
    return {
        "clusters": k,
        "epochs": int(cfg.cluster_epochs or 0),
        "resolution": cfg.cluster_resolution,
        "weight": cfg.cluster_weight,
        "initial_sizes": np.bincount(initial, minlength=k).tolist(),
        "final_kl": float(clustering.detach()),  # the last step's; one wait, at the end
        "seconds": time.perf_counter() - start_time,
        "device": str(device),
        **({"compile": stepper.summary()} if stepper.enabled else {}),
    }


def refine_where_trained(
    module: ExpressionModule,
    held: ExpressionTensors,
    host: ExpressionTensors,
    best_state: Mapping[str, Tensor],
    cfg: TrainConfig,
    n_genes: int,
    kl_weight: float,
) -> dict[str, Any]:
    """:func:`refine_clusters` on ``held``'s device; on the host if it fails on another.

    ``held`` is where training's data were (a GPU's copy, or ``host``). A phase that fails
    on a GPU (out of its memory, or an operation the device lacks) starts again on the host
    from ``best_state``, and its summary says why (``device``), as a failed CUDA-graph
    capture leaves training eager.
    """
    device = held.x.device
    module.to(device)
    try:
        return refine_clusters(module, held, cfg, n_genes, kl_weight)
    except RuntimeError as exc:
        if device.type == "cpu":
            raise
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
    module.to("cpu")
    module.load_state_dict(best_state)
    phase = refine_clusters(module, host, cfg, n_genes, kl_weight)
    phase["device"] = f"cpu (on {device} it failed: {why})"
    return phase


def finer_than_phase(
    phase: Mapping[str, Any] | None, n_clusters: int | None, asked_by: str
) -> str | None:
    """Why clusters of ``n_clusters`` may be hurt by the phase, or None where they are not.

    Parameters
    ----------
    phase
        The run's ``metrics["model"]["cluster_phase"]`` (its ``clusters``: the groups each
        member's phase sharpened, an int or one per member); None where no phase ran.
    n_clusters
        The clusters the evaluation asked for.
    asked_by
        Where that number came from (``compare_with_pca``'s ``n_clusters_from``): only a
        number the user gave (their labels' classes, or ``evaluate.n_clusters``) says what
        they want; one found by Leiden does not.
    """
    if not phase or n_clusters is None or asked_by not in ("labels", "given"):
        return None
    found = phase.get("clusters")
    groups = max(found) if isinstance(found, list) else found
    if not groups or n_clusters < FINER_THAN_PHASE * groups:
        return None
    wanted = "label classes" if asked_by == "labels" else "clusters asked for (evaluate.n_clusters)"
    return (
        f"the clustering phase sharpened {groups} group{'s' if groups != 1 else ''}, and "
        f"there are {n_clusters} {wanted}: where the wanted types are finer than the groups "
        "the latent shows first, the phase pulls them together. To keep finer types, set "
        "train.cluster_epochs: 0 in the run's YAML (--config; with model.standardized_weight: "
        "0 as well, which weighs the few genes of a fine type more), or use --preset "
        "scvi-like (docs/design/default-model.md, round 29)."
    )
