"""The LR range test: the ramp and EMA against closed forms, the stop rule against known curvature,
the suggestions against curves whose answer is known analytically, and the probe leaving no trace."""

from __future__ import annotations

import math

import numpy as np
import pytest
import schedulefree
import torch
from torch import nn
from torch.nn import functional as F

from sweeps.errors import ConfigError
from sweeps.lr.finder import (
    RangeTestResult,
    Suggestion,
    lr_ramp,
    plot_range_test,
    range_test,
    smooth_losses,
    suggest,
)

pytestmark = pytest.mark.unit


class RecordingSGD(torch.optim.SGD):
    """Plain SGD that remembers the LR of every param group at each step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lr_history: list[list[float]] = []

    def step(self, closure=None):
        self.lr_history.append([group["lr"] for group in self.param_groups])
        return super().step(closure)


class NanAfter:
    """MSE loss that turns NaN from call number ``k`` on (0-based)."""

    def __init__(self, k: int):
        self.k, self.calls = k, 0

    def __call__(self, outputs, targets):
        loss = F.mse_loss(outputs, targets)
        self.calls += 1
        return loss * float("nan") if self.calls > self.k else loss


class RaiseAfter(NanAfter):
    def __call__(self, outputs, targets):
        if self.calls >= self.k:
            raise RuntimeError("boom")
        return super().__call__(outputs, targets)


def least_squares(seed: int, sigma: float, n_targets: int, n: int = 64, p: int = 8, top: float = 10.0):
    """``y = X w* + noise`` with ``X`` built so the MSE Hessian ``(2/n) XᵀX`` has eigenvalues
    ``top * logspace(-2, 0, p)``: largest curvature L = top (10 -> stability bound for GD 2/L = 0.2).

    X is fixed (full batch, so the Hessian and L are exact); ``n_targets`` noisy copies of y are
    cycled, so each step sees fresh label noise, which keeps re-exciting the top-curvature mode the
    way mini-batch gradient noise does."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, p, dtype=torch.float64, generator=gen))
    x = math.sqrt(n / 2) * q * (top * torch.logspace(-2, 0, p, dtype=torch.float64)).sqrt()
    w_star = torch.randn(p, 1, dtype=torch.float64, generator=gen)
    batches = [(x, x @ w_star + sigma * torch.randn(n, 1, dtype=torch.float64, generator=gen))
               for _ in range(n_targets)]
    curvature = float(torch.linalg.eigvalsh(2 / n * x.T @ x)[-1])
    model = nn.Linear(p, 1, bias=False).double()
    nn.init.zeros_(model.weight)
    return model, batches, curvature


# ---------------------------------------------------------------- ramp, EMA, validation


def test_exp_ramp_is_geometric_with_exact_endpoints():
    assert lr_ramp(1e-3, 1e6, 10) == pytest.approx([10.0**k for k in range(-3, 7)], rel=1e-12)


def test_linear_ramp_is_evenly_spaced():
    assert lr_ramp(0.1, 1.0, 10, mode="linear") == pytest.approx([0.1 * k for k in range(1, 11)], rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(lr_min=0.0), "lr_find.lr_min"),
        (dict(lr_min=-1e-3), "lr_find.lr_min"),
        (dict(lr_min=float("nan")), "lr_find.lr_min"),
        (dict(lr_min=1.0, lr_max=1.0), "lr_find.lr_max"),
        (dict(lr_max=float("inf")), "lr_find.lr_max"),
        (dict(steps=9), "lr_find.steps"),
        (dict(steps=10.0), "lr_find.steps"),
        (dict(mode="cosine"), "lr_find.mode"),
    ],
)
def test_ramp_rejects_bad_config_naming_the_key(kwargs, key):
    args = dict(lr_min=1e-7, lr_max=10.0, steps=100, mode="exp") | kwargs
    with pytest.raises(ConfigError) as info:
        lr_ramp(**args)
    assert info.value.key == key
    assert str(info.value).startswith(f"{key}=")


