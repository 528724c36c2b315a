"""What a trial needs from its GPU beyond precision: reproducible kernels, fast host→device copies,
``torch.compile``, and surviving an out-of-memory error.

- Determinism (``train.deterministic``, default true): cuDNN picks deterministic algorithms and no
  autotuning, torch uses deterministic implementations where it has them (warning, not failing,
  where it has none, e.g. some attention backward kernels), and cuBLAS gets a fixed workspace
  (``CUBLAS_WORKSPACE_CONFIG=:4096:8``, NVIDIA's documented requirement for reproducible GEMMs).
  With the same seed on the same GPU type and software, ``sweeps train --config`` then repeats a
  trial's numbers; see README, "GPU workers", for the tolerance.
- Copies: tensors are pinned and copied with ``non_blocking=True`` (an asynchronous DMA instead of a
  staged, synchronous one); the built-in objectives copy their whole data once per trial.
- ``train.compile``: ``torch.compile`` on the model; its one-off compilation happens inside the
  first forward pass of the trial, so it is part of that trial's time.
- Out of memory: ``guard_out_of_memory`` turns ``torch.OutOfMemoryError`` into ``GpuOutOfMemory``
  after dropping the failed trial's tensors and emptying the CUDA cache, so the trial FAILs with
  a one-line reason and the worker's next trial (and its GPU neighbours) get the memory back.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

CUBLAS_WORKSPACE = ":4096:8"


def prepare_device(device: Any, deterministic: bool) -> None:
    """Process-wide CUDA settings, set each trial to what its config says; nothing on the CPU
    (already deterministic). ``CUBLAS_WORKSPACE_CONFIG`` is read once, when cuBLAS creates its handle:
    a process that ran a non-deterministic trial first keeps the default workspace."""
    if getattr(device, "type", str(device)) != "cuda":
        return
    import torch

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # before the trial's first matrix product
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: the choice may differ run to run
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def to_device(tensor: Any, device: Any) -> Any:
    """Copy to ``device``: pinned and asynchronous for CUDA, as is otherwise."""
    if getattr(device, "type", str(device)) == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def compile_model(model: Any, enabled: bool) -> Any:
    """``torch.compile(model)`` when enabled, else the model; the compiled module shares the parameters."""
    if not enabled:
        return model
    import torch

    return torch.compile(model)


class GpuOutOfMemory(RuntimeError):
    """A trial ran out of GPU memory; its tensors are freed and the CUDA cache emptied."""


def guard_out_of_memory(objective: Callable[..., float]) -> Callable[..., float]:
    """Wrap an objective so that running out of GPU memory fails only its trial, never the worker.

    The original exception is dropped (with its traceback, which holds the trial's frames and so its
    tensors) before the cache is emptied; the raised ``GpuOutOfMemory`` carries its text and traceback.
    """

    @functools.wraps(objective)
    def guarded(*args: Any, **kwargs: Any) -> float:
        details = None
        try:
            return objective(*args, **kwargs)
        except Exception as err:
            if not _is_out_of_memory(err):
                raise
            details = "".join(traceback.format_exception(err))
            summary = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        # Out of the except block: the exception and the trial's frames are gone; free what they held.
        release_gpu_memory()
        raise GpuOutOfMemory(f"out of GPU memory{_sharing()}: {summary}; lower train.batch_size or sweep.trials_per_gpu\n{details}")

    return guarded


def release_gpu_memory() -> None:
    """Collect garbage and return the CUDA caching allocator's free blocks to the driver."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _is_out_of_memory(err: BaseException) -> bool:
    torch = sys.modules.get("torch")  # an objective that never imported torch cannot raise its error
    return torch is not None and isinstance(err, torch.OutOfMemoryError)


def _sharing() -> str:
    """`` (GPU 0, shared by 4 workers)`` from the launcher's environment, when it pinned this worker."""
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    sharing = os.environ.get("SWEEPS_WORKERS_PER_GPU")
    if not gpu:
        return ""
    return f" (GPU {gpu}, shared by {sharing} workers)" if sharing and sharing != "1" else f" (GPU {gpu})"
