"""Optimizer factory: the trainer's optimizer and param groups from ``train.*`` keys.

* ``train.optimizer``: ``adamw`` (default), ``adam``, ``sgd`` (``momentum``, ``nesterov``). With
  ``train.schedule=schedule_free`` the schedule-free variant of AdamW or SGD (Defazio et al. 2024,
  the ``schedulefree`` package) is used: it warms up itself over ``warmup_frac`` of the steps and
  must be switched between train and eval mode around evaluation (``set_train_mode``).
* Weight decay applies to weight matrices and embeddings only (2+-D tensors); biases and norm gains
  are not decayed, as in nanoGPT and most transformer recipes: shrinking them regularises nothing.
* ``train.lr_layer_decay = γ`` (default 1 = off): with the model split into depth units
  ``l = 0 … L−1`` (input side first), unit ``l`` trains at ``γ^(L−1−l)`` of the LR (layer-wise LR
  decay, as in ELECTRA/BEiT fine-tuning). The factor is stored as the group's ``lr_scale``, which
  ``schedules.apply_lr`` multiplies in at every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sweeps.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where it is used: validating a config must not load it
    import torch
    from torch import nn

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULE_FREE = "schedule_free"


def depth_units(model: nn.Module) -> list[list[nn.Parameter]]:
    """The model's parameters grouped by depth, input side first.

    A model may say it itself with ``layer_groups() -> list[list[Parameter]]``; otherwise its
    children are walked in order, containers (``Sequential``, ``ModuleList``) opened one level.
    A parameter shared by two units (tied embeddings) belongs to the first.
    """
    from torch import nn

    if callable(getattr(model, "layer_groups", None)):
        units = [list(unit) for unit in model.layer_groups()]
    else:
        modules: list[nn.Module] = []
        for child in model.children():
            modules.extend(child.children() if isinstance(child, (nn.Sequential, nn.ModuleList)) else [child])
        units = [list(module.parameters()) for module in modules]
    seen: set[int] = set()
    unique_units = []
    for unit in units:
        fresh = [p for p in unit if id(p) not in seen and p.requires_grad]
        seen.update(id(p) for p in fresh)
        if fresh:
            unique_units.append(fresh)
    return unique_units


def param_groups(model: nn.Module, weight_decay: float, lr_layer_decay: float = 1.0) -> list[dict[str, Any]]:
    """Groups by (depth, decayed or not), each with its ``lr_scale`` and ``weight_decay``."""
    units = depth_units(model) if lr_layer_decay != 1.0 else [[p for p in model.parameters() if p.requires_grad]]
    groups = []
    for depth, unit in enumerate(units):
        scale = lr_layer_decay ** (len(units) - 1 - depth)
        for decayed in (True, False):
            params = [p for p in unit if (p.dim() >= 2) == decayed]
            if params:
                groups.append({"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr_scale": scale})
    return groups


def build_optimizer(model: nn.Module, train: Mapping[str, Any], total_steps: int) -> torch.optim.Optimizer:
    """Build ``train.optimizer`` at LR ``train.lr`` (the schedule overwrites it every step)."""
    import torch

    name = train.get("optimizer", "adamw")
    if name not in OPTIMIZERS:
        raise ConfigError("train.optimizer", name, "unknown optimizer", ", ".join(OPTIMIZERS))
    lr_layer_decay = float(train.get("lr_layer_decay") or 1.0)
    if not 0 < lr_layer_decay <= 1:
        raise ConfigError("train.lr_layer_decay", lr_layer_decay, "must lie in (0, 1]; 1 = off")
    lr = float(train["lr"])
    groups = param_groups(model, float(train.get("weight_decay", 0.0)), lr_layer_decay)
    betas = tuple(train.get("betas", (0.9, 0.999)))
    momentum = float(train.get("momentum", 0.0))
    if train.get("schedule") == SCHEDULE_FREE:
        import schedulefree

        warmup_steps = int(round(float(train.get("warmup_frac", 0.0)) * total_steps))
        if name == "adamw":
            return schedulefree.AdamWScheduleFree(groups, lr=lr, betas=betas, warmup_steps=warmup_steps)
        if name == "sgd":
            return schedulefree.SGDScheduleFree(groups, lr=lr, momentum=momentum or 0.9, warmup_steps=warmup_steps)
        raise ConfigError("train.optimizer", name, "has no schedule-free variant", "adamw, sgd")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "adam":
        # Adam's weight_decay is L2 added to the gradient (not decoupled): kept for comparison.
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=bool(train.get("nesterov", False)))


def set_train_mode(optimizer: torch.optim.Optimizer, training: bool) -> None:
    """Schedule-free optimizers evaluate at a different point than they train: switch with the model."""
    switch = getattr(optimizer, "train" if training else "eval", None)
    if callable(switch):
        switch()
