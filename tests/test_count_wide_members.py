"""Narrow members that model counts beside wide members that read their log expression.

On bulk read counts the default's narrow members fit the NB likelihood to the counts of the
most variable genes, and its wide members squared error to every kept gene's z-scored
log1p per 1e4 (docs/design/default-model.md, round 75). Checked against references: a narrow
member's loss is that of a model of its genes alone (same weights; those genes' counts and
library; its input is the counts preset's); the libraries are the counts of the genes each
sample was normalised over; a wide member's values are taken back to the counts they are
the log of (closed form); and the settings that cannot work are refused.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import torch

from geneae import RunConfig
from geneae.config import ModelConfig
from geneae.errors import ConfigError
from geneae.facts import describe
from geneae.module import Ensemble, build_module
from geneae.prepared import to_tensors
from geneae.resolve import resolve
from tests.test_bulk_read_counts import bulk_reads

N, GENES, NARROW, TARGET = 40, 50, 20, 1e4


def _counts(seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(3.0, 1.5, GENES) * rng.lognormal(0.0, 0.3, (N, GENES))
    return torch.as_tensor(rng.poisson(rate * 20).astype(np.float32))


def _model_input(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log1p of the counts normalised over the narrow genes (geneae.pp.steps.library_genes)."""
    library = counts[:, :NARROW].sum(1)
    return torch.log1p(counts / library[:, None] * TARGET), library


def _ensemble() -> Ensemble:
    cfg = ModelConfig(
        likelihood="nb",
        members=2,
        wide_members=1,
        narrow_genes=NARROW,
        wide_target_sum=TARGET,
        standardized_weight=1.5,
    )
    torch.manual_seed(0)
    ensemble = build_module(cfg, GENES)
    assert isinstance(ensemble, Ensemble)
    return ensemble


def test_a_narrow_count_member_scores_as_a_model_of_its_genes_alone():
    narrow = _ensemble().members[0]
    assert (narrow.n_genes, narrow.cfg.likelihood) == (NARROW, "nb")
    counts = _counts()
    x, library = _model_input(counts)
    # It reads its genes as the counts preset gives them to the single-cell default:
    # log1p per 1e4 of their total, z-scored (closed form) and clipped.
    log = torch.log1p(counts[:, :NARROW] / library[:, None] * 1e4)
    narrow.view.start_at(log.mean(0), log.var(0, unbiased=False))
    preset = ((log - log.mean(0)) / log.std(0, unbiased=False)).clamp(-10, 10)
    torch.testing.assert_close(narrow.own_input(x), preset, rtol=1e-4, atol=1e-4)
    alone = build_module(narrow.cfg.model_copy(update={"narrow_genes": 0}), NARROW)
    weights = {k: v for k, v in narrow.state_dict().items() if not k.startswith("view.")}
    alone.load_state_dict(weights)
    # The batch's non-zeros index the whole target: the member must not read them.
    whole = {"x": x, "target": counts, "library": library}
    whole["target_nonzero"] = counts.flatten().nonzero().flatten()
    own = {"x": preset, "target": counts[:, :NARROW], "library": library}
    narrow.eval()
    alone.eval()
    losses = []
    for module, batch in ((narrow, whole), (alone, own)):
        torch.manual_seed(1)  # the same posterior draw
        losses.append(module.loss(batch).loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_libraries_sum_the_counts_of_the_genes_samples_were_normalised_over():
    counts = _counts().numpy()
    pre = ad.AnnData(np.log1p(counts), layers={"counts": counts})
    narrow = to_tensors(pre, counts=True, library_genes=NARROW)
    np.testing.assert_allclose(narrow.library.numpy(), counts[:, :NARROW].sum(1), rtol=1e-6)
    for genes in (None, GENES):
        every = to_tensors(pre, counts=True, library_genes=genes)
        np.testing.assert_allclose(every.library.numpy(), counts.sum(1), rtol=1e-6)


def test_a_wide_members_log_cpm_is_taken_back_to_the_counts():
    ensemble = _ensemble()
    narrow, wide = ensemble.members
    assert ensemble.reconstructs_counts and wide.cfg.likelihood == "mse"
    counts = _counts()
    x, library = _model_input(counts)
    # Closed form: counts = expm1(model input) x library / target sum.
    back = ensemble.in_target_units(wide, x, library)
    torch.testing.assert_close(back, counts, rtol=1e-4, atol=1e-3)
    # Through the view: the member's own input (every gene rescaled to 1e4, z-scored)
    # decoded as it is comes back as the counts.
    rescaled = wide.view.rescaled(x)
    wide.view.start_at(rescaled.mean(0), rescaled.var(0, unbiased=False))
    own = wide.own_input(x)
    assert own.abs().max() < 10  # no clipping
    back = ensemble.in_target_units(wide, wide.in_model_units(own, x), library)
    torch.testing.assert_close(back, counts, rtol=1e-3, atol=1e-2)
    # The count member's reconstruction is counts already.
    values = torch.rand(N, NARROW)
    assert ensemble.in_target_units(narrow, values, library) is values
    # The ensemble's reconstruction: counts of every gene; the narrow genes the mean of the
    # two members' counts, the genes past them the wide member's counts alone.
    ensemble.eval()
    with torch.no_grad():
        out = ensemble.predict(x, library)["reconstruction"]
        own_counts = narrow.predict(x, library)["reconstruction"]
        logged = wide.predict(x, library)["reconstruction"]
    # log1p values are never below 0: a negative reconstruction is no expression.
    wide_counts = torch.expm1(logged.clamp_min(0)) * library[:, None] / wide.view.target_sum
    assert out.shape == (N, GENES) and bool((out >= 0).all())
    torch.testing.assert_close(out[:, :NARROW], (own_counts + wide_counts[:, :NARROW]) / 2)
    torch.testing.assert_close(out[:, NARROW:], wide_counts[:, NARROW:])


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"model.members": 2, "model.wide_members": 2}, "no member to model the counts"),
        ({"model.narrow_genes": 500}, "leave model.narrow_genes unset"),
        ({"preprocess.scale": True}, "scale: false"),
        ({"model.wide_target_sum": 1e6}, "wide_target_sum unset"),
    ],
)
def test_members_of_two_kinds_that_could_not_give_counts_are_refused(given, problem):
    facts = describe(bulk_reads())
    with pytest.raises(ConfigError, match=problem):
        resolve(RunConfig().updated(given), facts)
