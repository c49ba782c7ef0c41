"""Training precision (geneae.precision): who decides, the CPU check, and mixed training."""

import numpy as np
import pytest
import torch

from geneae import GeneAE, RunConfig, datasets, precision
from geneae.precision import choose_precision, native_bf16_flags


def test_a_setting_wins_over_auto(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16_flags", lambda: frozenset({"avx512_bf16"}))
    for requested in ("32", "bf16-mixed", "16-mixed"):
        assert choose_precision(requested, "cpu") == (requested, "train.precision")


def test_auto_is_bf16_only_on_a_cpu_with_native_bfloat16(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16_flags", lambda: frozenset({"amx_bf16"}))
    assert choose_precision("auto", "cpu")[0] == "bf16-mixed"
    assert choose_precision("auto", "cuda")[0] == "32"  # not measured on GPUs yet
    assert choose_precision("auto", "mps")[0] == "32"
    out_of_core = choose_precision("auto", "cpu", out_of_core=True)
    assert out_of_core[0] == "32" and "out of core" in out_of_core[1]
    monkeypatch.setattr(precision, "native_bf16_flags", lambda: frozenset())
    assert choose_precision("auto", "cpu") == ("32", "the CPU has no native bfloat16")


def test_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 sse\n")
    assert native_bf16_flags(cpuinfo) == {"avx512_bf16"}
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16x\n")
    assert native_bf16_flags(cpuinfo) == frozenset()  # whole flags only
    assert native_bf16_flags(tmp_path / "absent") == frozenset()


ADATA = datasets.synthetic_counts(n_cells=600, n_genes=200, n_clusters=4, seed=3)


def _fit(setting: str) -> GeneAE:
    config = RunConfig().updated(
        {
            "train.precision": setting,
            "train.max_epochs": 40,
            "train.early_stopping": False,
            "train.cluster_epochs": 2,
            "train.quiet": True,
            "model.members": 1,
            "preprocess.n_top_genes": 0,
        }
    )
    model = GeneAE(config)
    model.fit(ADATA)
    return model


@pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="bfloat16 products need oneDNN"
)
def test_mixed_precision_training_reaches_the_float32_loss():
    """bf16-mixed (products in bfloat16, likelihoods in float32) trains as well as float32."""
    full, mixed = _fit("32"), _fit("bf16-mixed")
    assert full.metrics["model"]["precision"] == "32"
    assert mixed.metrics["model"]["precision"] == "bf16-mixed"
    losses = [float(m.history["val_loss"].iloc[-1]) for m in (full, mixed)]
    assert np.isfinite(losses).all()
    assert losses[0] != losses[1]  # the products really ran in bfloat16 ...
    assert abs(losses[1] - losses[0]) < 0.01 * abs(losses[0]), losses  # ... and trained as well
    # Embeddings are computed in float32 whichever precision trained the weights.
    assert mixed.encode(ADATA).dtype == np.float32


@pytest.mark.parametrize("setting", ["32", "bf16-mixed"])
def test_gradient_clipping_trains_in_either_cpu_precision(setting, monkeypatch):
    # Lightning refuses to clip for a fused Adam under mixed precision (an exit 1 found by
    # the YAML fuzzer); unscaled gradients are clipped here as they are, at the given norm.
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    config = RunConfig().updated(
        {
            "train.precision": setting,
            "train.gradient_clip": 0.5,
            "train.max_epochs": 2,
            "train.cluster_epochs": 0,
            "train.quiet": True,
            "model.members": 1,
            "preprocess.n_top_genes": 0,
        }
    )
    model = GeneAE(config).fit(ADATA)
    assert norms and set(norms) == {0.5}
    assert np.isfinite(model.history["train_loss"]).all()
