"""Sweep preview: Hyperband's brackets against Optuna's real pruner and study, budgets by hand, the
space in words, and a measured epoch of the real digits objective."""

from __future__ import annotations

import math
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections, SweepSection
from sweeps.errors import ConfigError
from sweeps.search.preview import (
    Budget,
    bracket_of_trial,
    configured_brackets,
    describe_space,
    estimate_budget,
    expected_epochs_per_trial,
    hyperband_brackets,
    measure_epoch_seconds,
    preview_tables,
)
from sweeps.search.service_cost import ServiceCost, measure_service_cost
from sweeps.search.space import parse_search_space
from sweeps.search.study import make_pruner

pytestmark = pytest.mark.unit

optuna.logging.set_verbosity(optuna.logging.WARNING)

COMBOS = [(1, 9, 3), (1, 27, 3), (1, 10, 2), (3, 27, 3), (1, 100, 3), (2, 50, 4), (1, 1000, 10), (5, 5, 3)]


def initialised_pruner(min_resource: int, max_resource: int, reduction_factor: int) -> tuple[optuna.pruners.HyperbandPruner, optuna.Study]:
    pruner = optuna.pruners.HyperbandPruner(min_resource, max_resource, reduction_factor)
    study = optuna.create_study(study_name="preview-test", direction="maximize", pruner=pruner)
    pruner._try_initialization(study)
    return pruner, study


@pytest.mark.parametrize("combo", COMBOS)
def test_brackets_and_allocation_match_optunas_pruner(combo: tuple[int, int, int]) -> None:
    pruner, _ = initialised_pruner(*combo)
    brackets = hyperband_brackets(*combo)
    assert len(brackets) == pruner._n_brackets
    assert [b.min_early_stopping_rate for b in brackets] == [p._min_early_stopping_rate for p in pruner._pruners]
    assert {(p._min_resource, p._reduction_factor) for p in pruner._pruners} == {(combo[0], combo[2])}
    assert [b.allocation_budget for b in brackets] == pruner._trial_allocation_budgets
    total = pruner._total_trial_allocation_budget
    assert [b.share for b in brackets] == pytest.approx([budget / total for budget in pruner._trial_allocation_budgets])
    for bracket in brackets:
        min_resource, max_resource, rf = combo
        first = min_resource * rf**bracket.min_early_stopping_rate
        assert bracket.rungs[0] == first and bracket.rungs[-1] <= max_resource < bracket.rungs[-1] * rf


def test_float_rounding_of_the_bracket_count_is_optunas() -> None:
    # log(1000, 10) is 2.9999999999999996 in floating point: Optuna makes 3 brackets, not 4.
    assert len(hyperband_brackets(1, 1000, 10)) == 3 == initialised_pruner(1, 1000, 10)[0]._n_brackets


@pytest.mark.parametrize("combo", [(1, 9, 3), (1, 27, 3), (1, 10, 2)])
def test_bracket_of_each_trial_number_is_optunas(combo: tuple[int, int, int]) -> None:
    pruner, study = initialised_pruner(*combo)
    brackets = hyperband_brackets(*combo)
    for number in range(300):
        assert bracket_of_trial(study.study_name, number, brackets) == pruner._get_bracket_id(study, SimpleNamespace(number=number))


