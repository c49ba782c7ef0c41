"""geneae.logscale against closed forms on random values."""

from __future__ import annotations

import numpy as np
import pytest

from geneae.logscale import LogScale, from_floor, parse


@pytest.mark.parametrize(
    ("text", "log"),
    [("log2(x+0.001)", np.log2), ("ln(x + 1e-05)", np.log), ("log10(x+0.01)", np.log10)],
)
def test_undo_and_redo_are_the_inverse_of_the_log(text, log) -> None:
    scale = parse(text)
    rng = np.random.default_rng(0)
    x = rng.lognormal(1.0, 3.0, size=(50, 40))
    x[rng.random(x.shape) < 0.4] = 0.0
    logged = log(x + scale.pseudo)
    undone = scale.undo(logged)
    np.testing.assert_allclose(undone, x, rtol=1e-9, atol=1e-12)
    assert np.all(undone[x == 0] == 0.0)  # exactly zero at the floor
    np.testing.assert_allclose(scale.redo(x), logged, rtol=1e-12)
    assert scale.floor == pytest.approx(log(scale.pseudo))


def test_values_written_to_four_decimals_are_zero_at_the_floor() -> None:
    scale = LogScale("log2", 0.001)
    written = np.round(np.array([np.log2(0.001), np.log2(5.001)]), 4)
    undone = scale.undo(written)
    assert undone[0] == 0.0 and undone[1] == pytest.approx(5.0, rel=1e-4)
    assert scale.undo(np.array([-12.0]))[0] < 0  # below the floor: negative, for the check
    with np.errstate(over="raise"):  # above the ceiling (a TPM of 5000 as a log): +inf
        assert scale.undo(np.array([5000.0, scale.ceiling - 1e-9])).tolist()[0] == np.inf
    assert 2.0**scale.ceiling - 0.001 == pytest.approx(1e9)


@pytest.mark.parametrize("pseudo", [0.1, 0.01, 0.001, 1e-4, 1e-5, 1e-6])
def test_floors_of_log2_and_ln_are_recognised(pseudo) -> None:
    assert from_floor(round(float(np.log2(pseudo)), 4)) == LogScale("log2", pseudo)
    assert from_floor(float(np.log(pseudo))) == LogScale("ln", pseudo)
    assert from_floor(float(np.log10(pseudo))) is None  # whole numbers: not a log's floor
    assert from_floor(float(np.log2(pseudo)) + 0.01) is None


def test_parse_writes_one_form_and_refuses_others() -> None:
    assert str(parse(" log2( x + 1e-3 ) ")) == "log2(x+0.001)"
    assert parse("no") is None and parse("No") is None
    for bad in ("log2(x)", "log2(x+0)", "exp(x+1)", "log2(x-1)", ""):
        with pytest.raises(ValueError, match="not a log with a pseudo-count"):
            parse(bad)


def test_row_power_sums_of_log2_are_the_totals_of_the_undone_values() -> None:
    import scipy.sparse as sp

    from geneae.logscale import row_power_sums

    rng = np.random.default_rng(1)
    counts = rng.poisson(rng.gamma(0.5, 40.0, size=(1, 50)), size=(30, 50)).astype(float)
    logged = np.log2(counts + 1)
    expected = counts.sum(axis=1)
    np.testing.assert_allclose(row_power_sums(logged, 2.0), expected, rtol=1e-9)
    np.testing.assert_allclose(row_power_sums(sp.csr_matrix(logged), 2.0), expected, rtol=1e-9)


def test_depth_is_recognised_in_totals_of_reads_only() -> None:
    from geneae.logscale import carries_depth, may_carry_depth

    rng = np.random.default_rng(2)
    reads = np.exp(rng.normal(np.log(3e7), 0.5, 200))  # sequencing depth, log sd 0.5
    assert carries_depth(reads)
    assert not carries_depth(np.full(200, 1e6) * rng.uniform(0.98, 1.0, 200))  # TPM
    assert not carries_depth(np.full(200, 5e6))  # quantile-normalised arrays
    assert may_carry_depth(0.0, 24.0)
    assert not may_carry_depth(0.0, 11.0)  # values of a single-cell log1p
    assert not may_carry_depth(4.1, 24.0)  # no zero: DESeq2's vst / rlog
