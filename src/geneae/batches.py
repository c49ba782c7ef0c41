"""From matrices to training batches, with no per-sample Python work.

The matrix is held as one tensor — dense, or CSR as three flat tensors — either on the
training device (when it fits ``memory_budget_gb``) or in pinned host memory. Each epoch
draws one seeded permutation; a batch is a gather of a slice of it (sparse rows are
densified with one scatter). Device-resident and streaming batches are identical for the
same seed: they run the same gather, only on different devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from geneae.matrix_values import csr_if_mostly_zero

Batch = dict[str, torch.Tensor]


# Rows per block in RowMatrix.row_sums (bounds its int64 row-of-entry temporary).
ROW_SUM_BLOCK = 1 << 14


@dataclass
class RowMatrix:
    """A (n, g) float32 matrix whose rows can be gathered on any device.

    Dense matrices keep ``dense``; sparse ones keep CSR ``indptr`` / ``indices`` / ``data``.
    """

    shape: tuple[int, int]
    dense: torch.Tensor | None = None
    indptr: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    data: torch.Tensor | None = None

    @classmethod
    def from_array(
        cls, x: np.ndarray | sp.spmatrix | sp.sparray, *, like: RowMatrix | None = None
    ) -> RowMatrix:
        """Wrap ``x``; a sparse ``x`` with the same pattern as ``like`` shares its index arrays.

        Log-normalisation keeps every zero a zero, so the count target and the model input
        have one sparsity pattern: storing it once saves a third of the memory. A dense ``x``
        that is mostly zeros is stored as CSR (:func:`geneae.matrix_values.csr_if_mostly_zero`).
        """
        x = csr_if_mostly_zero(x)
        if not sp.issparse(x):
            return cls(shape=x.shape, dense=torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        csr = sp.csr_matrix(x)
        csr.sum_duplicates()
        if like is not None and like.shares_pattern(csr):
            assert like.indptr is not None and like.indices is not None
            return cls(csr.shape, None, like.indptr, like.indices, _wrap(csr.data, np.float32))
        # int32 column indices halve the index memory; genes never number 2**31.
        return cls(
            shape=csr.shape,
            indptr=_wrap(csr.indptr, np.int64),
            indices=_wrap(csr.indices, np.int32),
            data=_wrap(csr.data, np.float32),
        )

    def shares_pattern(self, csr: sp.csr_matrix) -> bool:
        if self.indptr is None or self.indices is None or csr.shape != self.shape:
            return False
        return _same_values(self.indptr.numpy(), csr.indptr) and _same_values(
            self.indices.numpy(), csr.indices
        )

    @property
    def is_sparse(self) -> bool:
        return self.dense is None

    @property
    def device(self) -> torch.device:
        stored = self.dense if self.dense is not None else self.data
        assert stored is not None
        return stored.device

    def stored_per_row(self) -> np.ndarray | None:
        """Each row's number of stored entries, on the host (None for a dense matrix).

        With it a batch's count is known before the batch is gathered, so that gathering on
        a GPU never waits for the GPU (:meth:`positions`).
        """
        return None if self.indptr is None else torch.diff(self.indptr.cpu()).numpy()

    @property
    def nbytes(self) -> int:
        parts = (self.dense, self.indptr, self.indices, self.data)
        return sum(t.numel() * t.element_size() for t in parts if t is not None)

    def to(self, device: torch.device, *, pin: bool = False) -> RowMatrix:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.pin_memory() if pin else t.to(device)

        return RowMatrix(
            self.shape, move(self.dense), move(self.indptr), move(self.indices), move(self.data)
        )

    def positions(
        self, idx: torch.Tensor, n_stored: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For sparse rows ``idx``: (batch row, storage position) of every stored entry.

        ``n_stored``, the rows' number of stored entries when the caller knows it, spares
        a GPU the wait for the previous step to finish before the output size is known
        (:class:`Batches` counts it on the host).
        """
        assert self.indptr is not None
        starts = self.indptr.index_select(0, idx)
        lengths = self.indptr.index_select(0, idx + 1) - starts
        total = int(lengths.sum()) if n_stored is None else n_stored
        # The row's start plus the entry's offset within the row, built without a Python
        # loop over rows.
        row_of_entry = torch.repeat_interleave(
            torch.arange(idx.numel(), device=idx.device), lengths, output_size=total
        )
        # Entry k of the batch lies at its row's start + (k - the row's first k): one
        # per-row shift, gathered once per entry.
        shift = starts - (torch.cumsum(lengths, 0) - lengths)
        entry = torch.arange(total, device=idx.device)
        return row_of_entry, entry + shift.index_select(0, row_of_entry)

    def rows_and_stored(
        self, idx: torch.Tensor, positions: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Dense rows ``idx`` (on this matrix's device) and their stored entries' positions.

        Positions are int64 flat indices into the (len(idx), g) result viewed as a vector
        (``None`` for a dense matrix). They cover every entry that can be non-zero; the
        likelihoods use them to skip the zeros without a data-dependent ``nonzero()`` over
        the dense batch. Sparse rows reuse ``positions`` (from :meth:`positions`) if given.
        """
        if self.dense is not None:
            return self.dense.index_select(0, idx), None
        assert self.indices is not None
        row_of_entry, pos = positions if positions is not None else self.positions(idx)
        flat = row_of_entry * self.shape[1] + self.indices.index_select(0, pos).to(torch.int64)
        return self.scatter_rows(idx.numel(), pos, flat), flat

    def scatter_rows(self, n_rows: int, pos: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        """The (n_rows, g) dense rows holding the stored entries ``pos`` at ``flat``.

        ``pos`` and ``flat`` as :meth:`rows_and_stored` builds them; a matrix of the same
        pattern reuses them as they are.
        """
        assert self.data is not None
        n_genes = self.shape[1]
        out = torch.zeros(n_rows * n_genes, dtype=torch.float32, device=self.data.device)
        out.index_copy_(0, flat, self.data.index_select(0, pos))
        return out.view(n_rows, n_genes)

    def row_sums(self, columns: int | None = None) -> torch.Tensor:
        """(n,) float32 sums of each row over its first ``columns`` columns (None: all)."""
        if self.dense is not None:
            return self.dense[:, :columns].sum(1)
        assert self.indptr is not None and self.indices is not None and self.data is not None
        some = columns is not None and columns < self.shape[1]
        sums = torch.zeros(self.shape[0], dtype=torch.float32)
        # In blocks of rows: the row of every stored entry is int64, twice the data's size.
        for start in range(0, self.shape[0], ROW_SUM_BLOCK):
            stop = min(start + ROW_SUM_BLOCK, self.shape[0])
            first, last = int(self.indptr[start]), int(self.indptr[stop])
            counts = self.indptr[start + 1 : stop + 1] - self.indptr[start:stop]
            rows = torch.repeat_interleave(torch.arange(stop - start), counts)
            values = self.data[first:last]
            if some:
                values = values * (self.indices[first:last] < columns)
            sums[start:stop].index_add_(0, rows, values)
        return sums


def _wrap(a: np.ndarray, dtype: type) -> torch.Tensor:
    """``a`` as a tensor of ``dtype``, sharing its memory where it already has that dtype."""
    a = a.astype(dtype, copy=False)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal arrays; the same memory seen twice is equal without reading it."""
    same = (a.shape, a.dtype, a.strides) == (b.shape, b.dtype, b.strides)
    if same and a.ctypes.data == b.ctypes.data:
        return True
    return bool(np.array_equal(a, b))


@dataclass
class ExpressionTensors:
    """Everything a batch is gathered from: input, optional target, library, covariate."""

    x: RowMatrix
    target: RowMatrix | None = None
    library: torch.Tensor | None = None
    covariate: torch.Tensor | None = None

    @property
    def n_obs(self) -> int:
        return self.x.shape[0]

    @property
    def nbytes(self) -> int:
        extra = sum(
            t.numel() * t.element_size() for t in (self.library, self.covariate) if t is not None
        )
        target = 0
        if self.target is not None:
            target = self.target.nbytes
            if self.shared_pattern:
                assert self.target.indptr is not None and self.target.indices is not None
                shared = (self.target.indptr, self.target.indices)
                target -= sum(t.numel() * t.element_size() for t in shared)
        return self.x.nbytes + target + extra

    def to(self, device: torch.device, *, pin: bool = False) -> ExpressionTensors:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.pin_memory() if pin else t.to(device)

        x = self.x.to(device, pin=pin)
        target = None
        if self.target is not None and self.shared_pattern:
            # The index arrays are moved once and stay shared.
            target = RowMatrix(self.target.shape, None, x.indptr, x.indices, move(self.target.data))
        elif self.target is not None:
            target = self.target.to(device, pin=pin)
        return ExpressionTensors(x, target, move(self.library), move(self.covariate))

    @property
    def shared_pattern(self) -> bool:
        """Whether input and target are sparse with one (shared) pattern."""
        t = self.target
        return t is not None and t.indptr is not None and t.indptr is self.x.indptr

    def batch(self, idx: torch.Tensor, n_stored: int | None = None) -> Batch:
        """Gather rows ``idx`` into a batch dict (see docs/architecture.md).

        ``n_stored``: the rows' number of stored entries in a sparse ``x``, if known
        (see :meth:`RowMatrix.positions`).
        """
        positions = self.x.positions(idx, n_stored) if self.x.is_sparse else None
        x, stored = self.x.rows_and_stored(idx, positions)
        out: Batch = {"x": x}
        out.update(self._per_row(idx))
        if self.target is not None and self.shared_pattern:
            assert positions is not None and stored is not None
            out["target"] = self.target.scatter_rows(idx.numel(), positions[1], stored)
        elif self.target is not None:  # the positions must describe the target, not x
            out["target"], stored = self.target.rows_and_stored(idx)
        if stored is not None:
            out["target_nonzero"] = stored
        return out

    def inputs(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` without the target: what encoding and prediction read.

        A full-data pass (the clustering phase's targets every epoch, the outputs after
        training) needs no count target, and a dense input's block of rows is a view, not
        a copy: one full-data encoding of 10x PBMC took 33 ms against 182 ms when gathered
        as a training batch (mouse bladder: 28 against 56 ms; one thread, beside another
        job; the same encodings).
        """
        idx = torch.arange(start, stop, device=self.x.device)  # where the data are
        x = self.x.dense[start:stop] if self.x.dense is not None else self.x.rows_and_stored(idx)[0]
        return {"x": x, **self._per_row(idx)}

    def dense_inputs(self, max_rows: int, seed: int) -> torch.Tensor:
        """The dense inputs of every row, or of a seeded draw of ``max_rows`` (row order)."""
        if self.n_obs <= max_rows:
            return self.inputs(0, self.n_obs)["x"]
        gen = torch.Generator().manual_seed(seed)
        rows = torch.randperm(self.n_obs, generator=gen)[:max_rows].sort().values
        return self.x.rows_and_stored(rows.to(self.x.device))[0]

    def _per_row(self, idx: torch.Tensor) -> Batch:
        """The library and the covariate of rows ``idx``, where the data have them."""
        out: Batch = {}
        if self.library is not None:
            out["library"] = self.library.index_select(0, idx)
        if self.covariate is not None:
            out["covariate"] = self.covariate.index_select(0, idx)
        return out


def n_validation(n_obs: int, validation: float) -> int:
    """Rows :func:`split_indices` holds out: at least one when validation > 0, none of one row."""
    n_val = 0 if validation <= 0 else max(1, int(round(validation * n_obs)))
    return 0 if n_val >= n_obs else n_val


def split_indices(n_obs: int, validation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / validation split; at least one validation row when validation > 0."""
    perm = np.random.default_rng(seed).permutation(n_obs)
    n_val = n_validation(n_obs, validation)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of rows in ``epoch``: a pure function of (seed, epoch), so resume replays it."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


class Batches:
    """An iterable of batches over a subset of rows, device-resident or streamed.

    Parameters
    ----------
    tensors
        The full data. Device-resident: already on ``device``. Streaming: on the host
        (pinned when ``device`` is a GPU); each batch is gathered there and copied over.
    rows
        The row indices of this subset (e.g. the training rows).
    batch_size, shuffle, seed
        Shuffled subsets draw a new permutation each epoch from (seed, epoch).
    rank, world_size
        Under data-parallel training each process takes its own equal share of the same
        permutation, so the processes see disjoint rows.
    drop_last
        Drop a trailing batch smaller than 2 rows (batch norm cannot train on one row).
    """

    def __init__(
        self,
        tensors: ExpressionTensors,
        rows: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.tensors = tensors
        self.rows = torch.as_tensor(rows, dtype=torch.int64)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._streaming = tensors.x.dense is not None and tensors.x.dense.device != device
        self._streaming |= tensors.x.indptr is not None and tensors.x.indptr.device != device
        self._rows_on_source = self.rows.to(self._source_device())
        self._row_nnz = tensors.x.stored_per_row()

    def _source_device(self) -> torch.device:
        ref = self.tensors.x.dense if self.tensors.x.dense is not None else self.tensors.x.indptr
        assert ref is not None
        return ref.device

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _local_size(self) -> int:
        """Rows this process sees per epoch.

        An equal share for every process, so all run the same number of steps (the
        gradient all-reduce would hang otherwise).
        """
        n = len(self.rows)
        return n if self.world_size == 1 else max(1, n // self.world_size)

    def _bounds(self) -> list[tuple[int, int]]:
        n = self._local_size()
        bounds = [(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]
        # A last training batch of one row breaks batch norm: fold it into the previous one.
        if self.shuffle and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < 2:
            bounds[-2:] = [(bounds[-2][0], n)]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def __iter__(self) -> Iterator[Batch]:
        order, host_order = self._rows_on_source, self.rows
        if self.shuffle:
            perm = epoch_permutation(len(self.rows), self.seed, self.epoch)
            order = order.index_select(0, perm.to(order.device))
            host_order = host_order.index_select(0, perm)
        if self.world_size > 1:
            size = self._local_size()
            start = (self.rank * size) % max(1, len(order))
            order = order[start : start + size]
            host_order = host_order[start : start + size]
        bounds = self._bounds()
        stored: list[int | None] = [None] * len(bounds)
        if self._row_nnz is not None and bounds:
            per_row = self._row_nnz[host_order.numpy()]
            stored = np.add.reduceat(per_row, [b[0] for b in bounds]).tolist()
        for (start, stop), n_stored in zip(bounds, stored, strict=True):
            batch = self.tensors.batch(order[start:stop], n_stored)
            if self._streaming:
                batch = {k: to_device(v, self.device) for k, v in batch.items()}
            yield batch


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device``; host-to-GPU copies through pinned pages."""
    # Pinned pages let the copy overlap with the GPU's work on the previous batch.
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
