"""model.wide_members: an ensemble whose members read the model genes differently.

Narrow members read and reconstruct the leading model genes as they are; wide members read
every gene z-scored and reconstruct the z-scores. Checked against closed forms (the
z-scores, their inverse, the per-gene mean over the members that cover a gene) and
scikit-learn's PCA for the block that reads the wide members' view.
"""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from sklearn.decomposition import PCA

from geneae.config import ModelConfig, RunConfig
from geneae.data_start import DataStart, start_from_data
from geneae.model_training import member_config, member_seed
from geneae.module import Ensemble, build_module
from geneae.module.views import CLIP, GeneView, gene_view

N, G, NARROW, D = 50, 12, 5, 3


def _config(**overrides) -> ModelConfig:
    values = {
        "family": "vae",
        "likelihood": "mse",
        "hidden": [8],
        "latent_dim": D,
        "members": 4,
        "wide_members": 2,
        "narrow_genes": NARROW,
        "standardized_weight": 1.5,
    }
    return ModelConfig(**(values | overrides))


def _inputs(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # Genes on different scales and means, as log expression is.
    return torch.randn(N, G, generator=gen) * torch.linspace(0.2, 3.0, G) + torch.arange(G)


def _started(module: Ensemble, x: torch.Tensor) -> Ensemble:
    start = DataStart(x.mean(0), x.var(0, unbiased=False), 1.0)
    for member in module.members:
        start_from_data(member, start)
    module.eval()
    with torch.no_grad():
        module.calibrate([m.encode(x) for m in module.members], x)
    return module


def test_members_split_into_narrow_then_wide() -> None:
    cfg = _config()
    kinds = [cfg.member(i) for i in range(4)]
    assert [m.wide_members for m in kinds] == [0, 0, 1, 1]
    assert all(m.members == 1 for m in kinds)
    # Each kind takes the seeds of an ensemble of that kind alone.
    assert [cfg.rank_in_kind(i) for i in range(4)] == [0, 1, 0, 1]
    run = RunConfig().updated({"model": cfg.model_dump(mode="json"), "train.seed": 7})
    seeds = [member_config(run, i).train.seed for i in range(4)]
    assert seeds == [member_seed(7, 0), member_seed(7, 1), member_seed(7, 0), member_seed(7, 1)]
    assert [member_config(run, i).model.wide_members for i in range(4)] == [0, 0, 1, 1]
    # A wide member weighs every gene alike: squared error, no standardised term.
    assert [(m.likelihood, m.standardized_weight) for m in kinds[2:]] == [("mse", 0.0)] * 2
    assert [(m.likelihood, m.standardized_weight) for m in kinds[:2]] == [("mse", 1.5)] * 2
    torch.manual_seed(0)
    module = build_module(cfg, G)
    assert isinstance(module, Ensemble) and module.n_genes == G
    assert [m.n_genes for m in module.members] == [NARROW, NARROW, G, G]
    assert [m.n_model_genes for m in module.members] == [G] * 4
    assert module.members[0].decoder.standardized is not None
    assert module.members[2].decoder.standardized is None


def test_a_view_reads_a_leading_slice_or_clipped_z_scores_and_inverts_them() -> None:
    x = _inputs()
    narrow = GeneView(G, NARROW, standardize=False)
    assert torch.equal(narrow.inputs(x), x[:, :NARROW])
    assert torch.equal(narrow.outputs(x[:, :NARROW]), x[:, :NARROW])
    wide = GeneView(G, G, standardize=True)
    wide.start_at(x.mean(0), x.var(0, unbiased=False))
    z = wide.inputs(x)
    expected = (x - x.mean(0)) / x.std(0, unbiased=False)
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(wide.outputs(z), x)
    far = x.mean(0) + 50 * x.std(0, unbiased=False)
    assert torch.all(wide.inputs(far[None]) == CLIP)
    # A gene constant on the training data centres to 0 instead of dividing by 0.
    constant = GeneView(2, 2, standardize=True)
    constant.start_at(torch.tensor([3.0, 1.0]), torch.tensor([0.0, 4.0]))
    torch.testing.assert_close(
        constant.inputs(torch.tensor([[3.0, 3.0]])), torch.tensor([[0.0, 1.0]])
    )


def test_a_rescaling_view_reads_each_sample_on_the_library_of_every_gene() -> None:
    gen = torch.Generator().manual_seed(7)
    expression = torch.rand(N, G, generator=gen) * torch.logspace(0, 3, G)
    target = 1e4
    # The model input: log1p of expression scaled so that the first NARROW genes total 1e4.
    x = torch.log1p(expression * target / expression[:, :NARROW].sum(1, keepdim=True))
    view = GeneView(G, G, standardize=True, target_sum=target)
    expected = torch.log1p(expression * target / expression.sum(1, keepdim=True))
    torch.testing.assert_close(view.rescaled(x), expected, rtol=1e-4, atol=1e-4)
    view.start_at(expected.mean(0), expected.var(0, unbiased=False))
    z = view.inputs(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(G), rtol=0, atol=1e-3)
    # Its reconstruction goes back to the model input's units, sample by sample.
    torch.testing.assert_close(view.outputs(z, x), x, rtol=1e-4, atol=1e-3)
    assert gene_view(_config(members=1, wide_members=1, wide_target_sum=target), G).target_sum


def test_views_follow_the_configuration() -> None:
    assert gene_view(_config(members=1, wide_members=0, narrow_genes=0), G) is None
    assert gene_view(_config(members=1, wide_members=0, narrow_genes=G), G) is None
    narrow = gene_view(_config(members=1, wide_members=0), G)
    assert narrow is not None and (narrow.width, narrow.standardize) == (NARROW, False)
    wide = gene_view(_config(members=1, wide_members=1), G)
    assert wide is not None and (wide.width, wide.standardize) == (G, True)


def test_reconstruction_is_per_gene_the_mean_of_the_members_that_cover_it() -> None:
    torch.manual_seed(1)
    x = _inputs()
    module = _started(build_module(_config(), G), x)
    with torch.no_grad():
        out = module.predict(x)
        each = [m.predict(x)["reconstruction"] for m in module.members]
    assert [r.shape[1] for r in each] == [NARROW, NARROW, G, G]
    expected = torch.empty(N, G)
    expected[:, :NARROW] = (each[0] + each[1] + each[2][:, :NARROW] + each[3][:, :NARROW]) / 4
    expected[:, NARROW:] = (each[2][:, NARROW:] + each[3][:, NARROW:]) / 2
    torch.testing.assert_close(out["reconstruction"], expected)
    torch.testing.assert_close(
        module.coverage(), torch.tensor([4.0] * NARROW + [2.0] * (G - NARROW))
    )
    # A wide member's reconstruction is in the input's units: its z-scores undone.
    wide = module.members[2]
    with torch.no_grad():
        inference = wide.inference(wide.own_input(x), sample=False)
        z_scores = wide.generative(inference["z"], standardized=False)["mean"]
    torch.testing.assert_close(each[2], z_scores * wide.view.std + wide.view.mean)


def test_the_generative_mean_is_in_model_genes_and_units() -> None:
    torch.manual_seed(2)
    x = _inputs()
    module = _started(build_module(_config(), G), x)
    with torch.no_grad():
        z = module.encode(x)[:, : 4 * D]
        decoded = module.generative(z)
        means = [m.decoded_mean(code) for m, code, _ in module.member_codes(z)]
    assert set(decoded) == {"mean"} and decoded["mean"].shape == (N, G)
    torch.testing.assert_close(decoded["mean"], module.gene_mean(means))


def test_the_pca_block_reads_the_wide_members_z_scores() -> None:
    torch.manual_seed(3)
    x = _inputs()
    module = _started(build_module(_config(pca_block=True), G), x)
    with torch.no_grad():
        block = module.encode(x)[:, 4 * D :]
    z = ((x - x.mean(0)) / x.std(0, unbiased=False)).numpy()
    reference = PCA(n_components=D, svd_solver="full").fit_transform(z)
    for k in range(D):  # the same axes, up to sign, on one scale for the block
        corr = torch.corrcoef(torch.stack([block[:, k], torch.as_tensor(reference[:, k])]))[0, 1]
        assert abs(float(corr)) > 0.999
    # Its loadings are in the input's units: each axis times the gene's spread.
    loadings = module.pca_loadings()
    expected = module.pca_components.T * module.pca_scale * x.std(0, unbiased=False)[:, None]
    torch.testing.assert_close(loadings, expected)


def test_linear_loadings_are_padded_to_the_model_genes() -> None:
    torch.manual_seed(4)
    x = _inputs()
    module = _started(build_module(_config(decoder_hidden=[]), G), x)
    loadings = module.loadings()
    assert loadings.shape == (G, 4 * D)
    narrow, wide = module.members[0], module.members[2]
    torch.testing.assert_close(loadings[:NARROW, :D], narrow.loadings() * module.scales[0])
    assert torch.all(loadings[NARROW:, :D] == 0)
    expected = wide.loadings() * module.scales[2] * wide.view.std[:, None]
    torch.testing.assert_close(loadings[:, 2 * D : 3 * D], expected)


def test_a_wide_members_loss_is_squared_error_of_its_z_scores() -> None:
    torch.manual_seed(5)
    x = _inputs()
    module = _started(build_module(_config(family="ae"), G), x)
    wide, narrow = module.members[2], module.members[0]
    wide.eval()
    out = wide.loss({"x": x})
    z = ((x - x.mean(0)) / x.std(0, unbiased=False)).clamp(-CLIP, CLIP)
    with torch.no_grad():
        decoded = wide.generative(wide.encode(x), standardized=False)["mean"]
    torch.testing.assert_close(out.reconstruction, (decoded - z).square().sum(1))
    # A narrow member scores its leading genes only (squared error plus the term).
    narrow.eval()
    assert narrow.loss({"x": x}).reconstruction.shape == (N,)
    with torch.no_grad():
        code = narrow.encode(x)
        params = narrow.generative(code)
        expected = narrow.decoder.reconstruction_loss(x[:, :NARROW], params, None, x[:, :NARROW])
    torch.testing.assert_close(narrow.loss({"x": x}).reconstruction, expected)


def test_state_dict_round_trip_keeps_the_views() -> None:
    torch.manual_seed(6)
    x = _inputs()
    module = _started(build_module(_config(pca_block=True), G), x)
    copy = build_module(_config(pca_block=True), G)
    copy.load_state_dict(module.state_dict())
    copy.eval()
    with torch.no_grad():
        torch.testing.assert_close(copy.encode(x), module.encode(x))
        torch.testing.assert_close(copy.reconstruct(x), module.reconstruct(x))
    # The PCA block's view is the wide member's, not saved a second time.
    assert not any(key.startswith("pca_view") for key in module.state_dict())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"likelihood": "bernoulli"}, "averaged with probabilities"),
        ({"family": "gmvae", "members": 1, "wide_members": 1}, "gmvae"),
    ],
)
def test_wide_members_refuse_what_they_cannot_be(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _config(**overrides)
