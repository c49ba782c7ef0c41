"""A CPU training step whose loss is compiled by ``torch.compile``, eager where it cannot be.

On a CPU a training step's element-wise work (the likelihoods, the activations, their
gradients) runs as dozens of separate passes over the (samples x genes) batch, each one
memory-bound. Inductor fuses them into a few C++ loops: the default member's step on 10x
PBMC ran 1.21x as fast (bf16-mixed, batch 256, 2 threads; ``python -m
benchmarks.compile_step``), after a compile of about 40 s on a machine's first run, 7-8 s
once inductor's on-disk cache holds it. That pays on long training only, so
``train.compile`` is on by default where a run's planned work repays it
(:func:`geneae.resolve.default_compile`).

The loss (forward, and through AOTAutograd its backward) is compiled once with dynamic
shapes: a batch's number of stored entries changes from batch to batch, the last batch of
an epoch is smaller. Training's steps and the clustering phase's run through it (the phase
adds its term to the compiled loss's output); the optimizer and validation stay eager.
Compiling needs a C++ compiler; without one, or when a compiled step fails (an operator
inductor cannot lower, headers missing), the step runs eagerly from then on and the run
says why in one warning and in metrics.json (``model.compile``). Compiled and eager
steps agree to rounding (tests/test_compiled_step.py); their random draws (dropout, the
reparameterisation) come from different streams, so a compiled run is reproducible with
itself, not bit-equal to an eager one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: Compilers inductor can build its CPU kernels with, tried in this order after ``$CXX``.
CXX_COMPILERS = ("g++", "c++", "clang++")


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use here (``$CXX`` first), or None where none is found."""
    for name in (os.environ.get("CXX", "").strip(), *CXX_COMPILERS):
        if name and shutil.which(name):
            return name
    return None


class CompiledLoss:
    """``module.loss`` compiled, with its backward, and the eager loss as the fallback.

    Parameters
    ----------
    module
        The geneae module whose ``loss(batch, **kwargs)`` the training step calls.
    enabled
        False: every step eager (``train.compile`` off), and no summary.
    off
        Why this run's steps are not compiled although asked (a GPU's CUDA graphs,
        data-parallel training): eager, and said in the summary.
    """

    def __init__(
        self, module: torch.nn.Module, enabled: bool = True, off: str | None = None
    ) -> None:
        self.module = module
        self.enabled = enabled
        self.note: str | None = None
        self._compiled: Callable[..., Any] | None = None
        if enabled and off is None and cxx_compiler() is None:
            off = "no C++ compiler (set CXX)"
        if enabled and off is not None:
            self.note = f"off: {off}"
        elif enabled:
            self._compiled = torch.compile(module.loss, dynamic=True)
        self.first_step_s: float | None = None
        self.steps = 0

    def step(
        self,
        batch: dict[str, torch.Tensor],
        backward: Callable[[Any], None],
        *,
        around: contextlib.AbstractContextManager[Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """The loss of ``batch`` (``module.loss(batch, **kwargs)``) with ``backward`` run on it.

        ``backward(out)`` takes the loss's output, adds what the caller adds to it (the
        clustering phase's term), zeroes the gradients and runs the backward pass; ``around``
        (mixed precision's autocast, where the caller has not entered it) encloses the loss
        alone. A compiled step that fails anywhere (compiling, the forward, the backward) is
        run again eagerly, and every later step with it; an error of the data or the model
        itself then raises from the eager step as it would have without compiling.
        """
        compiled = self._compiled
        if compiled is not None:
            start = time.perf_counter()
            try:
                with around or contextlib.nullcontext():
                    out = compiled(batch, **kwargs)
                backward(out)
            except Exception as exc:  # broad on purpose: whatever fails, eager decides
                self._give_up(exc)
            else:
                if self.first_step_s is None:  # the first step compiles
                    self.first_step_s = time.perf_counter() - start
                self.steps += 1
                return out
        with around or contextlib.nullcontext():
            out = self.module.loss(batch, **kwargs)
        backward(out)
        return out

    def _give_up(self, exc: Exception) -> None:
        why = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        logger.warning("train.compile: a compiled step failed (%s); training goes on eagerly", why)
        self._compiled = None
        self.note = f"off after {self.steps} compiled steps: {why}"

    def summary(self) -> dict[str, Any] | None:
        """What metrics.json records (``model.compile``); None where compiling was not asked."""
        if not self.enabled:
            return None
        out: dict[str, Any] = {"compiled_steps": self.steps}
        if self.first_step_s is not None:
            out["first_step_s"] = round(self.first_step_s, 3)
        if self.note is not None:
            out["note"] = self.note
        return out
