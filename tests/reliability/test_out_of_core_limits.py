"""Out of core in real processes: memory that does not grow with the data; DDP shards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from reliability_helpers import child_env

CHILD = Path(__file__).with_name("ooc_children.py")
GENES, PER_CELL = 500, 50


def _counts_file(path: Path, n_cells: int) -> int:
    """Write sparse counts (PER_CELL genes per cell); return the in-memory route's bytes:
    the z-scored dense input the default count model trains on, plus the CSR counts."""
    rng = np.random.default_rng(0)
    start = rng.integers(0, GENES, size=(n_cells, 1))
    cols = np.sort((start + np.arange(PER_CELL) * (GENES // PER_CELL)) % GENES, axis=1)
    values = rng.integers(1, 6, size=n_cells * PER_CELL).astype(np.float32)
    indptr = np.arange(0, n_cells * PER_CELL + 1, PER_CELL)
    x = sp.csr_matrix((values, cols.ravel().astype(np.int32), indptr), shape=(n_cells, GENES))
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(GENES)])).write_h5ad(
        path
    )
    return n_cells * GENES * 4 + x.data.nbytes + x.indices.nbytes + x.indptr.nbytes


def _run(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(CHILD), *(str(a) for a in args)],
        env=child_env({"OMP_NUM_THREADS": "1"}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc needed")
def test_peak_memory_of_an_out_of_core_fit_does_not_grow_with_the_data(tmp_path):
    budget_gb = 0.0005  # below either file's matrix: both go out of core by themselves
    growth, footprint = {}, {}
    for name, n_cells in (("small", 3000), ("large", 30000)):
        store = tmp_path / f"{name}.h5ad"
        footprint[name] = _counts_file(store, n_cells)
        out = json.loads(_run("memory", store, budget_gb).stdout.strip().splitlines()[-1])
        assert out["data"]["out_of_core"]["matrix_gb"] > budget_gb
        growth[name] = (out["peak_mb"] - out["before_mb"]) * 2**20
    # Ten times the cells cost the in-memory route ~65 MB more. Out of core the peak grew
    # by 31-33 MB over several runs (2026-12-01), of which Python-level allocations
    # (tracemalloc: cell names, filters, split indices) are under 4 MB; the rest is native
    # (allocator, HDF5) and not yet explained. The bound keeps the test to what it guards:
    # clearly less growth than holding the data, without failing on allocator noise.
    extra_data = footprint["large"] - footprint["small"]
    assert growth["large"] - growth["small"] < 0.75 * extra_data, (growth, footprint)
    assert growth["large"] < budget_gb * 2**30 + 2**30  # the contract: budget + 1 GB


@pytest.mark.slow
def test_two_ddp_processes_see_every_training_row_once_per_epoch(tmp_path):
    out = tmp_path / "seen.json"
    # gloo's TCP rendezvous on a loaded machine occasionally drops a connection at
    # start-up; one retry separates that from a real failure (which fails both times).
    for _attempt in range(2):
        done = subprocess.run(
            [sys.executable, str(CHILD), "ddp", str(out)],
            env=child_env({"OMP_NUM_THREADS": "1"}),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if done.returncode == 0:
            break
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    train = np.array(record["train"])
    ranks = record["ranks"]
    orders = []
    for epoch in ("0", "1"):
        per_rank = [np.concatenate(r[epoch]) for r in ranks]
        assert len({len(r[epoch]) for r in ranks}) == 1  # the same number of steps
        assert not set(per_rank[0]) & set(per_rank[1])  # disjoint
        np.testing.assert_array_equal(np.sort(np.concatenate(per_rank)), train)  # all, once
        orders.append(np.concatenate(per_rank))
    assert not np.array_equal(orders[0], orders[1])  # a new order each epoch
