import numpy as np
import pytest
import scipy.sparse as sp
import torch

import geneae.batches
from geneae.batches import Batches, ExpressionTensors, RowMatrix, epoch_permutation, split_indices


def _matrix(seed=0, n=53, g=17, density=0.3):
    rng = np.random.default_rng(seed)
    x = sp.random(n, g, density=density, random_state=rng, format="csr", dtype=np.float32)
    x.data = np.round(x.data * 10) + 1
    return x


def test_sparse_row_gather_equals_dense_rows():
    x = _matrix()
    sparse, dense = RowMatrix.from_array(x), RowMatrix.from_array(x.toarray())
    idx = torch.tensor([5, 0, 52, 5, 17, 3])
    np.testing.assert_array_equal(sparse.rows_and_stored(idx)[0].numpy(), x.toarray()[idx.numpy()])
    np.testing.assert_array_equal(dense.rows_and_stored(idx)[0].numpy(), x.toarray()[idx.numpy()])


def test_sparse_gather_of_empty_rows():
    x = sp.csr_matrix((4, 6), dtype=np.float32)
    assert RowMatrix.from_array(x).rows_and_stored(torch.tensor([1, 2]))[0].abs().sum() == 0


def test_row_sums_match_scipy():
    x = _matrix(1)
    np.testing.assert_allclose(
        RowMatrix.from_array(x).row_sums().numpy(), np.asarray(x.sum(1)).ravel(), rtol=1e-6
    )


@pytest.mark.parametrize("columns", [0, 1, 7, 100])
def test_row_sums_over_leading_columns_match_scipy(columns, monkeypatch):
    monkeypatch.setattr(geneae.batches, "ROW_SUM_BLOCK", 7)
    for density in (0.3, 0.9):  # stored sparse, and dense
        x = _matrix(4, n=30, density=density)
        matrix = RowMatrix.from_array(x.toarray())
        assert matrix.is_sparse == (density < 0.5)
        expected = np.asarray(x[:, :columns].sum(1)).ravel()
        np.testing.assert_allclose(matrix.row_sums(columns).numpy(), expected, rtol=1e-6)


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_indices(100, 0.1, seed=3)
    assert len(val) == 10 and len(train) == 90
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))
    again = split_indices(100, 0.1, seed=3)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(val, split_indices(100, 0.1, seed=4)[1])
    assert len(split_indices(10, 0.0, seed=0)[1]) == 0


def test_epoch_permutation_is_a_pure_function():
    a, b = epoch_permutation(50, 1, 2), epoch_permutation(50, 1, 2)
    assert torch.equal(a, b) and not torch.equal(a, epoch_permutation(50, 1, 3))
    assert sorted(a.tolist()) == list(range(50))


def _tensors(x):
    target = RowMatrix.from_array(x)
    return ExpressionTensors(
        x=RowMatrix.from_array(np.log1p(x.toarray())),
        target=target,
        library=target.row_sums(),
        covariate=torch.arange(x.shape[0]) % 3,
    )


def test_each_epoch_visits_every_training_row_once():
    x = _matrix()
    t = _tensors(x)
    rows = np.arange(0, 53, 1)
    batches = Batches(t, rows, batch_size=8, device=torch.device("cpu"), shuffle=True, seed=0)
    seen = torch.cat([b["covariate"] for b in batches])
    assert len(seen) == 53
    libs = torch.cat([b["library"] for b in batches])
    np.testing.assert_allclose(
        sorted(libs.numpy()), sorted(np.asarray(x.sum(1)).ravel()), rtol=1e-6
    )
    # no batch of a single row (batch norm cannot train on it)
    assert min(b["x"].shape[0] for b in batches) >= 2


def test_streaming_and_resident_batches_are_identical():
    x = _matrix(2)
    t = _tensors(x)
    rows = np.arange(3, 50)
    cpu = torch.device("cpu")
    resident = Batches(t, rows, batch_size=7, device=cpu, shuffle=True, seed=5)
    # Streaming gathers on the (pinned) host copy and moves each batch; on a CPU-only
    # machine we emulate it with a "meta"-free copy held on the host.
    streaming = Batches(t.to(cpu), rows, batch_size=7, device=cpu, shuffle=True, seed=5)
    streaming._streaming = True
    for epoch in (0, 1):
        resident.set_epoch(epoch)
        streaming.set_epoch(epoch)
        for a, b in zip(resident, streaming, strict=True):
            assert a.keys() == b.keys()
            for k in a:
                assert torch.equal(a[k], b[k])


