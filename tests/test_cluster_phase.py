"""The clustering phase after training (geneae.train.cluster_phase)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, silhouette_score

from geneae import RunConfig
from geneae.batches import ExpressionTensors, RowMatrix
from geneae.module import build_module
from geneae.train.cluster_phase import (
    ClusterPhaseWarning,
    finer_than_phase,
    kl_to_target,
    latent_means,
    refine_clusters,
    soft_assign,
    step_latent,
    target_distribution,
)
from tests.module.conftest import nb_clusters, train


def test_soft_assignment_and_target_match_their_closed_forms():
    rng = np.random.default_rng(0)
    z, mu = rng.normal(size=(40, 3)), rng.normal(size=(5, 3))
    q_ref = 1 / (1 + ((z[:, None, :] - mu[None]) ** 2).sum(-1))
    q_ref /= q_ref.sum(1, keepdims=True)
    q = soft_assign(torch.tensor(z), torch.tensor(mu)).numpy()
    np.testing.assert_allclose(q, q_ref, rtol=1e-6)
    p_ref = q_ref**2 / q_ref.sum(0)
    p_ref /= p_ref.sum(1, keepdims=True)
    np.testing.assert_allclose(target_distribution(torch.tensor(q)).numpy(), p_ref, rtol=1e-6)
    kl_ref = (p_ref * np.log(p_ref / q_ref)).sum(1).mean()
    kl = float(kl_to_target(torch.tensor(p_ref), torch.tensor(q_ref)))
    assert abs(kl - kl_ref) < 1e-9


def tensors_of(batch):
    return ExpressionTensors(
        x=RowMatrix.from_array(batch["x"].numpy()),
        target=RowMatrix.from_array(batch["target"].numpy()),
        library=batch["library"],
    )


def test_phase_makes_the_groups_compact_without_labels():
    torch.manual_seed(0)
    batch = nb_clusters(n=600, n_genes=60, k=4, seed=3)
    cfg = RunConfig().updated(
        {"model.likelihood": "nb", "model.hidden": [32], "model.latent_dim": 6}
    )
    module = build_module(cfg.model, 60)
    train(module, batch, steps=10, lr=1e-2, batch_size=128, kl_weight=0.3)
    tensors = tensors_of(batch)
    labels = batch["labels"].numpy()
    before = latent_means(module, tensors).numpy()
    train_cfg = cfg.train.model_copy(update={"cluster_epochs": 15, "cluster_lr": 1e-3})
    summary = refine_clusters(module, tensors, train_cfg, 60, kl_weight=0.3)
    after = latent_means(module, tensors).numpy()
    assert summary["clusters"] >= 2 and summary["epochs"] == 15
    assert sum(summary["initial_sizes"]) == 600 and np.isfinite(summary["final_kl"])
    # The known groups (never seen by the phase) are tighter (silhouette 0.76 -> 0.86
    # when written) and still separated.
    assert silhouette_score(after, labels) > silhouette_score(before, labels) + 0.05
    from sklearn.cluster import KMeans

    found = KMeans(4, n_init=10, random_state=0).fit_predict(after)
    assert adjusted_rand_score(labels, found) > 0.9


def test_phase_is_reproducible_for_a_seed():
    batch = nb_clusters(n=200, n_genes=30, k=3, seed=1)
    cfg = RunConfig().updated({"model.likelihood": "nb", "model.hidden": [16]})
    latents = []
    for _ in range(2):
        torch.manual_seed(0)
        module = build_module(cfg.model, 30)
        train_cfg = cfg.train.model_copy(update={"cluster_epochs": 2})
        refine_clusters(module, tensors_of(batch), train_cfg, 30, kl_weight=1.0)
        latents.append(latent_means(module, tensors_of(batch)))
    torch.testing.assert_close(latents[0], latents[1])


def test_phase_gathers_are_told_their_stored_entries(monkeypatch):
    # On a GPU a gather that counts its batch's stored entries itself waits for the GPU
    # every step; the phase counts them on the host, for the same batches.
    import scipy.sparse as sp

    batch = nb_clusters(n=200, n_genes=30, k=3, seed=1)
    counts = sp.csr_matrix(batch["target"].numpy())
    tensors = ExpressionTensors(
        x=RowMatrix.from_array(sp.csr_matrix(np.log1p(counts.toarray()))),
        target=RowMatrix.from_array(counts),
        library=batch["library"],
    )
    assert tensors.x.is_sparse
    told = []
    gather = ExpressionTensors.batch

    def spy(self, idx, n_stored=None):
        told.append((n_stored, int(np.diff(counts.indptr)[idx.numpy()].sum())))
        return gather(self, idx, n_stored)

    monkeypatch.setattr(ExpressionTensors, "batch", spy)
    cfg = RunConfig().updated({"model.likelihood": "nb", "model.hidden": [16]})
    torch.manual_seed(0)
    module = build_module(cfg.model, 30)
    train_cfg = cfg.train.model_copy(update={"cluster_epochs": 2, "cluster_batch_size": 64})
    summary = refine_clusters(module, tensors, train_cfg, 30, kl_weight=1.0)
    assert summary["device"] == "cpu" and np.isfinite(summary["final_kl"])
    assert len(told) == 2 * 4 and all(given == actual for given, actual in told)


def test_seeds_are_non_negative_integers_as_every_generator_takes():
    import pytest

    from geneae.errors import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        RunConfig().updated({"train.seed": -1})


def test_the_optimizer_is_fused_and_steps_as_the_reference_adam():
    # One optimizer for both (geneae.train.optimizers.adam): fused on a CPU, and its update
    # is torch's reference (per-parameter) Adam / AdamW to rounding.
    from geneae.train.optimizers import adam

    gen = torch.Generator().manual_seed(0)
    for decoupled, reference in ((False, torch.optim.Adam), (True, torch.optim.AdamW)):
        start = [torch.randn(7, 5, generator=gen), torch.randn(5, generator=gen)]
        grads = [[torch.randn_like(p) for p in start] for _ in range(3)]
        ours = [p.clone().requires_grad_() for p in start]
        theirs = [p.clone().requires_grad_() for p in start]
        opt = adam(ours, lr=1e-2, weight_decay=0.1, decoupled=decoupled)
        ref = reference(theirs, lr=1e-2, weight_decay=0.1, foreach=False)
        assert opt.defaults["fused"] is True and isinstance(opt, reference)
        for step in grads:
            for o, p, g in ((opt, ours, step), (ref, theirs, step)):
                for param, grad in zip(p, g, strict=True):
                    param.grad = grad.clone()
                o.step()
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def _phase_step_encodings(noise: str) -> int:
    """Encoder passes over a phase step's batch of 50 in one phase epoch over 200 rows, for
    a VAE of ``noise``."""
    batch = nb_clusters(n=200, n_genes=30, k=3, seed=1)
    settings = {"model.likelihood": "nb", "model.hidden": [16], "model.latent_dim": 4}
    cfg = RunConfig().updated({**settings, "model.noise": noise})
    module = build_module(cfg.model, 30)
    passes = []
    module.encoder.register_forward_hook(lambda mod, args, out: passes.append(len(args[0])))
    train_cfg = cfg.train.model_copy(
        update={"cluster_epochs": 1, "cluster_batch_size": 50, "precision": "32"}
    )
    refine_clusters(module, tensors_of(batch), train_cfg, 30, kl_weight=0.3)
    # The encodings of all 200 rows (Leiden's start, DEC's target) are one block each.
    return sum(n == 50 for n in passes)


def test_a_phase_step_encodes_its_batch_once_unless_the_input_is_corrupted():
    assert _phase_step_encodings("none") == 4  # the term reads the loss's own encoding
    assert _phase_step_encodings("mask") == 8  # the term reads the clean input, apart


def test_the_term_reads_the_latent_summary_of_the_losss_encoding():
    torch.manual_seed(0)
    batch = nb_clusters(n=64, n_genes=20, k=2, seed=2)
    for family in ("ae", "vae", "gmvae"):
        settings = {"model.likelihood": "nb", "model.hidden": [8], "model.latent_dim": 3}
        cfg = RunConfig().updated({**settings, "model.family": family, "model.dropout": 0.0})
        module = build_module(cfg.model, 20).train()
        out = module.loss(batch, kl_weight=0.3)
        latent = step_latent(module, batch, out)
        # Without dropout or corruption, the clean input encoded again (batch statistics of
        # the same rows) gives the same summary.
        torch.testing.assert_close(latent, module.encode(batch["x"]), msg=family)
        assert latent.requires_grad, family


@pytest.mark.parametrize(
    ("found", "n_clusters", "asked_by", "warns"),
    [
        ([5, 5, 5], 40, "labels", True),  # fine subtypes in lineages (design round 29)
        (5, 10, "given", True),  # one member; exactly the ratio
        ([1, 1, 1], 4, "labels", True),  # one group: said in the singular
        ([4, 5, 5], 9, "labels", False),  # the largest member's groups count
        ([11, 11, 11], 16, "labels", False),  # mouse bladder: 16 classes, 11 groups
        ([24, 25, 26], 10, "labels", False),  # worm neurons: coarser than the groups
        ([5, 5, 5], 40, "leiden on geneae latent", False),  # a count no user asked for
        ([5, 5, 5], None, "leiden resolution 1", False),
    ],
)
def test_finer_clusters_than_the_phase_sharpened_are_warned_of(found, n_clusters, asked_by, warns):
    phase = {"clusters": found, "epochs": 20}
    message = finer_than_phase(phase, n_clusters, asked_by)
    assert (message is not None) == warns
    if warns:
        groups = max(found) if isinstance(found, list) else found
        noun = "group," if groups == 1 else "groups,"
        assert f"sharpened {groups} {noun}" in message and f"{n_clusters} " in message
        assert "train.cluster_epochs: 0" in message and "--config" in message
    assert finer_than_phase(None, n_clusters, asked_by) is None  # no phase ran


def test_an_evaluation_asking_for_finer_clusters_warns_and_records_it():
    from geneae import GeneAE, datasets
    from geneae.run import evaluate_file

    adata = datasets.synthetic_counts(n_cells=300, n_genes=60, n_clusters=3, seed=0)
    config = RunConfig().updated(
        {
            "train.max_epochs": 3,
            "train.quiet": True,
            "model.hidden": [32],
            "model.latent_dim": 4,
            "model.members": 1,
            "train.cluster_epochs": 2,
            "preprocess.n_top_genes": 0,
            "train.num_threads": 1,
            "evaluate.n_clusters": 40,
            "evaluate.stability_repeats": 0,
        }
    )
    model = GeneAE(config).fit(adata)
    groups = model.metrics["model"]["cluster_phase"]["clusters"]
    assert 2 * groups <= 40  # a few groups in 3 clusters' cells
    with pytest.warns(ClusterPhaseWarning, match=f"sharpened {groups} groups?,"):
        metrics = evaluate_file(model, adata)
    recorded = metrics["comparison"]["clustering"]["finer_than_phase"]
    assert "40 clusters asked for (evaluate.n_clusters)" in recorded


class _Moved(torch.nn.Module):
    """A stand-in module that records where it is moved and what it is given."""

    def __init__(self):
        super().__init__()
        self.devices, self.loaded = [], []

    def to(self, device):
        self.devices.append(str(device))
        return self

    def load_state_dict(self, state, strict=True, assign=False):
        self.loaded.append(state)


def test_a_phase_that_fails_on_a_gpu_runs_again_on_the_host(monkeypatch):
    # The phase runs where training's data were; on a GPU a failure (its memory, an
    # operation it lacks) must not lose the run: the phase starts again on the host, from
    # the best weights, and says why. On the host itself a failure is a failure.
    from types import SimpleNamespace

    import geneae.train.cluster_phase as cluster_phase

    calls = []

    def fake_phase(module, tensors, cfg, n_genes, kl_weight):
        calls.append(tensors)
        if len(calls) == 1:
            raise RuntimeError("CUDA error: out of memory\nmore lines")
        return {"seconds": 1.0, "device": "cpu"}

    monkeypatch.setattr(cluster_phase, "refine_clusters", fake_phase)
    held = SimpleNamespace(x=SimpleNamespace(device=torch.device("cuda", 0)))
    host, best = object(), {"w": torch.zeros(1)}
    module = _Moved()
    phase = cluster_phase.refine_where_trained(module, held, host, best, RunConfig().train, 30, 1.0)
    assert calls == [held, host]
    assert module.devices == ["cuda:0", "cpu"] and module.loaded == [best]
    assert phase["device"] == "cpu (on cuda:0 it failed: RuntimeError: CUDA error: out of memory)"

    calls.clear()
    on_host = SimpleNamespace(x=SimpleNamespace(device=torch.device("cpu")))
    with pytest.raises(RuntimeError, match="out of memory"):
        cluster_phase.refine_where_trained(
            _Moved(), on_host, host, best, RunConfig().train, 30, 1.0
        )
    assert calls == [on_host]
