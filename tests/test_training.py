"""The shared trainer on the real digits objective: learns, is seeded, stops at NaN."""

from __future__ import annotations

import math

import pytest
import torch

from objectives.digits_mlp import load_split, make_task
from objectives.digits_mlp import train as digits_objective
from sweeps.train.reporter import Diverged, recording_reporter
from sweeps.train.training import train

pytestmark = pytest.mark.unit


def test_digits_split_is_fixed_stratified_and_standardised() -> None:
    x_train, y_train, x_val, y_val = load_split(0.2, 0)
    assert (len(x_train), len(x_val)) == (1437, 360)
    assert abs(float(x_train.mean())) < 1e-5
    assert sorted(set(y_val.tolist())) == list(range(10))


def test_good_lr_learns_digits_and_reports_every_epoch(compose) -> None:
    cfg = compose("train.lr=3e-3", "train.epochs=4")
    reporter = recording_reporter("val_acc")
    final = digits_objective(cfg, reporter)
    assert [h["epoch"] for h in reporter.history] == [1, 2, 3, 4]
    assert set(reporter.history[0]) == {"epoch", "train_loss", "val_loss", "val_acc", "lr"}
    assert final == reporter.history[-1]["val_acc"] >= 0.93
    assert reporter.history[-1]["train_loss"] < reporter.history[0]["train_loss"]


def test_same_seed_same_run_other_seed_other_run(compose) -> None:
    def final_metrics(seed: int) -> dict:
        cfg = compose("train.epochs=2", f"train.seed={seed}")
        return train(make_task(cfg.objective), cfg.train, recording_reporter("val_acc")).metrics

    assert final_metrics(0) == final_metrics(0)
    assert final_metrics(0)["val_loss"] != final_metrics(1)["val_loss"]


def test_exploding_loss_stops_at_once_with_step_and_lr(compose) -> None:
    cfg = compose("train.optimizer=sgd", "train.lr=1e6", "train.warmup_frac=0.0", "train.epochs=3")
    task = make_task(cfg.objective)
    with pytest.raises(Diverged) as caught:
        train(task, cfg.train, recording_reporter("val_acc"))
    stop = caught.value
    assert stop.epoch == 1 and 0 <= stop.step < 23
    assert stop.lr == pytest.approx(1e6, rel=0.01)
    assert not math.isfinite(stop.loss) or stop.loss > 10 * math.log(10)  # NaN/inf, or 10x the first loss (~ln 10)


def test_nan_stops_even_without_the_explosion_guard(compose) -> None:
    cfg = compose("train.optimizer=sgd", "train.lr=1e6", "train.warmup_frac=0.0", "train.epochs=3", "train.diverge_factor=null")
    with pytest.raises(Diverged) as caught:
        train(make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))
    assert not math.isfinite(caught.value.loss)


def test_gradient_clipping_bounds_the_update(compose) -> None:
    cfg = compose("train.optimizer=sgd", "train.lr=10.0", "train.warmup_frac=0.0", "train.epochs=1", "train.grad_clip=0.01", "train.momentum=0.0")
    result = train(make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))
    assert all(math.isfinite(loss) for loss in result.step_losses)


def test_schedule_is_applied_every_step(compose) -> None:
    cfg = compose("train.lr=1e-2", "train.warmup_frac=0.1", "train.epochs=2")
    result = train(make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))
    lrs = result.step_lrs
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(1e-2)
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
    assert torch.get_default_dtype() == torch.float32