def test_batches_split_across_processes_are_disjoint():
    x = _matrix(3, n=64)
    t = _tensors(x)
    rows = np.arange(64)
    parts = [
        Batches(
            t,
            rows,
            batch_size=8,
            device=torch.device("cpu"),
            shuffle=True,
            seed=1,
            rank=r,
            world_size=2,
        )
        for r in range(2)
    ]
    assert len(parts[0]) == len(parts[1]) == 4  # 32 rows each, batches of 8
    libs = [torch.cat([b["library"] for b in p]) for p in parts]
    assert len(libs[0]) + len(libs[1]) == 64


def test_batches_counted_on_the_host_equal_gathers_counted_on_the_data(monkeypatch):
    # Batches tells each gather its number of stored entries (so a GPU need not wait);
    # the batches must be those the gather makes when it counts them itself, including a
    # folded last batch (53 = 6 x 8 + 5 rows; 50 = 7 x 7 + 1 folds) and a share per process.
    x = _matrix(5)
    t = _tensors(x)
    counted: list[int | None] = []
    positions = RowMatrix.positions

    def spy(self, idx, n_stored=None):
        if self is t.x:  # (this target has a pattern of its own, gathered apart)
            counted.append(n_stored)
        return positions(self, idx, n_stored)

    monkeypatch.setattr(RowMatrix, "positions", spy)
    cases = [(np.arange(53), 8, 1, 0), (np.arange(50), 7, 1, 0), (np.arange(53), 6, 2, 1)]
    for rows, size, world, rank in cases:
        b = Batches(
            t,
            rows,
            batch_size=size,
            device=torch.device("cpu"),
            shuffle=True,
            seed=3,
            rank=rank,
            world_size=world,
        )
        counted.clear()
        b.set_epoch(1)
        got, told = list(b), list(counted)
        assert len(told) == len(got) and all(n is not None for n in told)
        order = torch.as_tensor(rows).index_select(0, epoch_permutation(len(rows), 3, 1))
        if world > 1:
            size_each = len(rows) // world
            order = order[rank * size_each : (rank + 1) * size_each]
        for (start, stop), batch, n in zip(b._bounds(), got, told, strict=True):
            idx = order[start:stop]
            expected = ExpressionTensors.batch(t, idx)  # counts its entries itself
            assert n == int(np.diff(x.indptr)[idx.numpy()].sum())
            assert batch.keys() == expected.keys()
            for key in batch:
                assert torch.equal(batch[key], expected[key])


def test_validation_batches_keep_order():
    x = _matrix(4)
    t = _tensors(x)
    rows = np.array([1, 4, 9, 16, 25])
    batches = Batches(t, rows, batch_size=2, device=torch.device("cpu"), shuffle=False)
    cov = torch.cat([b["covariate"] for b in batches]).numpy()
    np.testing.assert_array_equal(cov, rows % 3)


def test_target_with_the_same_pattern_shares_index_arrays():
    counts = _matrix(5)
    lognorm = counts.copy()
    lognorm.data = np.log1p(lognorm.data)
    x = RowMatrix.from_array(lognorm)
    target = RowMatrix.from_array(counts, like=x)
    assert target.indptr is x.indptr and target.indices is x.indices
    t = ExpressionTensors(x=x, target=target, library=target.row_sums())
    assert t.shared_pattern
    assert t.nbytes < x.nbytes + target.nbytes
    idx = torch.tensor([3, 1, 40])
    batch = t.batch(idx)
    np.testing.assert_array_equal(batch["target"].numpy(), counts.toarray()[[3, 1, 40]])
    np.testing.assert_allclose(batch["x"].numpy(), lognorm.toarray()[[3, 1, 40]], rtol=1e-6)
    moved = t.to(torch.device("cpu"))
    assert moved.shared_pattern
    other = _matrix(6)
    assert RowMatrix.from_array(other, like=x).indptr is not x.indptr


