"""Schedules against torch.optim.lr_scheduler over whole runs, WSD against closed forms, validation.

The torch reference is read the way a training loop sees it: ``param_groups[0]["lr"]`` before each
``scheduler.step()``. Tolerance is 1e-9 relative with no absolute slack, so tiny LRs near the end
of a decay are compared as strictly as the peak.
"""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torch.optim import lr_scheduler as sched

from sweeps.errors import ConfigError
from sweeps.train.schedules import (
    SCHEDULES,
    apply_lr,
    build_schedule,
    join_schedules,
    schedule_knobs,
    warmup_cosine,
)

pytestmark = pytest.mark.unit

REL_TOL = 1e-9


def torch_lrs(make_scheduler, optimizer_lr: float, total_steps: int) -> list[float]:
    """The LR torch uses at each of ``total_steps`` optimizer steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=optimizer_lr, momentum=0.9)  # momentum: 1cycle/cyclic cycle it
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no grads: a no-op, but keeps torch's step-order check quiet
        scheduler.step()
    return lrs


def warmed(warmup_steps: int, make_main):
    """torch's form of our warmup: LinearLR(1/(W+1) → 1 over W steps), then ``make_main`` from step W."""

    def make(optimizer):
        if warmup_steps == 0:
            return make_main(optimizer)
        warmup = sched.LinearLR(optimizer, start_factor=1 / (warmup_steps + 1), end_factor=1.0,
                                total_iters=warmup_steps)
        return sched.SequentialLR(optimizer, [warmup, make_main(optimizer)], milestones=[warmup_steps])

    return make


def assert_matches(ours: list[float], reference: list[float]) -> None:
    assert len(ours) == len(reference)
    errors = [abs(a - b) / max(abs(a), abs(b)) if a != b else 0.0 for a, b in zip(ours, reference)]
    worst = max(range(len(errors)), key=errors.__getitem__)
    assert errors[worst] <= REL_TOL, f"step {worst}: ours {ours[worst]!r} vs torch {reference[worst]!r}"