@pytest.mark.parametrize("combo, n_trials", [((1, 9, 3), 60), ((1, 10, 2), 60), ((3, 27, 3), 40)])
def test_real_study_prunes_only_at_the_brackets_rungs(combo: tuple[int, int, int], n_trials: int) -> None:
    """Each trial reports epochs 1..max with a constant, random quality, so ranks hold and trials get pruned."""
    min_resource, max_resource, rf = combo
    pruner = optuna.pruners.HyperbandPruner(min_resource, max_resource, rf)
    study = optuna.create_study(
        study_name=f"rungs-{min_resource}-{max_resource}-{rf}", direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        quality = trial.suggest_float("quality", 0.0, 1.0)
        for epoch in range(1, max_resource + 1):
            trial.report(quality + epoch * 1e-3, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return quality

    study.optimize(objective, n_trials=n_trials)
    brackets = hyperband_brackets(*combo)
    pruned_at: dict[int, set[int]] = {b.index: set() for b in brackets}
    for trial in study.get_trials():
        bracket = bracket_of_trial(study.study_name, trial.number, brackets)
        assert bracket == pruner._get_bracket_id(study, trial)
        if trial.state == TrialState.PRUNED:
            assert trial.last_step in brackets[bracket].rungs
            pruned_at[bracket].add(trial.last_step)
        else:
            assert trial.state == TrialState.COMPLETE and trial.last_step == max_resource
    assert len(pruned_at[0]) >= 2, pruned_at  # the busiest bracket pruned at more than one rung


def test_steady_state_cost_is_what_a_long_real_study_spends() -> None:
    """Late trials of a bracket (peers at every rung) cost what the formula says, within sampling noise."""
    combo = (1, 9, 3)
    pruner = optuna.pruners.HyperbandPruner(*combo)
    study = optuna.create_study(study_name="steady", direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial: optuna.Trial) -> float:
        quality = trial.suggest_float("quality", 0.0, 1.0)
        for epoch in range(1, 10):
            trial.report(quality, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return quality

    study.optimize(objective, n_trials=400)
    brackets = hyperband_brackets(*combo)
    by_bracket: dict[int, list[int]] = {b.index: [] for b in brackets}
    for trial in study.get_trials():
        by_bracket[bracket_of_trial(study.study_name, trial.number, brackets)].append(trial.last_step)
    late = by_bracket[0][30:]  # bracket 0, after its first 30 trials
    assert sum(late) / len(late) == pytest.approx(brackets[0].expected_epochs_per_trial, rel=0.15)
    assert set(by_bracket[2]) == {9}  # its only rung is the last epoch: every trial runs all 9


@pytest.mark.parametrize(
    "rungs, max_resource, rf, expected",
    [
        ((1, 3, 9), 9, 3, 1 + 2 / 3 + 6 / 9),
        ((3, 9), 9, 3, 3 + 6 / 3),
        ((9,), 9, 3, 9),
        ((1, 3, 9, 27), 27, 3, 3),
        ((1, 2, 4, 8), 10, 2, 1 + 1 / 2 + 2 / 4 + 4 / 8 + 2 / 16),
        ((4, 8), 10, 2, 4 + 4 / 2 + 2 / 4),
        ((), 5, 3, 5),
    ],
)
def test_expected_epochs_per_trial_closed_form(rungs, max_resource, rf, expected) -> None:
    assert expected_epochs_per_trial(rungs, max_resource, rf) == pytest.approx(expected)


def test_brackets_of_the_default_config() -> None:
    cfg = compose_config([])  # hyperband, min_resource 1, 9 epochs, reduction factor 3
    brackets = configured_brackets(_sweep(cfg))
    assert [b.rungs for b in brackets] == [(1, 3, 9), (3, 9), (9,)]
    assert [b.allocation_budget for b in brackets] == [9, 5, 3]
    assert [b.expected_epochs_per_trial for b in brackets] == pytest.approx([7 / 3, 5, 9])
    assert isinstance(make_pruner(_sweep(cfg)), optuna.pruners.HyperbandPruner)
    assert configured_brackets(_sweep(compose_config(["sweep.pruner=median"]))) == []


BUDGETS = [
    # overrides, worst-case epochs, expected epochs (by hand)
    (["sweep.pruner=none"], 180, 180),
    # shares 9/17, 5/17, 3/17 of 7/3, 5 and 9 epochs: 73/17 per trial
    (["sweep.pruner=hyperband"], 180, 20 * 73 / 17),
    (["sweep.pruner=hyperband", "train.epochs=27", "sweep.n_trials=49"], 49 * 27, 27 * 3 + 12 * 7 + 6 * 15 + 4 * 27),
    # 5 startup trials × 9 epochs + 15 × (half at epoch 1, half at 9)
    (["sweep.pruner=median"], 180, 5 * 9 + 15 * 5),
    (["sweep.pruner=median", "sweep.median.n_warmup_steps=3"], 180, 5 * 9 + 15 * 6),
    (["sweep.pruner=median", "sweep.median.n_startup_trials=0", "sweep.median.n_warmup_steps=0"], 180, 9 + 19 * 5),
    (["sweep.pruner=median", "sweep.median.n_warmup_steps=20"], 180, 180),
]


@pytest.mark.parametrize("overrides, worst, expected", BUDGETS)
def test_budget_arithmetic(overrides: list[str], worst: int, expected: float) -> None:
    cfg = compose_config(["train.epochs=9", "sweep.n_trials=20", *overrides])
    budget = _budget(cfg)
    assert budget.worst_case_epochs == worst
    assert budget.expected_epochs == pytest.approx(expected)
    assert budget.worst_case_seconds is None and budget.expected_seconds is None
    timed = _budget(cfg, epoch_seconds=2.5)
    assert timed.worst_case_seconds == pytest.approx(2.5 * worst)
    assert timed.expected_seconds == pytest.approx(2.5 * expected)


def test_a_grid_stops_when_exhausted_and_random_sampling_never_models() -> None:
    grid = _budget(compose_config(["search=lr_only", "search.lr=choice(0.001, 0.01)", "sweep.sampler=grid", "sweep.pruner=none"]))
    assert (grid.n_trials, grid.worst_case_epochs, grid.random_trials) == (2, 18, 0)
    assert "grid has 2 points" in grid.notes[0]
    assert _budget(compose_config(["sweep.sampler=random"])).random_trials == 20


def test_tpe_starts_up_over_the_whole_study_not_per_bracket() -> None:
    """Optuna 5.0's TPE models the space after n_startup_trials of the study, whatever their brackets."""
    cfg = compose_config(["train.epochs=27", "sweep.tpe.n_startup_trials=3"])
    budget = _budget(cfg)
    assert budget.random_trials == 3 and "not per bracket" in budget.notes[0]

    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=3, multivariate=True)
    pruner = make_pruner(_sweep(cfg))
    study = optuna.create_study(study_name="tpe-startup", direction="maximize", sampler=sampler, pruner=pruner)
    modelled: list[int] = []
    model = sampler._sample
    sampler._sample = lambda study_, trial, space: modelled.append(trial.number) or model(study_, trial, space)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.report(x, 1)
        return x

    study.optimize(objective, n_trials=6)
    assert modelled[0] == budget.random_trials == 3  # with 4 brackets, per-bracket startup would wait for 12
    brackets = configured_brackets(_sweep(cfg))
    peers = [bracket_of_trial(study.study_name, n, brackets) for n in range(3)].count(bracket_of_trial(study.study_name, 3, brackets))
    assert peers < 3


def test_describe_space_of_the_default_config() -> None:
    assert describe_space(parse_search_space(compose_config([]))) == [
        ("lr", "log-uniform [1e-04, 0.3]", "train.lr"),
        ("batch_size", "choice 16, 32, 64, 128", "train.batch_size"),
        ("weight_decay", "0 with p=0.2, else log-uniform [1e-06, 0.1]", "train.weight_decay"),
        ("warmup_frac", "uniform [0, 0.2]", "train.warmup_frac"),
    ]


def test_describe_space_conditional_and_integer_parameters() -> None:
    cfg = compose_config(["search=lr_schedule", "+search.layers=range(1, 4)", "+search.hidden=tag(log, int(interval(8, 256)))"])
    rows = {name: words for name, words, _ in describe_space(parse_search_space(cfg))}
    assert rows["cooldown_frac"] == "uniform [0.1, 0.4] when schedule=wsd"
    assert rows["step_epochs"] == "choice 2, 3, 4 when schedule=step"
    assert rows["layers"] == "integer [1, 3]"
    assert rows["hidden"] == "log-integer [8, 256]"


def test_preview_tables_render_space_brackets_and_budget() -> None:
    cfg = compose_config([])
    budget = _budget(cfg, epoch_seconds=30.0)
    tables = preview_tables(_sweep(cfg), parse_search_space(cfg), budget, configured_brackets(_sweep(cfg)))
    console = Console(record=True, width=200)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert [t.title.split(" ")[0] for t in tables] == ["search", "sampler", "Hyperband", "budget"]
    assert "log-uniform [1e-04, 0.3]" in text and "1, 3, 9" in text and "52.9%" in text
    assert "1h 30m" in text  # worst case: 180 epochs × 30 s
    assert "85.9" in text
    median = compose_config(["sweep.pruner=median"])
    assert len(preview_tables(_sweep(median), parse_search_space(median), _budget(median), [])) == 3


def test_measure_epoch_seconds_of_digits_mlp() -> None:
    cfg = compose_config(["train.device=cpu"])
    seconds = measure_epoch_seconds(objective=cfg.objective, train=cfg.train, epochs=2)
    assert 0 < seconds < 5 and math.isfinite(seconds)


def test_measure_epoch_seconds_needs_make_task() -> None:
    cfg = compose_config(["objective=custom", "objective.target=tests.objectives_for_tests:quadratic"])
    with pytest.raises(ConfigError, match="objective.target='tests.objectives_for_tests:quadratic': .*needs .*make_task"):
        measure_epoch_seconds(objective=cfg.objective, train=cfg.train)


def test_time_estimate_adds_the_service_cost() -> None:
    cfg = compose_config(["sweep.pruner=none", "sweep.n_trials=10", "train.epochs=3"])
    service = ServiceCost(startup_seconds=4.0, per_trial_seconds=0.1, close_seconds=3.0, stores="SQLite")
    budget = _budget(cfg, epoch_seconds=0.5, service=service)
    assert budget.worst_case_seconds == pytest.approx(30 * 0.5 + 4.0 + 10 * 0.1 + 3.0)
    assert budget.expected_seconds == budget.worst_case_seconds  # no pruner
    assert _budget(cfg, epoch_seconds=0.5).expected_seconds == pytest.approx(15.0)  # epochs only without it
    console = Console(record=True, width=250)
    for table in preview_tables(_sweep(cfg), parse_search_space(cfg), budget, []):
        console.print(table)
    assert "4.0 s start-up, 100 ms per trial, 3.0 s report" in console.export_text()


def test_service_cost_is_measured_with_the_real_service_on_throwaway_stores(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cost = measure_service_cost(compose_config(["train.epochs=3"]), n_trials=3)
    assert cost.startup_seconds > 0 and cost.per_trial_seconds > 0 and cost.close_seconds > 0
    assert cost.per_trial_seconds < 10 and list(tmp_path.iterdir()) == []  # nothing written where it ran


def _sweep(cfg) -> SweepSection:
    return Sections.of(cfg).sweep


def _budget(cfg, **timing) -> Budget:
    return estimate_budget(_sweep(cfg), parse_search_space(cfg), **timing)
