"""``mnist1d``: a small 1-D CNN (or an MLP) on MNIST-1D (Greydanus & Kobak, ICML 2024; no download).

The data come from the ``mnist1d`` package's own generator (``mnist1d.data.make_dataset`` with its
default arguments, ``get_dataset_args()``): 10 digit templates of 12 points, padded, scaled, sheared,
translated, with correlated and i.i.d. noise, resampled to sequences of 40 values; 5000 sequences,
the first 4000 the training split and the last 1000 the test split. ``get_dataset`` is never called
(it downloads). Reference accuracies from the authors: logistic regression ~32 %, MLP ~68 %, a small
1-D CNN ~94 %.

Splits: the validation set (``objective.n_val``, 1000) is carved from the 4000 training sequences by
a seeded permutation (``objective.split_seed``), so every trial is judged on the same validation set
and the test split is never used for selection. ``make_split`` returns the test split too; only a
final evaluation should read it: ``evaluate_test``, the hook ``sweeps train`` calls once on the trained
model of a production run (never a sweep), logging ``test_acc`` / ``test_loss`` to its MLflow run.

Generation takes ~1.3 s (pure NumPy, one sequence at a time), so the dataset is cached in memory per
process and on disk as ``mnist1d-<hash of the arguments>.npz`` under ``objective.cache_dir`` (default
``$XDG_CACHE_HOME/sweeps`` or ``~/.cache/sweeps``); loading it takes milliseconds. ``make_dataset``
reseeds NumPy's and ``random``'s global generators; their states are restored afterwards.

Models: ``objective.model=cnn`` is the authors' ``ConvBase``: three Conv1d layers (kernel 5, 3, 3;
stride 2; ``channels`` each; ReLU) and a linear head over the flattened 5 positions; 25 channels:
5,210 parameters. ``model=mlp``: ``layers`` hidden layers of ``hidden`` units (the authors' MLP is
2 × 100). An epoch of the CNN (3000 sequences, batch 64, then 1000 validation sequences) takes
~0.1 s on one CPU thread.

Measured with the default trainer (AdamW, batch 64, weight decay 0.01, warmup + cosine, 27 epochs;
``benchmarks/results/curves_mnist1d.json``): final val_acc 0.30 / 0.43 / 0.58 / 0.78 / 0.89 / 0.93 /
0.84 / 0.10 at LR 1e-4 / 3e-4 / 1e-3 / 3e-3 / 1e-2 / 3e-2 / 0.1 / 0.3 (collapse to chance, no NaN);
the best of 220 random configs of the default space 0.946. The MLP reaches ~0.63 at its best LR.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from objectives.digits_mlp import mlp
from sweeps.errors import ConfigError
from sweeps.train.reporter import Reporter
from sweeps.train.training import Task, evaluate
from sweeps.train.training import train as run_training

METRICS = ("train_loss", "val_loss", "val_acc", "lr")
LENGTH, CLASSES = 40, 10
MODELS = ("cnn", "mlp")


# ----------------------------------------------------------------------------------------------
# Data: generated once, cached in memory and on disk.


def dataset_args(data_seed: int) -> dict:
    """The package's default dataset arguments with ``seed`` set (the default is 42); no URL."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)  # only get_dataset (the download) reads it; it must not change the cache key
    args["seed"] = int(data_seed)
    return args


def cache_path(cache_dir: str | os.PathLike | None, args: dict) -> Path:
    """``<cache_dir>/mnist1d-<12 hex digits of the arguments' hash>.npz``."""
    if cache_dir in (None, ""):
        cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sweeps"
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    return Path(os.path.expanduser(str(cache_dir))) / f"mnist1d-{digest}.npz"