def test_smoothing_matches_hand_computed_bias_corrected_ema():
    # beta=0.5: avg = 0.5, 1.25, 2.125; corrections 1-0.5^(i+1) = 0.5, 0.75, 0.875
    assert smooth_losses([1.0, 2.0, 3.0], beta=0.5) == pytest.approx([1.0, 5 / 3, 17 / 7], rel=1e-12)
    # bias correction makes a constant series smooth to itself from the first step
    assert smooth_losses([2.5] * 20, beta=0.98) == pytest.approx([2.5] * 20, rel=1e-12)
    assert smooth_losses([3.0, 1.0], beta=0.0) == [3.0, 1.0]
    assert math.isnan(smooth_losses([1.0, float("nan"), 1.0], beta=0.9)[2])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        (dict(diverge_factor=1.0), "lr_find.diverge_factor"),
        (dict(beta=1.0), "lr_find.beta"),
        (dict(batches=[]), "lr_find.batches"),
    ],
)
def test_range_test_rejects_bad_config(kwargs, key):
    model, batches, _ = least_squares(seed=0, sigma=0.0, n_targets=1)
    before = model.weight.detach().clone()
    args = dict(batches=batches) | kwargs
    with pytest.raises(ConfigError) as info:
        range_test(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=F.mse_loss, **args)
    assert info.value.key == key
    assert torch.equal(model.weight, before)


# ---------------------------------------------------------------- range_test on real models


def test_run_records_the_exact_lr_history_and_applies_lr_scale():
    model, batches, curvature = least_squares(seed=0, sigma=0.0, n_targets=1, p=2, top=0.5)
    assert 2 / curvature > 1.0  # the ramp's top LR of 1.0 is stable: the run must complete
    extra = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = RecordingSGD([{"params": model.parameters()}, {"params": [extra], "lr_scale": 0.5}], lr=0.1)

    result = range_test(model, optimizer, batches, F.mse_loss, lr_min=1e-9, lr_max=1.0, steps=10)

    expected = [10.0**k for k in range(-9, 1)]
    assert result.lrs == pytest.approx(expected, rel=1e-12)
    assert [lrs[0] for lrs in optimizer.lr_history] == pytest.approx(expected, rel=1e-12)
    assert [lrs[1] for lrs in optimizer.lr_history] == pytest.approx([0.5 * lr for lr in expected], rel=1e-12)
    assert (result.steps_run, result.stopped_early, result.stop_reason) == (10, False, "completed")
    assert result.smoothed == smooth_losses(result.losses, beta=0.98)
    assert result.suggestion == suggest(result.lrs, result.smoothed)
    assert result.suggestion.diverged is False and result.suggestion.edge == result.lrs[-1]
    assert result.to_rows()[3] == {"step": 3, "lr": result.lrs[3], "loss": result.losses[3],
                                   "smoothed_loss": result.smoothed[3]}
    step, metrics = result.as_metrics()[9]
    assert step == 9 and set(metrics) == {"lr", "loss", "smoothed_loss"}
    assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.1]  # restored


def test_edge_lies_within_a_factor_3_of_the_stability_bound_2_over_L():
    # Plain full-batch SGD on a quadratic diverges only for lr > 2/L. Tolerance: the edge must lie
    # in [2/L / 3, 3 * 2/L]; over seeds 0-49 it fell in [1.6, 2.5] x 2/L (EMA lag, ~50 steps at
    # beta=0.98, puts it above the bound). A ramp of 40 steps per decade keeps that lag small.
    model, batches, curvature = least_squares(seed=0, sigma=0.1, n_targets=200)
    assert curvature == pytest.approx(10.0, rel=1e-9)
    bound = 2 / curvature
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.0)

    result = range_test(model, optimizer, batches, F.mse_loss, lr_min=1e-4, lr_max=10.0, steps=200)

    assert (result.stopped_early, result.stop_reason) == (True, "diverged")
    assert result.smoothed[-1] > 4.0 * min(result.smoothed)
    s = result.suggestion
    assert s.diverged and s.edge == result.lrs[-1]
    assert bound / 3 <= s.edge <= 3 * bound
    # steepest descent sits inside the stable range: above lr_min, below 2/L (seeds 0-49: <= 0.7 x)
    assert 1e-4 < s.steepest < bound < s.edge
    assert s.steepest <= s.min_loss <= s.edge


