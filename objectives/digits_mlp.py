"""``digits_mlp``: an MLP on scikit-learn's bundled 8x8 digits (no download).

1797 images of 64 pixels, 10 classes. The train/validation split is fixed by
``objective.split_seed`` so that every trial is judged on the same validation set; features are
standardised with the training split's statistics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from sweeps.train.reporter import Reporter
from sweeps.train.training import Task
from sweeps.train.training import train as run_training

METRICS = ("train_loss", "val_loss", "val_acc", "lr")


@lru_cache(maxsize=4)
def load_split(val_frac: float, split_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised (x_train, y_train, x_val, y_val), stratified and seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        digits.data.astype(np.float32), digits.target, test_size=val_frac, random_state=split_seed, stratify=digits.target
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0  # pixels that are always 0 in training stay 0 (not x/1e-6 on validation)
    return (x_train - mean) / std, y_train, (x_val - mean) / std, y_val


def mlp(inputs: int, hidden: int, layers: int, classes: int) -> nn.Module:
    blocks: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, classes))
    return nn.Sequential(*blocks)


def make_task(objective: DictConfig) -> Task:
    x_train, y_train, x_val, y_val = load_split(float(objective.val_frac), int(objective.split_seed))
    if objective.get("train_limit"):
        x_train, y_train = x_train[: int(objective.train_limit)], y_train[: int(objective.train_limit)]
    hidden, layers = int(objective.hidden), int(objective.layers)
    return Task(
        build_model=lambda: mlp(64, hidden, layers, 10),
        train_data=(torch.from_numpy(x_train), torch.from_numpy(y_train).long()),
        val_data=(torch.from_numpy(x_val), torch.from_numpy(y_val).long()),
    )


def train(cfg: DictConfig, reporter: Reporter) -> float:
    """The objective: train with ``cfg.train``, report every epoch, return ``cfg.sweep.metric``."""
    result = run_training(make_task(cfg.objective), cfg.train, reporter)
    return result.metrics[cfg.sweep.metric]
