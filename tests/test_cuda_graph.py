"""The CUDA-graph training step (geneae.train.cuda_graph), its plumbing tested on the CPU.

A CUDA graph needs a GPU; everything around it does not: copying each batch into the
captured inputs, the KL weight as a tensor the graph reads, the gradients that must stay
the tensors the graph writes, the eager steps between replays, the fall-back when a capture
fails. Here a stand-in "graph" runs the captured body again at each replay, writing into
the captured outputs and checking that the gradients are still the captured tensors, as a
real graph's kernels would require; training through it must follow eager training.
The real capture was checked on a GPU (BENCHMARKS.md, GPU: the same loss trajectory).
"""

from typing import Any

import numpy as np
import pytest
import torch

from geneae import GeneAE, RunConfig, datasets
from geneae.config import ModelConfig, TrainConfig
from geneae.train import plan as plan_module
from geneae.train.cuda_graph import GraphedStep, graph_inputs
from geneae.train.plan import TrainingPlan, why_no_graph


class ReplayedEagerly:
    """A stand-in CUDA graph: each replay reruns the body into the captured memory."""

    def __init__(self, body: Any, module: torch.nn.Module, outputs: Any) -> None:
        self.body, self.outputs = body, outputs
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.grads = [p.grad for p in self.params]

    def replay(self) -> None:
        for p, captured in zip(self.params, self.grads, strict=True):
            # A graph writes the gradients it captured, nowhere else.
            assert p.grad is captured, "the captured gradient tensors were replaced"
            p.grad.zero_()  # a graph's backward overwrites; an eager rerun accumulates
        new = self.body()
        for old, fresh in (
            (self.outputs.loss, new.loss),
            (self.outputs.reconstruction, new.reconstruction),
            (self.outputs.kl, new.kl),
            *((self.outputs.metrics[k], new.metrics[k]) for k in new.metrics),
        ):
            old.detach().copy_(fresh.detach())


def capture_eagerly(body: Any, module: torch.nn.Module) -> tuple[ReplayedEagerly, Any]:
    """Run the body once for its outputs' memory, then undo it, as a capture does."""
    buffers = [b.clone() for b in module.buffers()]
    rng = torch.get_rng_state()
    for p in module.parameters():
        p.grad = None
    outputs = body()
    with torch.no_grad():
        for b, saved in zip(module.buffers(), buffers, strict=True):
            b.copy_(saved)
    torch.set_rng_state(rng)
    for p in module.parameters():
        if p.grad is not None:
            p.grad.zero_()
    return ReplayedEagerly(body, module, outputs), outputs


def failing_capture(body: Any, module: torch.nn.Module) -> tuple[Any, Any]:
    raise RuntimeError("operation not permitted when stream is capturing")


def install(capture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def on_fit_start(self: TrainingPlan) -> None:  # as on a GPU, with the stand-in capture
        self._graph = GraphedStep(self.module, self.train_config.gradient_clip, capture)

    monkeypatch.setattr(TrainingPlan, "on_fit_start", on_fit_start)


def fit(family: str, **extra: Any) -> GeneAE:
    adata = datasets.synthetic_counts(n_cells=600, n_genes=80, n_clusters=3, seed=0)
    settings = {
        "model.family": family,
        "model.likelihood": "nb",
        "model.members": 1,
        "model.hidden": [32],
        "model.latent_dim": 4,
        "model.dropout": 0.0,
        "train.batch_size": 128,  # 540 training rows: four full batches and one of 28
        "train.max_epochs": 6,
        "train.cluster_epochs": 0,
        "train.early_stopping": False,
        "train.num_threads": 1,
        "train.quiet": True,
        "train.seed": 0,
        "preprocess.n_top_genes": 0,
        **extra,
    }
    return GeneAE(RunConfig().updated(settings)).fit(adata)


@pytest.mark.parametrize(
    ("family", "extra"),
    [("ae", {"train.gradient_clip": 5.0}), ("vae", {})],  # the clip runs inside the graph
)
def test_graph_training_follows_eager_training(family, extra, monkeypatch):
    eager = fit(family, **extra)
    assert "cuda_graph" not in eager.metrics["model"]  # the CPU: nothing to say
    install(capture_eagerly, monkeypatch)
    graphed = fit(family, **extra)
    # 6 epochs x 4 full batches, less the eager steps before the capture.
    replays = 6 * 4 - plan_module.EAGER_STEPS_BEFORE_GRAPH
    assert graphed.metrics["model"]["cuda_graph"] == f"on: {replays} steps replayed"
    for column in ("train_loss", "val_loss", "train_kl"):
        np.testing.assert_allclose(
            graphed.history[column], eager.history[column], rtol=2e-5, err_msg=column
        )
    # The KL weight reached the replays: the VAE's warm-up moves it every step.
    if family == "vae":
        assert graphed.history["kl_weight"].iloc[-1] > graphed.history["kl_weight"].iloc[0]


def test_a_failed_capture_trains_eagerly(monkeypatch):
    eager = fit("ae")
    install(failing_capture, monkeypatch)
    fallen_back = fit("ae")
    note = fallen_back.metrics["model"]["cuda_graph"]
    assert note.startswith("off: the capture failed (RuntimeError: operation not permitted")
    np.testing.assert_allclose(fallen_back.history["train_loss"], eager.history["train_loss"])


def test_batches_of_another_shape_do_not_match():
    module = torch.nn.Linear(3, 2)
    step = GraphedStep(module, capture=capture_eagerly)
    batch = {"x": torch.ones(4, 3), "target_nonzero": torch.arange(5)}
    step._inputs = {k: v.clone() for k, v in graph_inputs(batch).items()}
    assert step.matches(batch)
    assert step.matches({"x": torch.zeros(4, 3), "target_nonzero": torch.arange(9)})
    assert not step.matches({"x": torch.ones(3, 3)})
    assert not step.matches({"x": torch.ones(4, 3, dtype=torch.float64)})
    assert not step.matches({"x": torch.ones(4, 3), "library": torch.ones(4)})


@pytest.mark.parametrize(
    ("train", "model", "world_size", "why"),
    [
        ({"precision": "32"}, {}, 1, None),
        ({"cuda_graph": False}, {}, 1, "train.cuda_graph is off"),
        ({"precision": "16-mixed"}, {}, 1, "mixed precision (16-mixed)"),
        ({"precision": "bf16-mixed"}, {}, 1, "mixed precision (bf16-mixed)"),
        ({"precision": "32"}, {}, 2, "data-parallel training"),
        ({"precision": "32"}, {"family": "dae", "noise": "dynamic_mask"}, 1, "dynamic masking"),
        ({"precision": "32", "gradient_clip": 1.0}, {"family": "vae"}, 1, None),
    ],
)
def test_why_no_graph(train, model, world_size, why):
    assert why_no_graph(TrainConfig(**train), ModelConfig(**model), world_size) == why