def test_deterministic_gradient_descent_never_diverges_below_2_over_L_but_overshoots_it():
    # Without label noise GD annihilates the top mode near lr = 1/L, so it must regrow from almost
    # nothing after 2/L: the loss blows up only ~e^2 x 2/L later. Lower bound is a theorem (every
    # mode contracts while lr < 2/L, so the loss and its EMA never rise); the upper 15x has margin
    # over the 5.9-11.8x seen for seeds 0-49. Read full-batch range tests with this in mind.
    model, batches, curvature = least_squares(seed=0, sigma=0.0, n_targets=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, optimizer, batches, F.mse_loss, lr_min=1e-4, lr_max=10.0, steps=200)
    assert result.stop_reason == "diverged"
    assert 2 / curvature < result.suggestion.edge < 15 * 2 / curvature


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 1))


def regression_batches(count: int = 4):
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(32, 4, generator=gen), torch.randn(32, 1, generator=gen)) for _ in range(count)]


def snapshot(model, optimizer):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {p: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for p, s in optimizer.state.items()},
        [dict((k, v) for k, v in g.items() if k != "params") for g in optimizer.param_groups],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [m.training for m in model.modules()],
    )


def assert_same(before, after):
    (model_a, state_a, groups_a, grads_a, modes_a), (model_b, state_b, groups_b, grads_b, modes_b) = before, after
    assert model_a.keys() == model_b.keys()
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert state_a.keys() == state_b.keys()
    for p in state_a:
        assert state_a[p].keys() == state_b[p].keys()
        assert all(torch.equal(state_a[p][k], state_b[p][k]) if torch.is_tensor(state_a[p][k])
                   else state_a[p][k] == state_b[p][k] for k in state_a[p])
    assert groups_a == groups_b
    assert len(grads_a) == len(grads_b)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(grads_a, grads_b))
    assert modes_a == modes_b


@pytest.mark.parametrize("warm_optimizer", [False, True])
def test_model_and_adam_state_are_restored_exactly(warm_optimizer):
    model, batches = small_net(), regression_batches()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    if warm_optimizer:  # real Adam moments and a pending gradient that must survive the probe
        F.mse_loss(model(batches[0][0]), batches[0][1]).backward()
        optimizer.step()
        F.mse_loss(model(batches[1][0]), batches[1][1]).backward()
    model.eval()  # the caller's mode, including BatchNorm's, must come back
    before = snapshot(model, optimizer)

    result = range_test(model, optimizer, batches, F.mse_loss, lr_min=1e-6, lr_max=1.0, steps=30)

    assert result.steps_run >= 10  # it really trained (batches cycled) before being undone
    assert_same(before, snapshot(model, optimizer))
    assert (len(optimizer.state) == 0) is (not warm_optimizer)


def test_state_is_restored_when_a_step_raises():
    model, batches = small_net(), regression_batches()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = snapshot(model, optimizer)
    with pytest.raises(RuntimeError, match="boom"):
        range_test(model, optimizer, batches, RaiseAfter(k=6), steps=20)
    assert_same(before, snapshot(model, optimizer))
    assert len(optimizer.state) == 0


def test_nan_loss_stops_the_test_at_that_step():
    model, batches = small_net(), regression_batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = range_test(model, optimizer, batches, NanAfter(k=7), lr_min=1e-6, lr_max=1e-3, steps=50)
    assert (result.steps_run, result.stopped_early, result.stop_reason) == (8, True, "non_finite")
    assert all(math.isfinite(v) for v in result.losses[:7]) and math.isnan(result.losses[7])
    assert result.suggestion.diverged and result.suggestion.edge == result.lrs[7]
    assert result.suggestion.min_loss in result.lrs[:7]


@pytest.mark.parametrize("start_in_train_mode", [False, True])
def test_schedule_free_optimizer_is_left_in_its_mode(start_in_train_mode):
    model, batches = small_net(), regression_batches()
    optimizer = schedulefree.AdamWScheduleFree(model.parameters(), lr=1e-3)
    optimizer.train()
    for inputs, targets in batches[:2]:  # build its z state, so a mode switch really moves weights
        F.mse_loss(model(inputs), targets).backward()
        optimizer.step()
        optimizer.zero_grad()
    if not start_in_train_mode:
        optimizer.eval()
    before = snapshot(model, optimizer)

    result = range_test(model, optimizer, batches, F.mse_loss, lr_min=1e-6, lr_max=1.0, steps=20)

    assert result.steps_run >= 10  # step() would raise if range_test had not switched to train()
    assert [g["train_mode"] for g in optimizer.param_groups] == [start_in_train_mode]
    assert_same(before, snapshot(model, optimizer))


