"""Optimizer factory: the trainer's optimizer from ``train.*`` keys.

Weight decay applies to weight matrices and embeddings only (parameters with 2+ dimensions); biases
and normalisation gains are not decayed, as in nanoGPT and most transformer recipes, because
shrinking them towards 0 regularises nothing useful.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sweeps.errors import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd", "adamw_schedulefree")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed (2+-D tensors) and not decayed (biases, norms)."""
    decayed = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    plain = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decayed, "weight_decay": weight_decay}]
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, train: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Build ``train.optimizer`` with LR ``train.lr`` (the schedule overwrites it every step)."""
    name = train.get("optimizer", "adamw")
    lr = float(train["lr"])
    groups = param_groups(model, float(train.get("weight_decay", 0.0)))
    betas = tuple(train.get("betas", (0.9, 0.999)))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "adam":
        # Adam's weight_decay is L2 added to the gradient (not decoupled): kept for comparison.
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(train.get("momentum", 0.0)), nesterov=bool(train.get("nesterov", False)))
    if name == "adamw_schedulefree":
        import schedulefree

        warmup_steps = int(train.get("warmup_steps", 0))
        return schedulefree.AdamWScheduleFree(groups, lr=lr, betas=betas, warmup_steps=warmup_steps)
    raise ConfigError("train.optimizer", name, "unknown optimizer", ", ".join(OPTIMIZERS))


def set_train_mode(optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Schedule-free optimizers evaluate at a different point than they train: switch with the model."""
    switch = getattr(optimizer, "train" if training else "eval", None)
    if callable(switch):
        switch()