# id: (train config, total_steps, steps_per_epoch, optimizer lr, torch scheduler factory)
TORCH_CASES = {
    "constant": ({"schedule": "constant", "lr": 0.1}, 50, 10, 0.1,
                 lambda o: sched.ConstantLR(o, factor=1.0, total_iters=0)),
    "constant-warmup": ({"schedule": "constant", "lr": 0.1, "warmup_frac": 0.1}, 50, 10, 0.1,
                        warmed(5, lambda o: sched.ConstantLR(o, factor=1.0, total_iters=0))),
    "step-defaults": ({"schedule": "step", "lr": 0.1}, 100, 10, 0.1,
                      lambda o: sched.StepLR(o, step_size=30, gamma=0.1)),
    "step-half-epochs": ({"schedule": "step", "lr": 1e-3, "step_epochs": 1.5, "gamma": 0.5}, 120, 8, 1e-3,
                         lambda o: sched.StepLR(o, step_size=12, gamma=0.5)),
    "step-warmup": ({"schedule": "step", "lr": 0.3, "step_epochs": 2, "gamma": 0.7, "warmup_frac": 0.1},
                    140, 7, 0.3, warmed(14, lambda o: sched.StepLR(o, step_size=14, gamma=0.7))),
    "exponential-defaults": ({"schedule": "exponential", "lr": 0.1}, 200, 10, 0.1,
                             lambda o: sched.ExponentialLR(o, gamma=0.9 ** (1 / 10))),
    "exponential-warmup": ({"schedule": "exponential", "lr": 3e-4, "gamma": 0.5, "warmup_frac": 0.05},
                           400, 25, 3e-4, warmed(20, lambda o: sched.ExponentialLR(o, gamma=0.5 ** (1 / 25)))),
    "cosine-to-zero": ({"schedule": "cosine", "lr": 0.1}, 1000, 50, 0.1,
                       lambda o: sched.CosineAnnealingLR(o, T_max=1000)),
    "cosine-lr-min": ({"schedule": "cosine", "lr": 1e-3, "lr_min": 1e-5}, 300, 30, 1e-3,
                      lambda o: sched.CosineAnnealingLR(o, T_max=300, eta_min=1e-5)),
    "warmup-cosine-default-name": ({"lr": 0.05, "warmup_frac": 0.1}, 500, 50, 0.05,
                                   warmed(50, lambda o: sched.CosineAnnealingLR(o, T_max=450))),
    "warmup-cosine-lr-min": ({"schedule": "warmup_cosine", "lr": 2e-3, "warmup_frac": 0.03, "lr_min": 1e-6},
                             1000, 100, 2e-3, warmed(30, lambda o: sched.CosineAnnealingLR(o, 970, 1e-6))),
    "onecycle-defaults": ({"schedule": "onecycle", "lr": 0.1}, 100, 10, 0.1,
                          lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=100)),
    "onecycle-uneven-phases": ({"schedule": "onecycle", "lr": 0.01, "pct_start": 0.29, "div_factor": 10.0,
                                "final_div_factor": 100.0, "anneal_strategy": "linear"}, 333, 37, 0.01,
                               lambda o: sched.OneCycleLR(o, 0.01, total_steps=333, pct_start=0.29, div_factor=10.0,
                                                          final_div_factor=100.0, anneal_strategy="linear")),
    "onecycle-three-phase": ({"schedule": "onecycle", "lr": 0.4, "pct_start": 0.25, "three_phase": True}, 1000,
                             100, 0.4, lambda o: sched.OneCycleLR(o, 0.4, total_steps=1000, pct_start=0.25,
                                                                  three_phase=True)),
    "cyclic-triangular": ({"schedule": "cyclic", "lr": 0.1, "cycle_epochs": 2}, 100, 10, 0.025,
                          lambda o: sched.CyclicLR(o, base_lr=0.025, max_lr=0.1, step_size_up=10)),
    "cyclic-triangular2-warmup": ({"schedule": "cyclic", "lr": 0.1, "cyclic_mode": "triangular2",
                                   "cyclic_base_lr": 0.01, "cycle_epochs": 1, "warmup_frac": 0.1}, 200, 16, 0.01,
                                  warmed(20, lambda o: sched.CyclicLR(o, 0.01, 0.1, step_size_up=8,
                                                                      mode="triangular2"))),
}


@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_matches_torch_over_whole_run(case) -> None:
    train, total_steps, steps_per_epoch, optimizer_lr, make_scheduler = case
    schedule = build_schedule(train, total_steps, steps_per_epoch)
    ours = [schedule(step) for step in range(total_steps)]
    assert_matches(ours, torch_lrs(make_scheduler, optimizer_lr, total_steps))


def test_every_schedule_has_a_case() -> None:
    names = {train.get("schedule", "warmup_cosine") for train, *_ in TORCH_CASES.values()}
    # wsd has no torch equivalent (closed forms below); schedule_free is flat by design (test below)
    assert names == set(SCHEDULES) - {"wsd", "schedule_free"}


def test_schedule_free_writes_a_flat_lr_and_leaves_warmup_to_the_optimizer() -> None:
    schedule = build_schedule({"schedule": "schedule_free", "lr": 0.02, "warmup_frac": 0.3}, 50, 10)
    assert {schedule(step) for step in range(50)} == {0.02}


def test_warmup_cosine_factory_matches_torch() -> None:
    ours = [warmup_cosine(0.1, 200, warmup_steps=20, lr_min=1e-4)(step) for step in range(200)]
    assert_matches(ours, torch_lrs(warmed(20, lambda o: sched.CosineAnnealingLR(o, 180, 1e-4)), 0.1, 200))


def test_warmup_is_linear_from_one_step_above_zero() -> None:
    schedule = build_schedule({"schedule": "constant", "lr": 1.0, "warmup_frac": 0.4}, 10, 5)
    assert [schedule(step) for step in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0], rel=1e-12)


# WSD, T=100, warmup 10 steps, cooldown 20 steps (80..99), lr 1.0 → lr_min 0.1; decay step k has p = (k+1)/20.
WSD_TRAIN = {"schedule": "wsd", "lr": 1.0, "lr_min": 0.1, "warmup_frac": 0.1, "cooldown_frac": 0.2}
WSD_SHAPES = {"linear": lambda p: 1 - p, "cosine": lambda p: (1 + math.cos(math.pi * p)) / 2,
              "1-sqrt": lambda p: 1 - math.sqrt(p)}


