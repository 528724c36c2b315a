"""Optimizer factory: param groups, layer-wise LR decay, schedule-free mode switching."""

from __future__ import annotations

import pytest
import schedulefree
import torch
from torch import nn

from objectives.digits_mlp import mlp
from objectives.tiny_transformer import TinyTransformer
from sweeps.errors import ConfigError
from sweeps.train.optimizers import build_optimizer, depth_units, param_groups
from sweeps.train.schedules import apply_lr

pytestmark = pytest.mark.unit


def test_weight_decay_only_on_matrices() -> None:
    groups = param_groups(mlp(64, 32, 2, 10), weight_decay=0.1)
    decayed = [g for g in groups if g["weight_decay"] == 0.1]
    assert all(p.dim() == 2 for g in decayed for p in g["params"])
    assert all(p.dim() == 1 for g in groups if g["weight_decay"] == 0.0 for p in g["params"])
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in mlp(64, 32, 2, 10).parameters())


def test_layer_decay_gives_earlier_layers_gamma_to_the_distance_from_the_head() -> None:
    model = mlp(64, 32, 2, 10)  # three Linear layers
    optimizer = build_optimizer(model, {"optimizer": "sgd", "lr": 0.1, "lr_layer_decay": 0.5, "weight_decay": 0.0}, 100)
    apply_lr(optimizer, 0.1)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [lr_of[id(layer.weight)] for layer in linears] == pytest.approx([0.025, 0.05, 0.1])
    assert [lr_of[id(layer.bias)] for layer in linears] == pytest.approx([0.025, 0.05, 0.1])


def test_transformer_depth_units_put_tied_head_with_embeddings() -> None:
    model = TinyTransformer(vocab=16, seq_len=8, d_model=16, n_heads=2, n_layers=3)
    units = depth_units(model)
    assert len(units) == 5  # embeddings, 3 blocks, final norm
    assert any(p is model.head.weight for p in units[0])
    assert sum(p.numel() for unit in units for p in unit) == sum(p.numel() for p in model.parameters())


def test_schedule_free_variant_and_its_warmup() -> None:
    model = mlp(64, 16, 1, 10)
    optimizer = build_optimizer(model, {"optimizer": "adamw", "lr": 1e-3, "schedule": "schedule_free", "warmup_frac": 0.1}, 200)
    assert isinstance(optimizer, schedulefree.AdamWScheduleFree)
    assert all(group["warmup_steps"] == 20 for group in optimizer.param_groups)
    assert isinstance(build_optimizer(model, {"optimizer": "sgd", "lr": 0.1, "schedule": "schedule_free"}, 10), schedulefree.SGDScheduleFree)
    with pytest.raises(ConfigError, match="train.optimizer='adam': has no schedule-free variant; allowed: adamw, sgd"):
        build_optimizer(model, {"optimizer": "adam", "lr": 0.1, "schedule": "schedule_free"}, 10)


def test_schedule_free_evaluates_at_the_averaged_point(compose) -> None:
    """The trainer switches the optimizer to eval before evaluating: weights then differ from training's."""
    from objectives.digits_mlp import make_task
    from sweeps.train.reporter import recording_reporter
    from sweeps.train.training import train

    cfg = compose("train.schedule=schedule_free", "train.epochs=2", "train.lr=3e-3")
    result = train(make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))
    assert result.metrics["val_acc"] > 0.85


@pytest.mark.parametrize("bad", [{"optimizer": "lion"}, {"lr_layer_decay": 1.5}])
def test_bad_optimizer_settings_name_the_key(bad) -> None:
    with pytest.raises(ConfigError, match=f"train.{next(iter(bad))}"):
        build_optimizer(mlp(64, 8, 1, 10), {"optimizer": "adamw", "lr": 0.1, **bad}, 10)


def test_sgd_momentum_and_nesterov_reach_torch() -> None:
    optimizer = build_optimizer(mlp(64, 8, 1, 10), {"optimizer": "sgd", "lr": 0.1, "momentum": 0.8, "nesterov": True}, 10)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.8 and optimizer.param_groups[0]["nesterov"]