def test_sparse_batches_carry_the_flat_positions_of_their_stored_entries():
    counts = _matrix(7)
    x = RowMatrix.from_array(counts)
    t = ExpressionTensors(x=x, target=RowMatrix.from_array(counts, like=x))
    idx = torch.tensor([8, 0, 30, 8])
    batch = t.batch(idx)
    dense = counts.toarray()[idx.numpy()]
    expected = np.flatnonzero(dense)  # the data has no stored zeros
    np.testing.assert_array_equal(np.sort(batch["target_nonzero"].numpy()), expected)
    # Without a target, the input's positions describe the target (it defaults to x).
    assert torch.equal(ExpressionTensors(x=x).batch(idx)["target_nonzero"], batch["target_nonzero"])
    # A dense input beside a sparse target: the target's own positions.
    t = ExpressionTensors(x=RowMatrix(counts.shape, dense=torch.ones(counts.shape)), target=x)
    assert torch.equal(t.batch(idx)["target_nonzero"], batch["target_nonzero"])
    # A sparse input of another pattern: the target's positions and values, not the input's.
    other = _matrix(9)
    t = ExpressionTensors(x=RowMatrix.from_array(other), target=x)
    assert not t.shared_pattern
    batch = t.batch(idx)
    np.testing.assert_array_equal(batch["target"].numpy(), dense)
    np.testing.assert_array_equal(batch["x"].numpy(), other.toarray()[idx.numpy()])
    np.testing.assert_array_equal(np.sort(batch["target_nonzero"].numpy()), expected)


def test_dense_batches_carry_no_positions():
    dense = RowMatrix.from_array(np.ones((6, 4), np.float32))
    assert not dense.is_sparse
    assert "target_nonzero" not in ExpressionTensors(x=dense).batch(torch.tensor([0, 2]))


def test_mostly_zero_dense_arrays_are_stored_sparse():
    counts = _matrix(8, density=0.1).toarray()
    stored = RowMatrix.from_array(counts)
    assert stored.is_sparse and stored.nbytes < counts.nbytes
    np.testing.assert_array_equal(
        stored.rows_and_stored(torch.arange(counts.shape[0]))[0].numpy(), counts
    )
    assert not RowMatrix.from_array(_matrix(8, density=0.9).toarray()).is_sparse


def test_row_sums_in_many_blocks_match_scipy(monkeypatch):
    monkeypatch.setattr(geneae.batches, "ROW_SUM_BLOCK", 7)
    dense = _matrix(2, n=60).toarray()
    dense[5] = 0  # an empty row; the last block is shorter
    x = sp.csr_matrix(dense)
    np.testing.assert_array_equal(
        RowMatrix.from_array(x).row_sums().numpy(), np.asarray(x.sum(1)).ravel()
    )


def test_float32_csr_is_wrapped_without_copies():
    x = _matrix(3)
    x.indices = x.indices.astype(np.int32)
    counts = sp.csr_matrix((x.data * 2, x.indices, x.indptr), shape=x.shape)  # same pattern
    m = RowMatrix.from_array(x)
    assert np.shares_memory(m.data.numpy(), x.data)
    assert np.shares_memory(m.indices.numpy(), x.indices)
    target = RowMatrix.from_array(counts, like=m)
    assert target.indices is m.indices and target.indptr is m.indptr
    assert np.shares_memory(target.data.numpy(), counts.data)
    # A pattern that only looks the same (equal values, other memory) is still shared.
    copied = sp.csr_matrix((x.data, x.indices.copy(), x.indptr.copy()), shape=x.shape)
    assert RowMatrix.from_array(copied, like=m).indices is m.indices


def test_inputs_are_the_batch_without_its_target():
    # A dense input (z-scored: no zeros) and a sparse one (log values of the counts).
    x = _matrix()
    dense = _tensors(x)
    dense.x = RowMatrix.from_array(np.log1p(x.toarray()) - 0.5)
    for tensors in (dense, _tensors(x)):
        assert tensors.x.is_sparse == (tensors is not dense)
        for start, stop in ((0, 53), (10, 31), (52, 53)):
            expected = tensors.batch(torch.arange(start, stop))
            got = tensors.inputs(start, stop)
            assert set(got) == {"x", "library", "covariate"}
            for key, value in got.items():
                torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_dense_inputs_are_every_row_or_a_seeded_draw_in_row_order():
    rng = np.random.default_rng(8)
    x = sp.random(50, 7, density=0.3, random_state=rng, format="csr", dtype=np.float32)
    for stored in (x, x.toarray()):
        tensors = ExpressionTensors(RowMatrix.from_array(stored))
        np.testing.assert_array_equal(tensors.dense_inputs(50, seed=0).numpy(), x.toarray())
        drawn = tensors.dense_inputs(20, seed=3).numpy()
        rows = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:20].sort().values
        np.testing.assert_array_equal(drawn, x.toarray()[rows.numpy()])
        np.testing.assert_array_equal(drawn, tensors.dense_inputs(20, seed=3).numpy())
