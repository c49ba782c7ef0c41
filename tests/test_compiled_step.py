"""The compiled CPU training step (geneae.train.compiled) and its default (geneae.resolve).

The compiled loss must score and differentiate as the eager one (a deterministic module:
eval mode, no sampling), a run with ``train.compile`` must train through it and say so in
metrics.json, and where compiling is impossible or fails the step must run eagerly with
the same gradients. Compiling takes 10-40 s (inductor's cache shortens later runs), so the
tests that compile are few and small.
"""

import math
from typing import Any

import pytest
import torch

from geneae import GeneAE, RunConfig, datasets
from geneae.data_defaults import COMPILE_MIN_ENTRIES
from geneae.facts import describe
from geneae.module import build_module
from geneae.resolve import default_compile, default_epochs, resolve
from geneae.train import compiled as compiled_module
from geneae.train.compiled import CompiledLoss, cxx_compiler
from tests.module.conftest import nb_clusters

needs_compiler = pytest.mark.skipif(cxx_compiler() is None, reason="no C++ compiler here")


def small_module(family: str = "vae") -> torch.nn.Module:
    cfg = RunConfig().updated(
        {
            "model.family": family,
            "model.likelihood": "nb",
            "model.hidden": [32],
            "model.latent_dim": 4,
            "model.standardized_weight": 1.5,
        }
    )
    torch.manual_seed(0)
    return build_module(cfg.model, 40)


def batch_of(n: int = 64) -> dict[str, torch.Tensor]:
    data = nb_clusters(n=n, n_genes=40, k=3, seed=1)
    return {k: data[k] for k in ("x", "target", "library")}


def loss_and_grads(module: torch.nn.Module, step: Any) -> tuple[float, dict[str, torch.Tensor]]:
    def backward(out: Any) -> None:
        module.zero_grad(set_to_none=True)
        out.loss.backward()

    out = step(backward)
    grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    return float(out.loss.detach()), grads