@pytest.mark.parametrize("shape", WSD_SHAPES)
def test_wsd_closed_form(shape) -> None:
    schedule = build_schedule({**WSD_TRAIN, "decay_shape": shape}, 100, 10)
    f = WSD_SHAPES[shape]
    expected = {
        0: 1 / 11,  # warmup starts at lr/(W+1)
        9: 10 / 11,  # last warmup step
        10: 1.0,  # stable phase starts at the peak
        79: 1.0,  # last stable step
        80: 0.1 + 0.9 * f(1 / 20),  # first decay step is already below the peak
        89: 0.1 + 0.9 * f(0.5),  # mid-decay
        99: 0.1,  # last step of the run is exactly lr_min, for every shape
    }
    assert {step: schedule(step) for step in expected} == pytest.approx(expected, rel=1e-12, abs=0)


def test_wsd_hand_values() -> None:
    linear = build_schedule({**WSD_TRAIN, "decay_shape": "linear"}, 100, 10)
    sqrt = build_schedule({**WSD_TRAIN, "decay_shape": "1-sqrt"}, 100, 10)
    assert (linear(80), linear(89), sqrt(89)) == pytest.approx((0.955, 0.55, 0.3636038969), rel=1e-9)


def test_wsd_cooldown_whole_run_default_shape() -> None:
    schedule = build_schedule({"schedule": "wsd", "lr": 2.0, "cooldown_frac": 1.0}, 4, 2)
    assert [schedule(t) for t in range(4)] == pytest.approx([2 * (1 - math.sqrt(p)) for p in (0.25, 0.5, 0.75, 1)])


def test_join_schedules_counts_each_piece_from_its_start() -> None:
    schedule = join_schedules([lambda t: 100 + t, lambda t: 200 + t, lambda t: 300 + t], [2, 5])
    assert [schedule(t) for t in range(7)] == [100, 101, 200, 201, 202, 300, 301]


def test_reads_omegaconf_and_only_declared_knobs() -> None:
    for name in SCHEDULES:
        read: set[str] = set()

        class Recording(dict):
            def get(self, key, default=None):
                read.add(key)
                return super().get(key, default)

        build_schedule(Recording(schedule=name, lr=0.1), 100, 10)
        assert read - {"schedule"} == set(schedule_knobs(name)), name
    config = OmegaConf.create({"schedule": "wsd", "lr": 0.1, "cooldown_frac": 0.5, "decay_shape": "linear"})
    assert build_schedule(config, 10, 5)(9) == 0.0


def test_apply_lr_scales_groups() -> None:
    head, body = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [head]}, {"params": [body], "lr_scale": 0.5}], lr=1.0)
    apply_lr(optimizer, 0.2)
    assert [group["lr"] for group in optimizer.param_groups] == [0.2, 0.1]