def generate(args: dict) -> dict[str, np.ndarray]:
    """``make_dataset(args)`` as float32 / int64 arrays, leaving the global RNGs as they were."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


@lru_cache(maxsize=4)
def load_dataset(data_seed: int, cache_dir: str | None) -> dict[str, np.ndarray]:
    """The dataset for ``data_seed``: from the disk cache when present, else generated and saved.

    The file is written to a temporary name and renamed, so workers that start together never read
    a half-written file (both may generate; the last rename wins with identical content).
    """
    args = dataset_args(data_seed)
    path = cache_path(cache_dir, args)
    if path.exists():
        with np.load(path) as stored:
            return {key: stored[key] for key in ("x", "y", "x_test", "y_test")}
    data = generate(args)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(partial, "wb") as handle:
            np.savez(handle, **data)
        os.replace(partial, path)
    except OSError:
        pass  # a read-only home is no reason to fail a trial: the in-memory copy serves this process
    return data


@lru_cache(maxsize=4)
def make_split(n_val: int, split_seed: int, data_seed: int, cache_dir: str | None) -> dict[str, np.ndarray]:
    """``x_train, y_train, x_val, y_val`` (the validation set carved from the training split by a
    seeded permutation) and ``x_test, y_test`` (the package's test split, untouched)."""
    data = load_dataset(data_seed, cache_dir)
    n_train_split = len(data["y"])
    if not 0 < n_val < n_train_split:
        raise ConfigError("objective.n_val", n_val, f"must be between 1 and {n_train_split - 1} (the training split has {n_train_split})")
    order = np.random.default_rng(split_seed).permutation(n_train_split)
    train, val = order[n_val:], order[:n_val]
    return {
        "x_train": data["x"][train], "y_train": data["y"][train],
        "x_val": data["x"][val], "y_val": data["y"][val],
        "x_test": data["x_test"], "y_test": data["y_test"],
    }


# ----------------------------------------------------------------------------------------------
# Models.


class ConvNet(nn.Module):
    """The MNIST-1D authors' ``ConvBase``: (B, 40) -> three strided Conv1d + ReLU -> linear -> (B, 10).

    Lengths 40 -> 19 -> 10 -> 5 (kernel 5 then 3, stride 2, padding 1).
    """

    def __init__(self, channels: int = 25, classes: int = CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.head = nn.Linear(channels * 5, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x.unsqueeze(1)))
        h = torch.relu(self.conv2(h))
        h = torch.relu(self.conv3(h))
        return self.head(h.flatten(1))


def build_model(objective: DictConfig) -> nn.Module:
    kind = str(objective.model)
    if kind == "cnn":
        return ConvNet(int(objective.channels))
    return mlp(LENGTH, int(objective.hidden), int(objective.layers), CLASSES)


# ----------------------------------------------------------------------------------------------
# The objective.


def split_of(objective: DictConfig) -> dict[str, np.ndarray]:
    cache_dir = objective.get("cache_dir")
    return make_split(int(objective.n_val), int(objective.split_seed), int(objective.data_seed), None if cache_dir is None else str(cache_dir))


def make_task(objective: DictConfig) -> Task:
    if str(objective.model) not in MODELS:
        raise ConfigError("objective.model", objective.model, "unknown model", ", ".join(MODELS))
    split = split_of(objective)
    x_train, y_train = split["x_train"], split["y_train"]
    if objective.get("train_limit"):
        x_train, y_train = x_train[: int(objective.train_limit)], y_train[: int(objective.train_limit)]
    return Task(
        build_model=lambda: build_model(objective),
        train_data=(torch.from_numpy(x_train), torch.from_numpy(y_train)),
        val_data=(torch.from_numpy(split["x_val"]), torch.from_numpy(split["y_val"])),
    )


def evaluate_test(model: nn.Module, objective: DictConfig) -> dict[str, float]:
    """``test_loss`` and ``test_acc`` of a trained model on the test split: the final evaluation hook
    (``sweeps.results.production``), never called while a sweep selects configs."""
    split = split_of(objective)
    device = next(model.parameters()).device
    task = make_task(objective)
    metrics = evaluate(model, task, (torch.from_numpy(split["x_test"]).to(device), torch.from_numpy(split["y_test"]).to(device)))
    return {"test_loss": metrics["val_loss"], "test_acc": metrics["val_acc"]}


def train(cfg: DictConfig, reporter: Reporter) -> float:
    """The objective: train with ``cfg.train``, report every epoch, return ``cfg.sweep.metric``."""
    result = run_training(make_task(cfg.objective), cfg.train, reporter)
    return result.metrics[cfg.sweep.metric]
