"""Schedule-aware rung evaluation: the trial's own run is untouched, the rung metrics appear where the
pruner reads, the cooldown and EMA follow their formulas, and bad settings name their key."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from objectives import digits_mlp, tiny_transformer
from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections
from sweeps.errors import ConfigError
from sweeps.search.preview import hyperband_brackets
from sweeps.train.reporter import TrialReporter, recording_reporter
from sweeps.train.rung_eval import EmaEvaluator, cooldown_schedule, cooldown_steps, power_ema_weight, rung_epochs_for
from sweeps.train.schedules import build_schedule
from sweeps.train.training import train

pytestmark = pytest.mark.unit

DIGITS_STEPS_PER_EPOCH = 23  # 1437 training images, batch 64
RAW_KEYS = {"epoch", "train_loss", "val_loss", "val_acc", "lr"}


def run(objective: str, rung_epochs: set[int] | None, *overrides: str):
    """Train the objective on the CPU; returns (result, reporter)."""
    cfg = compose_config([f"objective={objective}", "train.device=cpu", *overrides])
    module = digits_mlp if objective == "digits_mlp" else tiny_transformer
    reporter = recording_reporter("val_acc")
    if rung_epochs is not None:
        reporter.rung_epochs = frozenset(rung_epochs)
    return train(module.make_task(cfg.objective), cfg.train, reporter), reporter


SMALL_TRANSFORMER = ("objective.n_train=192", "objective.n_val=64", "objective.dropout=0.1", "train.batch_size=32")


@pytest.mark.parametrize(
    "objective, overrides",
    [
        ("digits_mlp", ("train.schedule=wsd", "train.lr=0.03", "train.epochs=4")),
        ("digits_mlp", ("train.schedule=warmup_cosine", "train.lr=0.01", "train.epochs=4", "train.optimizer=sgd")),
        # dropout draws from the global RNG: the branch must fork it, or the main run's masks change
        ("tiny_transformer", ("train.schedule=wsd", "train.lr=3e-3", "train.epochs=3", *SMALL_TRANSFORMER)),
    ],
    ids=["digits-wsd", "digits-cosine-sgd", "transformer-dropout"],
)
@pytest.mark.parametrize("strategy", ["cooldown", "averaged"])
def test_the_trials_own_trajectory_is_bit_identical_to_raw(objective: str, overrides: tuple[str, ...], strategy: str) -> None:
    raw, raw_reporter = run(objective, {1, 2}, *overrides, "train.rung_eval=raw")
    other, other_reporter = run(objective, {1, 2}, *overrides, f"train.rung_eval={strategy}")
    assert other.step_losses == raw.step_losses  # exact float equality, every step
    assert other.step_lrs == raw.step_lrs
    assert {k: other.metrics[k] for k in raw.metrics} == raw.metrics
    for raw_epoch, other_epoch in zip(raw_reporter.history, other_reporter.history):
        assert {k: other_epoch[k] for k in raw_epoch} == raw_epoch
    for name, tensor in raw.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[name], tensor), name
    assert any(k.startswith("rung_val") for epoch in other_reporter.history for k in epoch)


def test_cooldown_reports_rung_metrics_at_rung_epochs_only_and_counts_its_steps() -> None:
    _, reporter = run("digits_mlp", {1, 3}, "train.schedule=wsd", "train.epochs=5", "train.rung_eval=cooldown", "train.rung_cooldown_frac=0.2")
    history = {int(h["epoch"]): h for h in reporter.history}
    first, third = cooldown_steps(DIGITS_STEPS_PER_EPOCH, 0.2), cooldown_steps(3 * DIGITS_STEPS_PER_EPOCH, 0.2)
    assert (first, third) == (5, 14)
    assert history[1]["rung_extra_steps"] == first
    assert history[3]["rung_extra_steps"] == first + third  # cumulative
    assert history[3]["cost_epochs"] == pytest.approx(3 + (first + third) / DIGITS_STEPS_PER_EPOCH)  # a trial pruned here cost this
    for epoch in (1, 3):
        assert {"rung_val_acc", "rung_val_loss"} <= set(history[epoch])
        assert 0.0 <= history[epoch]["rung_val_acc"] <= 1.0
    for epoch in (2, 4):
        assert set(history[epoch]) == RAW_KEYS
    assert "rung_val_acc" not in history[5]  # the trial has finished its own schedule there
    assert history[5]["rung_extra_steps"] == first + third
    assert history[5]["cost_epochs"] == pytest.approx(5 + (first + third) / DIGITS_STEPS_PER_EPOCH)


def test_without_rung_epochs_cooldown_runs_at_every_epoch_but_the_last() -> None:
    _, reporter = run("digits_mlp", None, "train.schedule=wsd", "train.epochs=3", "train.rung_eval=cooldown")
    assert ["rung_val_acc" in h for h in reporter.history] == [True, True, False]


def test_the_pruner_judges_the_cooled_value_and_the_sink_keeps_both() -> None:
    cfg = compose_config(["train.device=cpu", "train.schedule=wsd", "train.lr=0.1", "train.epochs=3", "train.rung_eval=cooldown"])
    judged, logged = [], []
    reporter = TrialReporter("val_acc", should_prune=lambda epoch, value: judged.append((epoch, value)) or False,
                             sink=lambda epoch, metrics: logged.append(dict(metrics)))
    reporter.rung_epochs = frozenset({1})
    train(digits_mlp.make_task(cfg.objective), cfg.train, reporter)
    assert judged[0] == (1, logged[0]["rung_val_acc"])
    assert judged[1] == (2, logged[1]["val_acc"])


@pytest.mark.parametrize(
    "start, lr_min, steps, shape",
    [(0.1, 0.0, 5, "linear"), (0.1, 1e-3, 7, "1-sqrt"), (3e-3, 0.0, 20, "cosine"), (0.5, 0.01, 1, "linear")],
)
def test_cooldown_schedule_runs_from_the_current_lr_to_lr_min(start: float, lr_min: float, steps: int, shape: str) -> None:
    schedule = cooldown_schedule(start, lr_min, steps, shape)
    lrs = [schedule(k) for k in range(steps)]
    assert len(lrs) == steps
    assert schedule(-1) == start  # anchored at the LR of the main run's last step
    assert lrs[-1] == pytest.approx(lr_min, abs=1e-15)
    assert all(a > b for a, b in zip([start, *lrs], lrs))  # strictly down from the current LR
    # Reference: the same decay as the last `steps` steps of a whole WSD run held at `start`.
    total = 10 * steps
    wsd = build_schedule({"schedule": "wsd", "lr": start, "lr_min": lr_min, "cooldown_frac": 0.1, "decay_shape": shape}, total, steps)
    assert lrs == pytest.approx([wsd(total - steps + k) for k in range(steps)], rel=1e-12)


@pytest.mark.parametrize("steps_so_far, frac, expected", [(23, 0.2, 5), (69, 0.2, 14), (69, 0.1, 7), (2, 0.2, 1), (0, 0.2, 1), (10, 1.0, 10)])
def test_cooldown_length_is_a_share_of_the_steps_so_far_at_least_one(steps_so_far: int, frac: float, expected: int) -> None:
    assert cooldown_steps(steps_so_far, frac) == expected


def test_averaged_reports_the_ema_every_epoch_and_its_weights_differ() -> None:
    result, reporter = run("digits_mlp", {1}, "train.schedule=wsd", "train.lr=0.03", "train.epochs=3", "train.rung_eval=averaged")
    assert all({"rung_val_acc", "rung_val_loss"} <= set(h) for h in reporter.history)  # every epoch, the last included
    assert "rung_extra_steps" not in reporter.history[0]  # no extra training
    assert any(h["rung_val_loss"] != h["val_loss"] for h in reporter.history)


def test_ema_weights_differ_from_the_live_weights() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    ema = EmaEvaluator(model, horizon=0.2)
    for _ in range(10):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        ema.update(model)
    assert not torch.equal(ema.module.weight, model.weight)
    assert not ema.module.weight.requires_grad


def test_power_ema_with_horizon_one_is_torchs_uniform_average() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    ours, reference = EmaEvaluator(model, horizon=1.0), AveragedModel(model, use_buffers=True)
    for _ in range(7):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(5, 3))  # moves the BatchNorm running statistics
        ours.update(model)
        reference.update_parameters(model)
    for a, b in zip([*ours.module.parameters(), *ours.module.buffers()], [*reference.module.parameters(), *reference.module.buffers()]):
        if a.is_floating_point():
            assert torch.allclose(a, b, atol=1e-6)
    assert ours.module[1].num_batches_tracked == model[1].num_batches_tracked == 7  # a counter is copied, not averaged


@pytest.mark.parametrize("step, horizon, expected", [(1, 0.2, 1.0), (2, 1.0, 0.5), (10, 1.0, 0.1), (2, 0.5, 0.75)])
def test_power_ema_weight_closed_form(step: int, horizon: float, expected: float) -> None:
    assert power_ema_weight(step, horizon) == pytest.approx(expected)


def test_schedule_free_averaged_adds_nothing_its_eval_point_is_the_average() -> None:
    _, reporter = run("digits_mlp", {1}, "train.schedule=schedule_free", "train.epochs=2", "train.rung_eval=averaged")
    assert all(set(h) == RAW_KEYS for h in reporter.history)


@pytest.mark.parametrize(
    "overrides, key",
    [
        (("train.rung_eval=best",), "train.rung_eval"),
        (("train.rung_eval=cooldown", "train.schedule=schedule_free"), "train.rung_eval"),
        (("train.rung_eval=cooldown", "train.rung_cooldown_frac=0"), "train.rung_cooldown_frac"),
        (("train.rung_eval=averaged", "train.rung_ema_horizon=1.5"), "train.rung_ema_horizon"),
    ],
)
def test_bad_settings_name_their_key(overrides: tuple[str, ...], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        run("digits_mlp", None, "train.epochs=2", *overrides)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}=")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (("sweep.pruner=hyperband", "sweep.hyperband.min_resource=1", "train.epochs=9", "sweep.hyperband.reduction_factor=3"), {1, 3}),
        (("sweep.pruner=hyperband", "sweep.hyperband.min_resource=1", "train.epochs=27", "sweep.hyperband.reduction_factor=3"), {1, 3, 9}),
        (("sweep.pruner=hyperband", "sweep.hyperband.min_resource=2", "train.epochs=9", "sweep.hyperband.reduction_factor=3"), {2, 6}),
        (("sweep.pruner=hyperband", "sweep.hyperband.min_resource=1", "train.epochs=8", "sweep.hyperband.reduction_factor=2"), {1, 2, 4}),
        (("sweep.pruner=median", "train.epochs=9"), set(range(1, 9))),
        (("sweep.pruner=none", "train.epochs=9"), set()),
    ],
)
def test_rung_epochs_for_the_configured_pruner(overrides: tuple[str, ...], expected: set[int]) -> None:
    cfg = compose_config(list(overrides))
    assert rung_epochs_for(Sections.of(cfg).sweep) == expected
    if cfg.sweep.pruner == "hyperband":  # reference: the union of the real brackets' rungs below the last epoch
        hb = cfg.sweep.hyperband
        brackets = hyperband_brackets(int(hb.min_resource), int(cfg.train.epochs), int(hb.reduction_factor))
        assert expected == {r for b in brackets for r in b.rungs if r < cfg.train.epochs}


def test_no_rung_metric_is_ever_nan_on_a_healthy_run() -> None:
    _, reporter = run("digits_mlp", {1, 2}, "train.schedule=wsd", "train.epochs=3", "train.rung_eval=cooldown")
    assert all(math.isfinite(v) for h in reporter.history for v in h.values())


def test_bad_rung_eval_stops_the_sweep_before_anything_is_written(compose, tmp_path) -> None:
    from sweeps.run.sweep import plan_sweep

    with pytest.raises(ConfigError, match="train.rung_eval='cool': unknown rung evaluation"):
        plan_sweep(compose("train.rung_eval=cool"))
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()
