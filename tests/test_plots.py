"""Study figures from real studies: every figure for a pruned sweep on SQLite; edge cases skipped with a reason."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from sweeps.results.plots import (
    FIGURES,
    PlotSet,
    history_figure,
    intermediate_values_figure,
    lr_figure,
    lr_points,
    parallel_coordinates_figure,
    param_importances,
    write_study_plots,
)
from sweeps.search.study import OUTCOME_ATTR

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("plots")]  # one worker runs the module's shared sweep once

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCHS = 9
LR = FloatDistribution(1e-5, 1.0, log=True)
BATCH_SIZE = CategoricalDistribution([32, 64, 128])
WEIGHT_DECAY = FloatDistribution(0.0, 0.1)
MOMENTUM = FloatDistribution(0.8, 0.99)


def synthetic_objective(trial: optuna.Trial) -> float:
    """Accuracy peaks at lr=3e-3; lr > 0.3 diverges; trial 3 crashes; momentum only exists for sgd."""
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128])
    weight_decay = trial.suggest_float("weight_decay", 0.0, 0.1)
    trial.suggest_float("warmup_frac", 0.0, 0.2)
    if trial.suggest_categorical("optimizer", ["sgd", "adamw"]) == "sgd":
        trial.suggest_float("momentum", 0.8, 0.99)
    if lr > 0.3:
        trial.report(0.3, 0)
        trial.report(float("nan"), 1)
        trial.set_user_attr(OUTCOME_ATTR, "diverged")
        raise optuna.TrialPruned(f"diverged at lr={lr:.3g}")
    if trial.number == 3:
        trial.set_user_attr(OUTCOME_ATTR, "failed")
        raise RuntimeError("worker crashed")
    peak = 0.95 - 0.08 * (math.log10(lr) + 2.5) ** 2 - weight_decay + 0.0005 * batch_size / 32
    for epoch in range(EPOCHS):
        accuracy = peak * (1 - math.exp(-(epoch + 1) / 3))
        trial.report(accuracy, epoch)
        if trial.should_prune():
            trial.set_user_attr(OUTCOME_ATTR, "pruned")
            raise optuna.TrialPruned()
    trial.set_user_attr(OUTCOME_ATTR, "complete")
    return accuracy


@pytest.fixture(scope="module")
def sweep_study(tmp_path_factory: pytest.TempPathFactory) -> optuna.Study:
    """Seeded TPE + Hyperband on SQLite, with every outcome the figures distinguish."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tmp_path_factory.mktemp("study")
    study = optuna.create_study(
        storage=f"sqlite:///{folder}/optuna.db",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS, reduction_factor=3),
    )
    study.enqueue_trial({"lr": 0.5, "batch_size": 64, "weight_decay": 0.01, "warmup_frac": 0.1, "optimizer": "adamw"})
    study.optimize(synthetic_objective, n_trials=24, catch=(RuntimeError,))
    outcomes = {t.user_attrs.get(OUTCOME_ATTR) for t in study.trials}
    assert {"complete", "pruned", "diverged", "failed"} <= outcomes, outcomes  # the fixture covers every case
    return study


def trial(state: TrialState, lr: float | None = 1e-3, value: float | None = None, curve: tuple[float, ...] = (),
          outcome: str | None = None, **extra: float) -> FrozenTrial:
    """A finished trial as the sweeps runner leaves it; ``extra`` adds weight_decay / momentum / batch_size."""
    spaces = {"lr": LR, "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM, "batch_size": BATCH_SIZE}
    params = {"lr": lr, **extra} if lr is not None else dict(extra)
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={name: spaces[name] for name in params},
        intermediate_values=dict(enumerate(curve)),
        user_attrs={OUTCOME_ATTR: outcome or state.name.lower()},
    )


