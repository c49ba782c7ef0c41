"""The benchmark report (benchmarks/report.py) on records of runs that failed."""

from benchmarks.report import _dataset_table


def test_a_failed_run_is_listed_by_its_messages_first_line():
    failed = {"status": "failed", "seed": 0, "error": "ValueError: Input X contains NaN.\nPCA..."}
    lines = _dataset_table("bulk_vst", {"scanpy-pca10": {"records": [failed], "ok": []}})
    assert "- `scanpy-pca10` seed 0: failed — ValueError: Input X contains NaN." in lines
    assert not any("PCA..." in line for line in lines)