# (train overrides, key named in the error, start of the message)
BAD_CONFIGS = [
    ({"schedule": "foo"}, "train.schedule", "train.schedule='foo': unknown schedule; allowed: constant, step, "
                                            "exponential, cosine, warmup_cosine, wsd, onecycle, cyclic"),
    ({"lr": None}, "train.lr", "train.lr=None: required"),
    ({"lr": 0.0}, "train.lr", "train.lr=0.0: out of range; allowed: (0, inf)"),
    ({"lr": "fast"}, "train.lr", "train.lr='fast': not a number"),
    ({"warmup_frac": 1.0}, "train.warmup_frac", "train.warmup_frac=1.0: out of range; allowed: [0, 1)"),
    ({"warmup_frac": -0.1}, "train.warmup_frac", "train.warmup_frac=-0.1: out of range"),
    ({"lr_min": 0.2}, "train.lr_min", "train.lr_min=0.2: out of range; allowed: [0, 0.1]"),
    ({"lr_min": float("nan")}, "train.lr_min", "train.lr_min=nan: out of range"),
    ({"schedule": "step", "gamma": 0.0}, "train.gamma", "train.gamma=0.0: out of range; allowed: (0, 1]"),
    ({"schedule": "exponential", "gamma": 1.5}, "train.gamma", "train.gamma=1.5: out of range"),
    ({"schedule": "step", "step_epochs": 0}, "train.step_epochs", "train.step_epochs=0: out of range"),
    ({"schedule": "wsd", "cooldown_frac": 0.0}, "train.cooldown_frac", "train.cooldown_frac=0.0: out of range; "
                                                                       "allowed: (0, 1]"),
    ({"schedule": "wsd", "cooldown_frac": 1.2}, "train.cooldown_frac", "train.cooldown_frac=1.2: out of range"),
    ({"schedule": "wsd", "warmup_frac": 0.5, "cooldown_frac": 0.6}, "train.cooldown_frac",
     "train.cooldown_frac=0.6: warmup_frac + cooldown_frac > 1 (warmup_frac=0.5); allowed: (0, 0.5]"),
    ({"schedule": "wsd", "decay_shape": "sqrt"}, "train.decay_shape",
     "train.decay_shape='sqrt': not an allowed value; allowed: linear, cosine, 1-sqrt"),
    ({"schedule": "onecycle", "pct_start": 0.0}, "train.pct_start", "train.pct_start=0.0: out of range; "
                                                                     "allowed: (0, 1)"),
    ({"schedule": "onecycle", "pct_start": 1.0}, "train.pct_start", "train.pct_start=1.0: out of range"),
    ({"schedule": "onecycle", "pct_start": 0.6, "three_phase": True}, "train.pct_start",
     "train.pct_start=0.6: out of range; allowed: (0, 0.5]"),
    ({"schedule": "onecycle", "pct_start": 0.01}, "train.pct_start", "train.pct_start=0.01: pct_start × 100 steps"),
    ({"schedule": "onecycle", "three_phase": "yes"}, "train.three_phase", "train.three_phase='yes': not an allowed"),
    ({"schedule": "onecycle", "anneal_strategy": "cosine"}, "train.anneal_strategy",
     "train.anneal_strategy='cosine': not an allowed value; allowed: cos, linear"),
    ({"schedule": "onecycle", "div_factor": 0.5}, "train.div_factor", "train.div_factor=0.5: out of range"),
    ({"schedule": "onecycle", "final_div_factor": 0}, "train.final_div_factor", "train.final_div_factor=0: out of"),
    ({"schedule": "cyclic", "cyclic_mode": "exp_range"}, "train.cyclic_mode",
     "train.cyclic_mode='exp_range': not an allowed value; allowed: triangular, triangular2"),
    ({"schedule": "cyclic", "cyclic_div": 1.0}, "train.cyclic_div", "train.cyclic_div=1.0: out of range"),
    ({"schedule": "cyclic", "cyclic_base_lr": 0.1}, "train.cyclic_base_lr", "train.cyclic_base_lr=0.1: out of"),
    ({"schedule": "cyclic", "cycle_epochs": -1}, "train.cycle_epochs", "train.cycle_epochs=-1: out of range"),
]


@pytest.mark.parametrize(("overrides", "key", "message"), BAD_CONFIGS, ids=[m.split(":")[0] for *_, m in BAD_CONFIGS])
def test_bad_config_names_the_key(overrides, key, message) -> None:
    with pytest.raises(ConfigError) as error:
        build_schedule({"lr": 0.1, **overrides}, 100, 10)
    assert error.value.key == key
    if key.removeprefix("train.") in overrides:  # the error carries the bad value itself (repr: NaN != NaN)
        assert repr(error.value.value) == repr(overrides[key.removeprefix("train.")])
    assert str(error.value).startswith(message)


def test_schedule_knobs() -> None:
    assert SCHEDULES == ("constant", "step", "exponential", "cosine", "warmup_cosine", "wsd", "onecycle", "cyclic", "schedule_free")
    assert schedule_knobs("wsd") == ("lr", "warmup_frac", "lr_min", "cooldown_frac", "decay_shape")
    assert "warmup_frac" not in schedule_knobs("onecycle")
    with pytest.raises(ConfigError, match="unknown schedule"):
        schedule_knobs("linear")