def study_of(*trials: FrozenTrial, direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    study.add_trials(trials)
    return study


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    assert path.stat().st_size > 10_000, f"{path} is {path.stat().st_size} bytes"


def test_sweep_study_writes_every_figure(sweep_study: optuna.Study, tmp_path: Path) -> None:
    plots = write_study_plots(sweep_study, tmp_path / "plots")
    assert list(plots.files) == list(FIGURES)
    for name, path in plots.files.items():
        assert path == tmp_path / "plots" / f"{name}.png"
        assert_png(path)
    if "html" in plots.skipped:  # plotly is optional
        assert plots.skipped == {"html": "plotly is not installed (pip install plotly)"}
        assert plots.html == {}
    else:
        assert plots.skipped == {}
        assert list(plots.html) == list(FIGURES)
        assert all("plotly" in p.read_text() for p in plots.html.values())
    assert set(plots.paths()) == {*plots.files.values(), *plots.html.values()}


def test_without_plotly_the_pngs_are_still_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # makes `import plotly` raise ImportError
    study = study_of(trial(TrialState.COMPLETE, value=0.8, curve=(0.5, 0.8)))
    plots = write_study_plots(study, tmp_path)
    assert plots.html == {} and "plotly is not installed" in plots.skipped["html"]
    assert {"optimization_history", "intermediate_values", "lr_vs_metric"} <= set(plots.files)
    assert not list(tmp_path.glob("*.html"))


EDGE_CASES = {  # case -> (trials, figures written, {skipped figure: part of its reason})
    "no trials": ((), set(), {
        "optimization_history": "no completed trials", "param_importances": "at least 2 completed trials, got 0",
        "parallel_coordinates": "no completed trials", "intermediate_values": "no trial reported",
        "lr_vs_metric": "param 'lr'"}),
    "all pruned": (
        [trial(TrialState.PRUNED, lr=10 ** -k, curve=(0.2, 0.3), outcome="pruned") for k in (2, 3, 4)]
        + [trial(TrialState.PRUNED, lr=0.9, curve=(0.1, math.nan), outcome="diverged")],
        {"intermediate_values", "lr_vs_metric"},
        {"optimization_history": "no completed trials", "param_importances": "got 0",
         "parallel_coordinates": "no completed trials"}),
    "one completed": (
        [trial(TrialState.COMPLETE, value=0.7, curve=(0.5, 0.7), weight_decay=0.01),
         trial(TrialState.PRUNED, lr=1e-4, curve=(0.2,), weight_decay=0.05)],
        {"optimization_history", "parallel_coordinates", "intermediate_values", "lr_vs_metric"},
        {"param_importances": "at least 2 completed trials, got 1"}),
    "single param": (
        [trial(TrialState.COMPLETE, lr=10 ** -k, value=0.9 - 0.1 * k) for k in (1, 2, 3, 4)],
        {"optimization_history", "parallel_coordinates", "lr_vs_metric"},
        {"param_importances": "at least 2 params", "intermediate_values": "no trial reported"}),
    "all equal values": (
        [trial(TrialState.COMPLETE, lr=10 ** -k, value=0.5, weight_decay=0.01 * k) for k in (1, 2, 3)],
        {"optimization_history", "parallel_coordinates", "lr_vs_metric"},
        {"param_importances": "same value", "intermediate_values": "no trial reported"}),
    "no lr param": (
        [trial(TrialState.COMPLETE, lr=None, value=0.1 * k, weight_decay=0.01 * k, batch_size=2 ** (4 + k)) for k in (1, 2, 3)],
        {"optimization_history", "param_importances", "parallel_coordinates"},
        {"intermediate_values": "no trial reported", "lr_vs_metric": "param 'lr'"}),
    "only failed": (
        [trial(TrialState.FAIL, outcome="failed"), trial(TrialState.FAIL)],
        set(),
        {"optimization_history": "no completed trials (of 2)", "lr_vs_metric": "param 'lr'"}),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_skip_with_a_reason(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)  # PNGs only: faster, and the same on every machine
    trials, written, reasons = EDGE_CASES[case]
    plots = write_study_plots(study_of(*trials), tmp_path)
    assert set(plots.files) == written
    assert set(plots.skipped) == set(FIGURES) - written | {"html"}
    for name, part in reasons.items():
        assert part in plots.skipped[name], (name, plots.skipped[name])
    for path in plots.files.values():
        assert_png(path)


def test_conditional_and_categorical_params_on_parallel_coordinates() -> None:
    trials = [
        trial(TrialState.COMPLETE, lr=1e-4, value=0.6, momentum=0.9, batch_size=32),
        trial(TrialState.COMPLETE, lr=1e-2, value=0.8, batch_size=128),  # no momentum: adamw
        trial(TrialState.COMPLETE, lr=1e-3, value=0.7, momentum=0.95, batch_size=64),
    ]
    ax = parallel_coordinates_figure(trials, optuna.study.StudyDirection.MAXIMIZE, "val_acc").axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["batch_size", "lr", "momentum", "val_acc"]
    lines = [line for line in ax.lines if len(line.get_xdata()) == 4]  # the trial lines, not the axes
    assert len(lines) == 3
    best = lines[-1].get_ydata()  # drawn last, on top; momentum absent -> a gap in its line
    assert best[0] == 1.0 and best[1] == 1.0 and np.isnan(best[2]) and best[3] == 1.0
    assert lines[0].get_ydata()[1] == 0.0 and lines[1].get_ydata()[1] == pytest.approx(0.5)  # log axis: 1e-3 mid
    labels = {t.get_text() for t in ax.texts}
    assert {"32", "64", "128", "0.0001", "0.001", "0.01"} <= labels


@pytest.mark.parametrize(("direction", "best_so_far"), [("maximize", [0.5, 0.5, 0.7, 0.7]), ("minimize", [0.5, 0.3, 0.3, 0.3])])
def test_history_best_so_far_follows_the_direction(direction: str, best_so_far: list[float]) -> None:
    trials = [trial(TrialState.COMPLETE, value=v) for v in (0.5, 0.3, 0.7, 0.6)]
    trials.insert(2, trial(TrialState.PRUNED, curve=(0.99,)))  # pruned values never count as best
    for number, t in enumerate(trials):
        t.number = number
    (step_line,) = history_figure(trials, optuna.study.StudyDirection[direction.upper()], "val_loss").axes[0].lines
    assert list(step_line.get_xdata()) == [0, 1, 3, 4]
    assert list(step_line.get_ydata()) == best_so_far


def test_intermediate_values_draw_one_line_per_trial_coloured_by_outcome(sweep_study: optuna.Study) -> None:
    trials = sweep_study.get_trials()
    ax = intermediate_values_figure(trials, "val_acc").axes[0]
    reported = {t.number: t for t in trials if t.intermediate_values}
    assert sorted(line.get_gid() for line in ax.lines) == sorted(f"trial {n}" for n in reported)
    colours = {}
    for line in ax.lines:
        outcome = reported[int(line.get_gid().split()[1])].user_attrs[OUTCOME_ATTR]
        colours.setdefault(outcome, set()).add(line.get_color())
    assert {"complete", "pruned", "diverged"} <= set(colours)
    assert all(len(c) == 1 for c in colours.values()) and len({next(iter(c)) for c in colours.values()}) == len(colours)
    assert {t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()} == set(colours)


def test_a_running_trial_is_drawn_as_running(tmp_path: Path) -> None:
    study = study_of(trial(TrialState.COMPLETE, value=0.8, curve=(0.5, 0.8), weight_decay=0.0))
    running = study.ask()
    running.suggest_float("lr", 1e-5, 1.0, log=True)
    running.report(0.4, 0)
    ax = intermediate_values_figure(study.get_trials(), "val_acc").axes[0]
    assert len(ax.lines) == 2
    assert any(t.get_text() == "running (1)" for t in ax.get_legend().get_texts())


def test_lr_points_use_the_last_reported_value_of_pruned_trials() -> None:
    trials = [
        trial(TrialState.COMPLETE, lr=1e-3, value=0.9, curve=(0.5, 0.9)),
        trial(TrialState.PRUNED, lr=1e-4, curve=(0.2, 0.4, math.nan), outcome="pruned"),
        trial(TrialState.PRUNED, lr=0.5, curve=(0.3, math.inf), outcome="diverged"),
        trial(TrialState.PRUNED, lr=1e-5, outcome="pruned"),  # pruned before any report: nothing to draw
        trial(TrialState.FAIL, lr=1e-2, curve=(0.6,), outcome="failed"),
    ]
    points = lr_points(trials)
    assert [(p.lr, p.value, p.outcome) for p in points] == [(1e-3, 0.9, "complete"), (1e-4, 0.4, "pruned"), (0.5, None, "diverged")]


def test_lr_figure_has_a_log_axis_and_every_outcome(sweep_study: optuna.Study) -> None:
    ax = lr_figure(lr_points(sweep_study.get_trials()), sweep_study.direction, "val_acc").axes[0]
    assert ax.get_xscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [label.split(":")[0].split(" (")[0] for label in labels] == ["complete", "pruned", "diverged", "best"]
    best = sweep_study.best_trial
    assert f"trial {best.number})" in labels[-1]


def test_importances_cover_the_shared_params(sweep_study: optuna.Study) -> None:
    importances = param_importances(sweep_study)
    assert set(importances) == {"lr", "batch_size", "weight_decay", "warmup_frac", "optimizer"}  # momentum is conditional
    assert sum(importances.values()) == pytest.approx(1.0)
    assert param_importances(sweep_study) == importances  # seeded fANOVA: same bars on every run


def test_multi_objective_study_is_refused(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(ValueError, match="2 objectives"):
        write_study_plots(study, tmp_path)


def test_plot_set_lists_every_file() -> None:
    plots = PlotSet(files={"a": Path("a.png")}, html={"a": Path("a.html")}, skipped={"b": "why"})
    assert plots.paths() == [Path("a.png"), Path("a.html")]
