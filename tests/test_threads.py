"""The CPU thread count (geneae.threads): overrides, and idle cores measured for real."""

import os
import subprocess
import sys
import time

import pytest
import torch

from geneae import threads
from geneae.threads import apply_threads, choose_threads, idle_cores

linux_only = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")


def test_setting_then_environment_then_idle_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(5, default=2) == (5, "train.num_threads")
    assert choose_threads(None, default=2) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "idle_cores", lambda: 0)
    assert choose_threads(None, default=2)[0] == 1  # never fewer than one
    monkeypatch.setattr(threads, "idle_cores", lambda: 7)
    assert choose_threads(None, default=2)[0] == 2  # never more than torch would use
    monkeypatch.setattr(threads, "idle_cores", lambda: None)
    assert choose_threads(None, default=2)[0] == 2


def test_apply_sets_torch_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@linux_only
def test_a_core_held_by_another_process_is_not_idle():
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.skip("needs two cores")
    baseline = idle_cores(0.3)
    assert baseline is not None and 0 <= baseline <= len(usable)
    # Spin one process on each usable core: none of them is idle while they run.
    spin = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin, str(c)]) for c in usable]
    try:
        time.sleep(0.5)
        assert idle_cores(0.3) == 0
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_library_threads_hold_blas_and_openmp_then_restore(monkeypatch):
    """numpy's BLAS and the OpenMP runtimes (scikit-learn's, torch's) follow the choice,
    from a start of three threads that neither choice below gives, so that a hold that
    did nothing, or was not undone, fails on any machine."""
    import sklearn.cluster  # noqa: F401 - loads scikit-learn's OpenMP runtime
    from threadpoolctl import threadpool_info, threadpool_limits

    from geneae.threads import library_threads

    def counts() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info()}

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)  # one core idle, as when one is busy
    with threadpool_limits(limits=3):
        assert counts() == {3} and torch.get_num_threads() == 3
        with library_threads(None) as chosen:  # the idle cores
            assert chosen == 1
            assert counts() == {1} and torch.get_num_threads() == 1
        assert counts() == {3} and torch.get_num_threads() == 3
        with library_threads(2) as chosen:  # train.num_threads, as for training
            assert chosen == 2
            assert counts() == {2} and torch.get_num_threads() == 2
        assert counts() == {3}


def test_both_evaluations_run_inside_the_library_threads(monkeypatch, tmp_path):
    """`geneae evaluate` and the evaluation of `geneae train` measure beside PCA, and the
    run's results are laid out, with the libraries held to the chosen threads."""
    from types import SimpleNamespace

    from threadpoolctl import threadpool_info

    from geneae import RunConfig
    from geneae import run as run_module

    def pools() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info()}

    if pools() == {1}:
        pytest.skip("the libraries run one thread here already: nothing to hold")
    seen: dict[str, set[int]] = {}

    def evaluate_model(model, prepared):
        seen["evaluate_model"] = pools()
        return SimpleNamespace(metrics={"timings": {}})

    def results_anndata(model, evaluation):
        seen["results_anndata"] = pools()
        return object()

    monkeypatch.setattr(run_module, "evaluate_model", evaluate_model)
    monkeypatch.setattr(run_module, "results_anndata", results_anndata)
    monkeypatch.setattr(run_module, "set_metrics", lambda results, metrics: None)
    monkeypatch.setattr(run_module, "write_h5ad", lambda results, path: None)
    config = RunConfig().updated({"train.num_threads": 1, "evaluate.report": False})
    model = SimpleNamespace(config=config, preprocess=lambda adata, layer=None: object())

    assert run_module.evaluate_file(model, None) == {"timings": {}}
    assert seen == {"evaluate_model": {1}}
    prepared = SimpleNamespace(in_memory=object())
    run_module._evaluate_and_report(model, prepared, tmp_path, tmp_path)
    assert seen == {"evaluate_model": {1}, "results_anndata": {1}}
