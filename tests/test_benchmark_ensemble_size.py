"""Ensembles formed after the fact from saved design runs (benchmarks/ensemble_size.py)."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import benchmarks.ensemble_size as ensemble_size


def test_blocks_are_the_members_of_every_saved_run_in_order():
    runs = [np.arange(12.0).reshape(2, 6), 100 + np.arange(12.0).reshape(2, 6)]
    blocks = ensemble_size.member_blocks(runs, member_dims=2)
    assert len(blocks) == 6
    np.testing.assert_array_equal(blocks[1], runs[0][:, 2:4])
    np.testing.assert_array_equal(blocks[5], runs[1][:, 4:6])
    with pytest.raises(SystemExit, match="--member-dims"):
        ensemble_size.member_blocks(runs, member_dims=4)


def test_combinations_are_distinct_capped_and_cover_small_sizes():
    assert ensemble_size.combinations(4, 1, 30) == [(0,), (1,), (2,), (3,)]
    drawn = ensemble_size.combinations(9, 5, 30)
    assert len(drawn) == len(set(drawn)) == 30
    assert all(len(c) == 5 and len(set(c)) == 5 and max(c) < 9 for c in drawn)
    assert ensemble_size.combinations(9, 9, 30) == [tuple(range(9))]


def test_sizes_scored_as_the_harness_scores_and_recorded(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 40)
    centres = {"a": 0.0, "b": 6.0, "c": 12.0}
    # Two saved runs of two members each: members 0 and 2 see the groups, 1 and 3 are noise.
    signal = np.array([centres[label] for label in labels])[:, None] + rng.normal(size=(120, 2))
    noise = rng.normal(size=(120, 2))
    folder = tmp_path / "latents" / "design"
    folder.mkdir(parents=True)
    for seed in (0, 1):
        np.save(folder / f"trial__toy__seed{seed}.npy", np.hstack([signal, noise]))

    data = SimpleNamespace(obs=pd.DataFrame({"label": labels}))
    monkeypatch.setattr(ensemble_size, "load_dataset", lambda name: data)
    records = ensemble_size.run(
        "trial", ["toy"], tmp_path, sizes=[1, 2, 4, 5], per_size=30, member_dims=2
    )
    by_size = {r["config"]: r for r in records}
    assert set(by_size) == {"trial/members-1", "trial/members-2", "trial/members-4"}  # 5 > pool
    one = by_size["trial/members-1"]
    assert one["combinations"] == 4 and one["pool"] == 4
    # The two signal blocks find the groups, the two noise blocks do not.
    assert sorted(one["ari_all"])[-2:] == [1.0, 1.0]
    assert max(sorted(one["ari_all"])[:2]) < 0.2
    assert by_size["trial/members-4"]["combinations"] == 1
    lines = (tmp_path / "design_experiments.jsonl").read_text().splitlines()
    assert [json.loads(line)["config"] for line in lines] == [r["config"] for r in records]
