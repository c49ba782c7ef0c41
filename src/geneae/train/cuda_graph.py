"""A training step's forward and backward captured once as a CUDA graph, then replayed.

On a GPU a step of geneae's small networks is bound by the host, not the GPU: at batch
1024 on an H200 a step took 10.8 ms, of which the GPU's 309 kernels ran for 1.3 ms
(BENCHMARKS.md, GPU). A CUDA graph records those kernels once and launches them together,
so that a step costs about the GPU's work plus what stays outside the graph: gathering the
batch, and the optimizer's update (eager, fused; it reads the gradients the graph writes,
so a change of learning rate needs no new capture).

What a graph asks of the step, and how it is met here:

- the same input memory at every replay: each batch of the captured shape is copied into
  the captured buffers; other shapes (an epoch's last, smaller batch) run eagerly;
- values that change from step to step are tensors the graph reads: the KL weight is a
  device scalar filled before each replay (the dynamic masking rate, a Python number
  inside the corruption, keeps those runs eager);
- the gradients stay the tensors the graph writes: once captured, eager steps zero them
  in place instead of dropping them (geneae.train.plan);
- nothing in the step may wait for the GPU: the likelihood evaluates densely (a batch's
  ``"target_nonzero"`` changes length from batch to batch, so the graph does not take it);
  a capture that fails all the same leaves the run eager and says why;
- dropout and sampling draw from the device's generator, which a replay advances as an
  eager step would (the draws differ from eager ones, as a GPU's differ from a CPU's).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor

Batch = dict[str, Tensor]
#: Forward and backward passes run on a side stream before a capture (PyTorch's advice:
#: libraries set up lazily on their first call, which must not happen inside a capture).
WARMUP_PASSES = 2


class Replayable(Protocol):
    def replay(self) -> None: ...


#: ``capture(body, module) -> (graph, outputs)``: runs ``body`` into a graph.
Capture = Callable[[Callable[[], Any], torch.nn.Module], tuple[Replayable, Any]]


def graph_inputs(batch: Batch) -> Batch:
    """What the graph reads of a batch: all but the stored entries' positions."""
    return {k: v for k, v in batch.items() if k != "target_nonzero"}


@contextlib.contextmanager
def _stream_mismatch_quiet() -> Iterator[None]:
    """Silence torch's warning about the gradient accumulators' stream.

    The accumulators were made on the default stream by the eager steps before, and torch
    warns once that the side stream's passes meet them there: the capture succeeds, and
    the graph replays on the default stream.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The AccumulateGrad node's stream")
        yield


def cuda_capture(body: Callable[[], Any], module: torch.nn.Module) -> tuple[Replayable, Any]:
    """Capture ``body`` (a forward and backward of ``module``) as a CUDA graph.

    The warm-up passes leave nothing behind: batch norm's running statistics, the device
    generator and the gradients are as they were before them.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    saved_buffers = [b.detach().clone() for b in module.buffers()]
    saved_rng = torch.cuda.get_rng_state()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), _stream_mismatch_quiet():
        for _ in range(WARMUP_PASSES):
            for p in params:
                p.grad = None
            body()
    torch.cuda.current_stream().wait_stream(side)
    with torch.no_grad():
        for buffer, saved in zip(module.buffers(), saved_buffers, strict=True):
            buffer.copy_(saved)
    torch.cuda.set_rng_state(saved_rng)
    for p in params:
        p.grad = None  # the capture allocates the gradients the graph will write
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), _stream_mismatch_quiet():
        outputs = body()
    return graph, outputs


class GraphedStep:
    """The forward and backward of a training step, captured once, replayed per batch.

    Parameters
    ----------
    module
        The geneae module being trained (on a CUDA device).
    gradient_clip
        ``train.gradient_clip``: the gradients' norm is clipped inside the graph.
    capture
        How ``body`` is captured; :func:`cuda_capture` unless a test gives another.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        gradient_clip: float | None = None,
        capture: Capture = cuda_capture,
    ) -> None:
        self.module = module
        self.gradient_clip = gradient_clip
        self._capture = capture
        self._graph: Replayable | None = None
        self._inputs: Batch = {}
        self._kl_weight: Tensor | None = None
        self._outputs: Any = None
        self.replays = 0
        self.failure: str | None = None

    @property
    def captured(self) -> bool:
        return self._graph is not None

    @property
    def usable(self) -> bool:
        """Whether steps may still replay (nothing failed to capture)."""
        return self.failure is None

    def matches(self, batch: Batch) -> bool:
        """Whether ``batch`` fits the captured buffers (same keys, shapes and dtypes)."""
        inputs = graph_inputs(batch)
        if inputs.keys() != self._inputs.keys():
            return False
        return all(
            v.shape == self._inputs[k].shape and v.dtype == self._inputs[k].dtype
            for k, v in inputs.items()
        )

    def capture(self, batch: Batch, kl_weight: float) -> bool:
        """Capture the step on ``batch``'s shape; False where it cannot be captured.

        Then :attr:`failure` says why, the gradients are dropped (the next eager step
        makes them again), and training goes on eagerly.
        """
        self._inputs = {k: v.clone() for k, v in graph_inputs(batch).items()}
        device = next(iter(self._inputs.values())).device
        self._kl_weight = torch.tensor(float(kl_weight), device=device)
        params = [p for p in self.module.parameters() if p.requires_grad]

        def body() -> Any:
            out = self.module.loss(self._inputs, kl_weight=self._kl_weight)
            out.loss.backward()
            if self.gradient_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, self.gradient_clip, foreach=True)
            return out

        try:
            self._graph, self._outputs = self._capture(body, self.module)
        except Exception as exc:  # e.g. an operation that waits for the GPU inside the step
            self.failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
            for p in self.module.parameters():
                p.grad = None
            return False
        return True

    def load(self, batch: Batch, kl_weight: float) -> Any:
        """Copy ``batch`` and ``kl_weight`` into the graph's inputs; returns its outputs.

        The outputs (a LossOutput) hold this batch's values once :meth:`replay` has run.
        """
        assert self._kl_weight is not None
        for key, value in graph_inputs(batch).items():
            self._inputs[key].copy_(value, non_blocking=True)
        self._kl_weight.fill_(float(kl_weight))
        return self._outputs

    def replay(self) -> None:
        """Run the captured forward and backward: the gradients now hold this batch's."""
        assert self._graph is not None
        self._graph.replay()
        self.replays += 1

    def summary(self) -> str:
        """One line for metrics.json's ``model.cuda_graph``."""
        if self.failure is not None:
            return f"off: the capture failed ({self.failure}); trained eagerly"
        if not self.captured:
            return "off: no batch of the training batch size reached it"
        return f"on: {self.replays} steps replayed"
