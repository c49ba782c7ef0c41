"""The design-experiment runner's records (benchmarks/design.py), with a stand-in worker."""

import json

import benchmarks.design as design


def test_records_keep_kmeans_and_leiden_scores_and_the_summary_averages_them(
    tmp_path, monkeypatch, capsys
):
    scores = {0: (0.70, 0.50), 1: (0.80, 0.70)}

    def worker(spec, log_path, timeout, threads):
        ari, leiden = scores[spec["seed"]]
        assert spec["overrides"] == {"train.kl_weight": 2.0}
        result = {"status": "ok", "ari": ari, "nmi": 0.6, "ari_leiden": leiden}
        return {**result, "nmi_leiden": 0.5, "kmeans_restarts": 50}, ""

    monkeypatch.setattr(design, "run_worker", worker)
    settings = design.parse_settings(["train.kl_weight=2"])
    design.run_design("trial", ["pbmc_10x"], [0, 1], settings, tmp_path)
    lines = (tmp_path / "design_experiments.jsonl").read_text().splitlines()
    records = sorted((json.loads(line) for line in lines), key=lambda r: r["seed"])
    assert [(r["ari"], r["ari_leiden"], r["nmi_leiden"]) for r in records] == [
        (0.70, 0.50, 0.5),
        (0.80, 0.70, 0.5),
    ]
    assert all(r["config"] == "trial" and r["status"] == "ok" for r in records)
    out = capsys.readouterr().out
    assert "seed 1: ARI 0.800, Leiden ARI 0.700" in out
    # mean and sample sd over the two seeds
    assert "ARI 0.750 +- 0.071 (2 seeds), Leiden ARI 0.600 +- 0.141 (2 seeds)" in out


def test_a_second_set_flag_adds_to_the_first():
    from benchmarks.__main__ import parse

    args = parse(
        ["design", "--datasets", "pbmc_10x_n750", "--set", "model.members=6", "--set", "a=1"]
    )
    assert design.parse_settings(args.settings) == {"model.members": 6, "a": 1}
    assert args.datasets == ["pbmc_10x_n750"]