# ---------------------------------------------------------------- suggest() on known curves

LOG_LRS = np.linspace(-7.0, 1.0, 100)  # the default exp ramp, 1e-7 .. 10 in 100 steps
GRID_RATIO = 10 ** (8 / 99)  # one step of that ramp


def logistic_drop(x, centre, width):
    """Loss falling from 2.0 to 0.5 around ``centre`` (log10 LR); steepest exactly at ``centre``."""
    return 2.0 - 1.5 / (1.0 + np.exp(-(x - centre) / width))


@pytest.mark.parametrize(
    ("lrs", "centre", "skip_start"),
    [
        (10**LOG_LRS, -3.0, 10),
        (10**LOG_LRS, -1.37, 10),
        (np.linspace(1e-4, 1.0, 200), math.log10(0.05), 0),  # linear ramp: slope still per decade
    ],
)
def test_steepest_is_the_logistic_centre_within_one_grid_step(lrs, centre, skip_start):
    losses = logistic_drop(np.log10(lrs), centre, width=0.4)
    s = suggest(list(lrs), list(losses), skip_start=skip_start)
    spacing = max(lrs[i + 1] / lrs[i] for i in range(len(lrs) - 1) if abs(math.log10(lrs[i]) - centre) < 0.5)
    assert 10**centre / spacing <= s.steepest <= 10**centre * spacing
    assert s == Suggestion(steepest=s.steepest, min_loss=float(lrs[-1]), edge=float(lrs[-1]), diverged=False)


def test_min_loss_and_edge_on_a_parabola_in_log_lr():
    # loss = 1 + (x + 2)^2: minimum at lr = 1e-2; the edge is the first point after it with
    # loss > 4 x 1, i.e. x > -2 + sqrt(3).
    losses = 1.0 + (LOG_LRS + 2.0) ** 2
    s = suggest(list(10**LOG_LRS), list(losses))
    assert 1e-2 / GRID_RATIO <= s.min_loss <= 1e-2 * GRID_RATIO
    first_over = int(np.argmax(LOG_LRS > -2.0 + math.sqrt(3.0)))
    assert s.edge == pytest.approx(10 ** LOG_LRS[first_over], rel=1e-12) and s.diverged
    assert s.steepest < s.min_loss  # the descent is left of the minimum


def test_suggest_fallbacks_with_few_or_non_finite_points():
    lrs = lr_ramp(1e-4, 1e-1, 12)
    falling = [1.0 / (i + 1) for i in range(12)]  # 12 points < skips 10 + 5: every point is used
    assert suggest(lrs, falling).steepest in lrs
    one = suggest([1e-3], [2.0])
    assert (one.steepest, one.min_loss, one.edge, one.diverged) == (None, 1e-3, 1e-3, False)
    none = suggest(lrs[:3], [float("nan")] * 3)
    assert (none.steepest, none.min_loss, none.edge, none.diverged) == (None, None, lrs[0], True)
    blown = suggest(lrs, falling[:6] + [float("inf")] * 6)
    assert blown.edge == lrs[6] and blown.diverged and blown.min_loss == lrs[5]
    # a 6x jump at step 2 rests on too few losses to call divergence (MIN_STEPS_BEFORE_STOP = 5)
    early_spike = suggest(lrs, [1.0, 0.5, 3.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.55, 0.52])
    assert not early_spike.diverged and early_spike.edge == lrs[-1]
    with pytest.raises(ValueError):
        suggest(lrs, falling[:5])


# ---------------------------------------------------------------- plot


def test_plot_writes_a_png(tmp_path):
    model, batches = small_net(), regression_batches()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    diverged = range_test(model, optimizer, batches, NanAfter(k=25), lr_min=1e-5, lr_max=1.0, steps=40)
    completed = RangeTestResult(
        lrs=lr_ramp(1e-4, 1.0, 10), losses=[1.0] * 10, smoothed=[1.0] * 10,
        suggestion=Suggestion(None, 1e-4, 1.0, False), stopped_early=False, stop_reason="completed", steps_run=10,
    )
    for name, result in (("nested/diverged.png", diverged), ("flat.png", completed)):
        path = plot_range_test(result, tmp_path / name)
        assert path == tmp_path / name
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
