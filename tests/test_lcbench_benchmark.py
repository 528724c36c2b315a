"""benchmarks/lcbench.py's arithmetic on hand-made traces, and one tiny replay through real Optuna."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.lcbench import Trace, best_within, budget_to_reach, regret_curve, speedups
from tests.test_lcbench import DATA, needs_data

pytestmark = pytest.mark.unit


def trace(rows: list[tuple[float, float]]) -> Trace:
    """(epochs spent, best so far) per ended trial; seconds = 2 × epochs."""
    out = Trace()
    for epochs, best in rows:
        out.add(epochs, 2 * epochs, best)
    return out


def test_budget_to_reach_counts_the_spend_when_the_target_is_first_met() -> None:
    t = trace([(52, 0.5), (104, 0.7), (130, 0.7), (182, 0.9)])
    assert budget_to_reach(t, 0.7, "epochs", 1000) == 104
    assert budget_to_reach(t, 0.9, "seconds", 1000) == 364
    assert budget_to_reach(t, 0.9, "epochs", 150) == math.inf  # met only after the budget
    assert budget_to_reach(t, 0.95, "epochs", 1000) == math.inf
    assert best_within(t, "epochs", 140) == 0.7
    assert best_within(t, "epochs", 10) == -math.inf


def test_speedup_is_the_budget_over_the_arms_median_budget_to_randoms_median_final() -> None:
    # random's finals at budget 400: 0.8, 0.85, 0.9 -> target 0.85 (the median), which random holds at 400
    random = [trace([(100, 0.8), (400, 0.8)]), trace([(300, 0.85)]), trace([(200, 0.9)])]
    arm = [trace([(50, 0.86)]), trace([(100, 0.9)]), trace([(150, 0.84), (390, 0.84)])]  # 50, 100, never -> median 100
    out = speedups({"random": random, "arm": arm}, "epochs", 400)
    assert out["arm"]["target"] == pytest.approx(0.85)
    assert out["arm"]["budget_to_target"]["median"] == 100
    assert out["arm"]["speedup"] == pytest.approx(4.0)
    assert out["random"]["budget_to_target"]["median"] == 300  # inf, 300, 200
    assert out["random"]["speedup"] == 1.0  # the baseline, by definition
    never = speedups({"random": random, "arm": [trace([(100, 0.1)])] * 3}, "epochs", 400)
    assert never["arm"]["speedup"] == 0.0  # an arm that never reaches the target


def test_regret_is_one_before_any_complete_trial_and_falls_with_the_best() -> None:
    t = trace([(52, 0.6), (104, 0.8)])
    curve = regret_curve(t, "epochs", np.array([10, 52, 60, 104, 500]), best=1.0, worst=0.5)
    np.testing.assert_allclose(curve, [1.0, 0.8, 0.8, 0.4, 0.4])


@needs_data
def test_a_tiny_replay_spends_its_budget_with_real_samplers_and_pruners() -> None:
    from benchmarks.lcbench import EPOCHS, replay, service_arm, stock_arms
    from objectives.lcbench import Surrogate
    from sweeps.config.compose import compose_config
    from sweeps.search.space import parse_search_space

    cfg = compose_config(["objective=lcbench", f"objective.data_dir={DATA}"])
    space = parse_search_space(cfg)
    surrogate = Surrogate("189906", DATA)
    random = next(a for a in stock_arms() if a.name == "random")
    t = replay(surrogate, cfg, space, random, 0, 5 * EPOCHS, 0.0)
    assert t.n_trials == t.n_complete == 5 and t.epochs == [52, 104, 156, 208, 260]  # no pruner: every trial runs 52 epochs
    assert t.best == sorted(t.best) and 0 < t.best[-1] <= 1
    default = replay(surrogate, cfg, space, service_arm("default", [f"objective.data_dir={DATA}"]), 0, 20 * EPOCHS, 0.0, workers=4)
    assert default.n_trials > default.n_complete  # Hyperband stopped some
    assert default.epochs[-1] >= 20 * EPOCHS and default.epochs == sorted(default.epochs)
