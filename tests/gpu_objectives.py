"""Objectives for the GPU-worker tests: an out-of-memory trial, and one that records its worker's environment."""

from __future__ import annotations

import json
import os
import time
import weakref
from pathlib import Path

import torch
from omegaconf import DictConfig

from sweeps.train.reporter import Reporter

# The first trial's tensor, watched after its out-of-memory error: the next trial must find it freed.
held: list[weakref.ref] = []


def out_of_memory_first(cfg: DictConfig, reporter: Reporter) -> float:
    """The first trial in this process allocates a tensor and runs out of memory; later ones record
    whether that tensor was freed (``val_acc`` 1.0 if so, 0.0 if it is still alive)."""
    if not held:
        activations = torch.ones(256, 1024)
        held.append(weakref.ref(activations))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (test)")
    freed = held[0]() is None
    for epoch in range(1, cfg.train.epochs + 1):
        reporter.report(epoch, val_acc=1.0 if freed else 0.0)
    return 1.0 if freed else 0.0


def record_environment(cfg: DictConfig, reporter: Reporter) -> float:
    """Writes this worker's GPU environment to ``$SWEEPS_TEST_ENV_DIR/<pid>.json``, then waits (at most
    60 s) until ``$SWEEPS_TEST_WORKERS`` workers have written theirs, so that every worker takes a trial."""
    keys = ("CUDA_VISIBLE_DEVICES", "SWEEPS_WORKER_INDEX", "SWEEPS_WORKERS_PER_GPU")
    folder = Path(os.environ["SWEEPS_TEST_ENV_DIR"])
    (folder / f"{os.getpid()}.json").write_text(json.dumps({k: os.environ.get(k) for k in keys}))
    deadline = time.monotonic() + 60
    while len(list(folder.glob("*.json"))) < int(os.environ["SWEEPS_TEST_WORKERS"]) and time.monotonic() < deadline:
        time.sleep(0.1)  # a barrier between processes: no clock to inject
    reporter.report(1, val_acc=0.5)
    return 0.5


# The CUDA memory a real out-of-memory trial held, and what was allocated before it.
cuda_marks: dict[str, int] = {}


def cuda_out_of_memory_first(cfg: DictConfig, reporter: Reporter) -> float:
    """On a GPU: the first trial holds 256 MiB, then asks for 1 TiB (a real CUDA out-of-memory error);
    later trials score 1.0 if that memory was freed and the allocator's cache returned to the driver."""
    if not cuda_marks:
        cuda_marks["allocated_before"] = torch.cuda.memory_allocated()
        held_tensor = torch.ones(64, 2**20, device="cuda")  # 256 MiB, alive in this frame when the error comes
        cuda_marks["held"] = held_tensor.numel() * 4
        torch.empty(2**40, dtype=torch.uint8, device="cuda")
    freed = torch.cuda.memory_allocated() <= cuda_marks["allocated_before"]
    cache_emptied = torch.cuda.memory_reserved() < cuda_marks["held"]
    for epoch in range(1, cfg.train.epochs + 1):
        reporter.report(epoch, val_acc=float(freed and cache_emptied))
    return float(freed and cache_emptied)