def eager(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Any:
    def step(backward: Any) -> Any:
        out = module.loss(batch, kl_weight=0.3)
        backward(out)
        return out

    return step


def assert_same(a: tuple[float, dict], b: tuple[float, dict], rtol: float) -> None:
    assert a[0] == pytest.approx(b[0], rel=rtol)
    assert a[1].keys() == b[1].keys() and a[1]
    for name, grad in a[1].items():
        torch.testing.assert_close(grad, b[1][name], rtol=rtol, atol=1e-5, msg=name)


@needs_compiler
def test_compiled_loss_scores_and_differentiates_as_the_eager_one():
    # A deterministic autoencoder in eval mode: no random draw, both runs see the same.
    module = small_module("ae").eval()
    batch = batch_of()
    reference = loss_and_grads(module, eager(module, batch))
    compiled = CompiledLoss(module)
    got = loss_and_grads(module, lambda backward: compiled.step(batch, backward, kl_weight=0.3))
    assert compiled.steps == 1 and compiled.note is None
    assert compiled.first_step_s is not None and compiled.first_step_s > 0
    assert_same(got, reference, rtol=1e-4)
    # A batch of another size (an epoch's last) runs through the same compiled loss.
    smaller = {k: v[:37] for k, v in batch.items()}
    got = loss_and_grads(module, lambda backward: compiled.step(smaller, backward, kl_weight=0.3))
    assert compiled.steps == 2 and compiled.note is None
    assert_same(got, loss_and_grads(module, eager(module, smaller)), rtol=1e-4)


def test_a_failing_compiled_step_runs_eagerly_from_then_on(monkeypatch, caplog):
    calls = []

    def broken(fn: Any, **options: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            raise RuntimeError("C++ compile error\nlong compiler output")

        return run

    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setattr(compiled_module, "cxx_compiler", lambda: "g++")
    module = small_module()
    batch = batch_of()
    compiled = CompiledLoss(module)
    torch.manual_seed(3)
    got = loss_and_grads(module, lambda backward: compiled.step(batch, backward, kl_weight=0.3))
    torch.manual_seed(3)
    assert_same(got, loss_and_grads(module, eager(module, batch)), rtol=1e-6)
    assert compiled.summary() == {
        "compiled_steps": 0,
        "note": "off after 0 compiled steps: RuntimeError: C++ compile error",
    }
    assert "training goes on eagerly" in caplog.text
    compiled.step(batch, lambda out: out.loss.backward(), kl_weight=0.3)
    assert calls == [1]  # never tried again


def test_a_failing_backward_is_redone_eagerly_with_fresh_gradients(monkeypatch):
    module = small_module("ae").eval()  # deterministic: the redone step draws nothing
    batch = batch_of()
    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)  # "compiles" to eager
    monkeypatch.setattr(compiled_module, "cxx_compiler", lambda: "g++")
    compiled = CompiledLoss(module)
    tries = []

    def backward(out: Any) -> None:
        module.zero_grad(set_to_none=True)
        out.loss.backward()
        tries.append(1)
        if len(tries) == 1:  # gradients written, then the (compiled) backward fails
            raise RuntimeError("backward kernel failed")

    compiled.step(batch, backward, kl_weight=0.3)
    got = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    reference = loss_and_grads(module, eager(module, batch))[1]
    assert len(tries) == 2 and compiled.note.startswith("off after 0 compiled steps")
    for name, grad in reference.items():
        torch.testing.assert_close(got[name], grad, msg=name)  # not accumulated twice


def test_without_a_compiler_the_step_is_eager(monkeypatch):
    monkeypatch.setattr(compiled_module, "cxx_compiler", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled anyway"))
    module = small_module()
    compiled = CompiledLoss(module)
    assert compiled.summary() == {"compiled_steps": 0, "note": "off: no C++ compiler (set CXX)"}
    # Asked where steps are not compiled (a GPU, data-parallel training): said why.
    elsewhere = CompiledLoss(module, off="data-parallel training")
    assert elsewhere.summary() == {"compiled_steps": 0, "note": "off: data-parallel training"}
    assert CompiledLoss(module, enabled=False).summary() is None
    out = compiled.step(batch_of(), lambda out: out.loss.backward(), kl_weight=0.3)
    assert torch.isfinite(out.loss)


def test_cxx_compiler_takes_cxx_first_then_the_usual_names(monkeypatch, tmp_path):
    fake = tmp_path / "my-c++"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CXX", str(fake))
    assert cxx_compiler() == str(fake)
    monkeypatch.setenv("CXX", "not-a-compiler")
    assert cxx_compiler() is None  # nothing else on this PATH
    (tmp_path / "clang++").write_text("#!/bin/sh\n")
    (tmp_path / "clang++").chmod(0o755)
    assert cxx_compiler() == "clang++"


def test_compiling_is_the_default_only_where_training_repays_it():
    # 10x PBMC's default: 94 epochs of 3,844 training cells at 256 x 2,000: off.
    assert not default_compile(default_epochs(4271), 3844, 256, 2000)
    # A million cells at their default 20 epochs: on.
    assert default_compile(default_epochs(1_000_000), 900_000, 256, 2000)
    # The threshold itself, in batch entries: one epoch of `steps` full batches.
    steps = math.ceil(COMPILE_MIN_ENTRIES / (256 * 2000))
    assert default_compile(1, steps * 256, 256, 2000)
    assert not default_compile(1, (steps - 1) * 256, 256, 2000)
    assert default_compile(2, (steps // 2 + 1) * 256, 256, 2000)  # over epochs alike


def test_resolve_decides_compile_and_keeps_a_given_value():
    facts = describe(datasets.synthetic_counts(n_cells=300, n_genes=50, n_clusters=3, seed=0))
    assert resolve(RunConfig(), facts).train.compile is False
    assert resolve(RunConfig().updated({"train.compile": True}), facts).train.compile is True


@needs_compiler
def test_a_run_with_compile_trains_through_the_compiled_step():
    adata = datasets.synthetic_counts(n_cells=300, n_genes=50, n_clusters=3, seed=0)
    settings = {
        "model.members": 1,
        "model.hidden": [16],
        "model.latent_dim": 4,
        "train.max_epochs": 3,
        "train.cluster_epochs": 0,
        "train.compile": True,
        "train.quiet": True,
    }
    model = GeneAE(RunConfig().updated(settings)).fit(adata)
    summary = model.metrics["model"]["compile"]
    assert summary["compiled_steps"] >= 3 and "note" not in summary, summary
    history = model.history
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]


def test_the_clustering_phase_steps_through_the_compiled_loss(monkeypatch):
    from geneae.train.cluster_phase import refine_clusters
    from tests.module.conftest import train
    from tests.test_cluster_phase import tensors_of

    data = nb_clusters(n=300, n_genes=40, k=3, seed=2)
    cfg = RunConfig().updated({"model.likelihood": "nb", "model.hidden": [16]})

    def phase(compile_step: bool) -> tuple[dict, float]:
        torch.manual_seed(0)
        module = build_module(cfg.model, 40)
        train(module, data, steps=5, lr=1e-2, batch_size=64, kl_weight=0.3)
        train_cfg = cfg.train.model_copy(
            update={"cluster_epochs": 2, "cluster_batch_size": 64, "compile": compile_step}
        )
        summary = refine_clusters(module, tensors_of(data), train_cfg, 40, kl_weight=0.3)
        return summary, float(sum(p.detach().double().sum() for p in module.parameters()))

    eager_summary, eager_weights = phase(False)
    assert "compile" not in eager_summary
    # "Compiled" to the eager loss itself: the phase must step through it, with the same result.
    monkeypatch.setattr(torch, "compile", lambda fn, **options: fn)
    monkeypatch.setattr(compiled_module, "cxx_compiler", lambda: "g++")
    summary, weights = phase(True)
    assert summary["compile"]["compiled_steps"] == 2 * 5  # 300 rows in batches of 64
    assert summary["final_kl"] == eager_summary["final_kl"] and weights == eager_weights
