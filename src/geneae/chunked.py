"""Training batches from data on disk: contiguous chunks of rows, shuffled in a buffer.

The scheme of scvi-tools' annbatch loader. The file's rows are cut into contiguous chunks
(:func:`chunk_bounds`), so every read is one contiguous range (for CSR: a slice of
``indptr``, then one read of ``indices`` and ``data``). Each epoch:

1. the chunks are put in a random order, a pure function of (seed, epoch) and the same in
   every process (validation: file order);
2. under data-parallel training they are dealt round-robin: process ``r`` of ``w`` takes
   chunks ``r, r + w, ...`` of that order and reads only those, so the processes' rows
   are disjoint and together every row of the subset (train or validation) once;
3. a process reads ``buffer_chunks`` of its chunks at a time, keeps the subset's rows,
   shuffles them within the buffer (seeded by seed, epoch, process and buffer) and cuts
   them into batches, each gathered by :meth:`geneae.batches.ExpressionTensors.batch`.

Every process runs the same number of steps per epoch (the gradient all-reduce of DDP
needs it) and no row is dropped or repeated: the number of steps is fixed once for all
epochs (:attr:`ChunkedBatches.steps`, an upper bound on what any process needs with
batches of at most ``batch_size`` rows), and a process with fewer rows cuts its buffers
into more, smaller batches (at least 2 rows each: batch norm cannot train on one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from geneae.batches import Batch, ExpressionTensors, to_device
from geneae.errors import ConfigError

__all__ = ["ChunkedBatches", "Loader", "chunk_bounds"]

# Reads the file rows ``rows`` (sorted), which lie in the contiguous ``ranges``, and
# returns them as tensors in that order.
Loader = Callable[[list[tuple[int, int]], np.ndarray], ExpressionTensors]


def chunk_bounds(n_rows: int, rows_per_chunk: int, world_size: int = 1) -> np.ndarray:
    """(chunks + 1,) row boundaries: chunks of ``rows_per_chunk`` rows, at least 2 per process.

    Smaller chunks when the data are small, so that every process has chunks to read.
    """
    want = max(1, min(n_rows, 2 * world_size))
    size = max(1, min(rows_per_chunk, math.ceil(n_rows / want)))
    return np.unique(np.r_[np.arange(0, n_rows, size), n_rows]).astype(np.int64)


class ChunkedBatches:
    """An iterable of batches over a subset of a file's rows, read a buffer at a time.

    Parameters
    ----------
    load
        Reads rows into tensors (see :data:`Loader`).
    bounds
        Chunk boundaries over the file's rows (:func:`chunk_bounds`).
    rows
        The sorted file rows of this subset (e.g. the training cells).
    batch_size
        Most rows per batch.
    device
        Where batches go.
    shuffle
        Random chunk order and rows shuffled in each buffer (training); else file order.
    seed
        Seeds every random order together with the epoch.
    rank, world_size
        This process and the number of processes of data-parallel training.
    buffer_chunks
        Chunks read and shuffled together.
    """

    def __init__(
        self,
        load: Loader,
        bounds: np.ndarray,
        rows: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        buffer_chunks: int = 8,
    ) -> None:
        self.load = load
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.buffer_chunks = buffer_chunks
        self.epoch = 0
        edges = np.searchsorted(self.rows, self.bounds)
        self.per_chunk = np.diff(edges)  # rows of the subset in each chunk
        self.steps = self._steps()

    @property
    def n_chunks(self) -> int:
        return len(self.bounds) - 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    @property
    def min_rows(self) -> int:
        """Fewest rows of a batch: 2 in training (batch norm cannot train on one row)."""
        return min(2, self.batch_size) if self.shuffle else 1

    def _steps(self) -> int:
        """Steps per epoch, the same in every epoch and process.

        Enough for the most rows any process can get with at most ``batch_size`` rows per
        batch and one partial batch per buffer, but no more than the fewest rows any
        process can get allow at ``min_rows`` rows per batch.
        """
        if len(self.rows) == 0:
            return 0
        per_process = math.ceil(self.n_chunks / self.world_size)
        ranked = np.sort(self.per_chunk)
        most = int(ranked[::-1][:per_process].sum())
        least = int(ranked[: self.n_chunks // self.world_size].sum())
        buffers = math.ceil(per_process / self.buffer_chunks)
        steps = min(math.ceil(most / self.batch_size) + buffers, least // self.min_rows)
        if steps < 1:
            raise ConfigError(
                f"{len(self.rows):,} cells over {self.world_size} processes leave one "
                f"process {least:,} cells, too few for a batch of {self.min_rows}; use fewer "
                "processes or a smaller train.chunk_rows, or train in memory."
            )
        return steps

    def chunk_order(self) -> np.ndarray:
        """The chunks this process reads this epoch, in reading order."""
        order = np.arange(self.n_chunks)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n_chunks)
        return order[self.rank :: self.world_size]

    def plan(self) -> list[tuple[np.ndarray, int]]:
        """The buffers of this epoch: (chunk indices, number of batches) each."""
        mine = self.chunk_order()
        step = self.buffer_chunks
        buffers = [mine[i : i + step] for i in range(0, len(mine), step)]
        buffers = _merge_small(buffers, self.per_chunk, self.min_rows)
        sizes = np.array([int(self.per_chunk[b].sum()) for b in buffers], dtype=np.int64)
        counts = _batch_counts(sizes, self.batch_size, self.steps, self.min_rows)
        if counts is None:
            raise ConfigError(
                f"process {self.rank} has {int(sizes.sum()):,} cells this epoch, too few for "
                f"{self.steps} steps of at least {self.min_rows} cells; use fewer processes "
                "or a smaller train.chunk_rows."
            )
        return list(zip(buffers, counts.tolist(), strict=True))

    def __iter__(self) -> Iterator[Batch]:
        for index, (chunks, n_batches) in enumerate(self.plan()):
            if n_batches == 0:
                continue
            chunks = np.sort(chunks)
            ranges = [(int(self.bounds[c]), int(self.bounds[c + 1])) for c in chunks]
            edges = np.searchsorted(self.rows, np.asarray(ranges).ravel()).reshape(-1, 2)
            rows = np.concatenate([self.rows[lo:hi] for lo, hi in edges])
            tensors = self.load(ranges, rows)
            order = torch.arange(len(rows))
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch, self.rank, index])
                order = torch.from_numpy(rng.permutation(len(rows)))
            cuts = np.linspace(0, len(rows), n_batches + 1).round().astype(np.int64)
            for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
                batch = tensors.batch(order[start:stop])
                yield {k: to_device(v, self.device) for k, v in batch.items()}


def _merge_small(
    buffers: list[np.ndarray], per_chunk: np.ndarray, min_rows: int
) -> list[np.ndarray]:
    """Buffers with fewer than ``min_rows`` rows (but some) joined to a neighbour."""
    out: list[np.ndarray] = []
    carry = np.zeros(0, dtype=np.int64)
    for chunks in buffers:
        chunks = np.concatenate([carry, chunks])
        carry = np.zeros(0, dtype=np.int64)
        if 0 < per_chunk[chunks].sum() < min_rows:
            carry = chunks
            continue
        out.append(chunks)
    if carry.size:
        if out:
            out[-1] = np.concatenate([out[-1], carry])
        else:
            out.append(carry)
    return out


def _batch_counts(
    sizes: np.ndarray, batch_size: int, steps: int, min_rows: int
) -> np.ndarray | None:
    """Batches per buffer adding up to ``steps``, as even in size as possible.

    At most ``batch_size`` rows per batch where ``steps`` allows it, at least
    ``min_rows``; None when the rows cannot make ``steps`` batches.
    """
    capacity = sizes // min_rows
    counts = np.minimum(-(-sizes // batch_size), capacity)
    if capacity.sum() < steps or np.count_nonzero(counts) > steps:
        return None
    while counts.sum() < steps:  # split where the batches are largest
        room = np.where(counts < capacity, sizes / np.maximum(counts, 1), -1.0)
        counts[int(np.argmax(room))] += 1
    while counts.sum() > steps:  # join where the batches are smallest
        room = np.where(counts > 1, sizes / np.maximum(counts, 1), np.inf)
        counts[int(np.argmin(room))] -= 1
    return counts
