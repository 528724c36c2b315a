"""The LR range test on the real objectives, in MLflow, and seeding a sweep (lr_find=auto)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from sweeps.config.sections import Sections
from sweeps.lr.runner import record_range_test, run_range_test
from sweeps.run.sweep import plan_sweep, run_sweep
from sweeps.track.tracker import SweepTracker
from tests.conftest import run_cli, store_overrides

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("objective, best_lr", [("digits_mlp", 1e-2), ("tiny_transformer", 1e-2)])
def test_range_test_on_real_objectives_brackets_a_good_lr(compose, objective: str, best_lr: float) -> None:
    """The edge lies above a good LR and the suggested window contains it (good LRs measured by hand:
    digits_mlp trains to 0.96 at 1e-2, tiny_transformer to 0.85 at 1e-2, with AdamW)."""
    report = _range_test(compose(f"objective={objective}", "lr_find.steps=60", "lr_find.lr_min=1e-6"))
    result, suggestion = report.result, report.result.suggestion
    assert result.stopped_early and suggestion.diverged
    assert result.lrs[0] == pytest.approx(1e-6)
    assert suggestion.steepest < suggestion.edge
    assert report.low < best_lr < report.high
    assert report.low == pytest.approx(suggestion.steepest / 10) and report.high == pytest.approx(suggestion.min_loss)


def test_range_test_is_recorded_as_an_mlflow_run(compose, tmp_path: Path) -> None:
    cfg = compose("lr_find.steps=40")
    report = _range_test(cfg)
    tracker = SweepTracker(cfg.tracking.uri, "probe", cfg.tracking.artifact_location)
    run_id, plot = record_range_test(tracker, report, plot_dir=tmp_path)
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["sweeps.role"] == "lr_find"
    assert float(run.data.params["lr_find.edge"]) == pytest.approx(report.result.suggestion.edge, rel=1e-5)
    history = tracker.client.get_metric_history(run_id, "smoothed_loss")
    assert len(history) == report.result.steps_run
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [a.path for a in tracker.client.list_artifacts(run_id)] == ["lr_find.png"]


def test_lr_find_command_prints_suggestions_and_saves_the_plot(tmp_path: Path) -> None:
    done = run_cli("lr-find", *store_overrides(tmp_path), "lr_find.steps=40", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "steepest" in done.stdout and "edge" in done.stdout and "search.lr=" in done.stdout
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000


def test_lr_find_auto_sets_the_lr_bounds_once_per_study(compose, tmp_path: Path) -> None:
    cfg = compose("lr_find=auto", "lr_find.steps=40", "sweep.n_trials=3", "train.epochs=2")
    result = run_sweep(plan_sweep(cfg))
    bounds = result.study.user_attrs["lr_find"]
    assert bounds["search_low"] < bounds["search_high"]
    assert all(bounds["search_low"] <= t.params["lr"] <= bounds["search_high"] for t in result.study.trials)
    client = MlflowClient(cfg.tracking.uri)
    parent = client.get_run(result.parent_run_id)
    assert float(parent.data.tags["sweeps.lr_find.search_high"]) == pytest.approx(bounds["search_high"], rel=1e-5)
    assert "lr_find.png" in {a.path for a in client.list_artifacts(result.parent_run_id)}

    cfg.sweep.n_trials = 4  # resume: the same bounds, no second range test
    run_sweep(plan_sweep(cfg))
    experiment = client.get_experiment_by_name(cfg.sweep.study_name)
    assert len(client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'lr_find'")) == 1
    study = optuna.load_study(study_name=cfg.sweep.study_name, storage=cfg.storage.url)
    assert len(study.trials) == 4 and study.trials[3].params["lr"] <= bounds["search_high"]


def test_lr_find_auto_needs_an_objective_with_a_task(tmp_path: Path) -> None:
    done = run_cli(
        "run", *store_overrides(tmp_path), "lr_find=auto", "objective=custom", "objective.target=tests.objectives_for_tests:quadratic", cwd=tmp_path
    )
    assert done.returncode == 2
    assert "objective.target='tests.objectives_for_tests:quadratic': the LR range test needs" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_schedule_search_samples_each_schedules_knobs_only_for_it(compose, tmp_path: Path) -> None:
    cfg = compose("search=lr_schedule", "sweep.sampler=random", "sweep.n_trials=8", "train.epochs=2", "sweep.pruner=none")
    result = run_sweep(plan_sweep(cfg))
    client = MlflowClient(cfg.tracking.uri)
    knobs = {"wsd": {"cooldown_frac", "decay_shape"}, "onecycle": {"pct_start"}, "step": {"gamma", "step_epochs"}}
    all_knobs = set().union(*knobs.values())
    for trial in result.study.trials:
        schedule = trial.params["schedule"]
        assert set(trial.params) & all_knobs == knobs.get(schedule, set())
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.params["train.schedule"] == schedule
    assert len({t.params["schedule"] for t in result.study.trials}) >= 3


def test_search_bounds_rules() -> None:
    from sweeps.errors import ConfigError
    from sweeps.lr.finder import Suggestion, search_bounds

    s = Suggestion(steepest=0.02, min_loss=0.2, edge=0.9, diverged=True)
    assert search_bounds(s) == pytest.approx((0.002, 0.2))
    assert search_bounds(s, 10, 2, "edge") == pytest.approx((0.002, 0.45))
    assert search_bounds(s, 3, 1 / 3, "steepest") == pytest.approx((0.02 / 3, 0.06))  # centred on the steepest LR
    assert search_bounds(Suggestion(None, 0.2, 0.9, True)) == pytest.approx((0.002, 0.2))  # two decades below
    with pytest.raises(ConfigError, match="lr_find.high_from='peak'"):
        search_bounds(s, high_from="peak")


def test_lr_find_hint_repeats_the_overrides_and_keeps_an_existing_plot(tmp_path: Path) -> None:
    (tmp_path / "lr_find.png").write_bytes(b"mine")
    done = run_cli("lr-find", *store_overrides(tmp_path), "lr_find.steps=40", "train.optimizer=sgd", "objective.hidden=32", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "lr_find.png").read_bytes() == b"mine"  # never overwritten
    assert (tmp_path / "lr_find-2.png").stat().st_size > 10_000 and "lr_find.png exists: kept" in done.stdout
    hint = next(line for line in done.stdout.splitlines() if line.startswith("use it: "))
    assert "train.optimizer=sgd objective.hidden=32 'search.lr=tag(log, interval(" in hint and "lr_find.steps" not in hint
    assert "search.lr bounds: [steepest/10, min_loss]" in done.stdout  # the rule the bounds come from
    assert "too high to train at" not in done.stdout  # the min-loss LR is the default upper bound


def test_lr_find_auto_prints_its_readings_and_bounds(tmp_path: Path) -> None:
    done = run_cli("run", *store_overrides(tmp_path), "lr_find=auto", "lr_find.steps=40", "sweep.n_trials=2", "train.epochs=1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("LR range test: "))
    study = optuna.load_study(study_name="sweeps", storage=f"sqlite:///{tmp_path}/optuna.db")
    found = study.user_attrs["lr_find"]
    assert f"steepest {found['steepest']:.3g}" in line and f"search.lr {found['search_low']:.3g} – {found['search_high']:.3g}" in line


def _range_test(cfg):
    return run_range_test(objective=cfg.objective, train=cfg.train, settings=Sections.of(cfg).lr_find)
