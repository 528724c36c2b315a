"""Diagnosis where users see it: tags on each trial's run and Optuna user attrs, the sweep report on
the parent run, and diverged trials costing only the steps they ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sweeps.config.compose import compose_config
from sweeps.results.curve_diagnosis import VERDICTS
from sweeps.run.sweep import plan_sweep, run_sweep
from tests.conftest import copy_stores, run_cli, store_overrides

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("diagnosis_sweep")]  # one worker runs the module's shared sweep once


# LR far too wide at the top: AdamW on digits blows up above ~0.1
WIDE = ["search=lr_only", "search.lr=tag(log, interval(1e-3, 30))", "sweep.sampler=random", "sweep.pruner=none",
        "sweep.n_trials=10", "train.epochs=4", "tracking.log_steps=true", "sweep.study_name=wide"]


@pytest.fixture(scope="module")
def wide_template(tmp_path_factory: pytest.TempPathFactory):
    """One real sweep for the whole module; each test gets its own copy of the stores."""
    folder = tmp_path_factory.mktemp("wide")
    return folder, run_sweep(plan_sweep(compose_config([*store_overrides(folder), *WIDE])))


@pytest.fixture
def wide_sweep(wide_template, tmp_path: Path):
    """(cfg, result) of the wide sweep, its stores copied into tmp_path."""
    folder, result = wide_template
    copy_stores(folder, tmp_path)
    return compose_config([*store_overrides(tmp_path), *WIDE]), result


def test_every_trial_carries_its_verdict_in_both_stores(wide_sweep) -> None:
    cfg, result = wide_sweep
    client = MlflowClient(cfg.tracking.uri)
    for trial in result.study.trials:
        verdict = trial.user_attrs["diagnosis"]
        detail = trial.user_attrs["diagnosis_detail"]
        assert verdict in VERDICTS and detail["advice"]
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.data.tags["diagnosis"] == verdict
        assert run.data.tags["diagnosis.advice"] == detail["advice"][:500]
        assert all(f"{key}=" in run.data.tags["diagnosis.evidence"] for key in list(detail["evidence"])[:2])


def test_too_wide_range_reports_divergence_a_stable_window_and_the_bound_to_change(wide_sweep) -> None:
    cfg, result = wide_sweep
    report = result.report.diagnosis
    assert report.counts["diverged"] >= 1
    best_lr = result.best.params["lr"]
    low, high = report.stable_window
    assert low <= best_lr <= high
    assert report.divergence_boundary is not None and best_lr < report.divergence_boundary
    assert any("search.lr.high" in line for line in report.recommendations)
    client = MlflowClient(cfg.tracking.uri)
    parent = client.get_run(result.parent_run_id)
    assert "search.lr.high" in parent.data.tags["sweeps.diagnosis.recommendation"]
    files = {a.path for a in client.list_artifacts(result.parent_run_id, "diagnosis")}
    assert files == {"diagnosis/report.md", "diagnosis/lr_diagnosis.png"}
    for trial in result.study.trials:  # a verdict the sweep changed is on the trial's run too
        tags = client.get_run(trial.user_attrs["mlflow_run_id"]).data.tags
        assert tags.get("diagnosis.sweep") == report.reread_verdicts.get(trial.number)


def test_a_diverged_trial_costs_only_the_steps_it_ran(wide_sweep) -> None:
    cfg, result = wide_sweep
    client = MlflowClient(cfg.tracking.uri)
    diverged = [t for t in result.study.trials if t.user_attrs.get("sweeps.outcome") == "diverged"]
    assert diverged
    for trial in diverged:
        steps = client.get_metric_history(trial.user_attrs["mlflow_run_id"], "train_loss_step")
        assert len(steps) == trial.user_attrs["diverged_at_step"] + 1  # it stopped at that step
        assert trial.user_attrs["epochs"] < cfg.train.epochs


def test_diagnose_command_prints_the_report(wide_sweep, tmp_path: Path) -> None:
    done = run_cli("diagnose", "wide", *store_overrides(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "divergence boundary" in done.stdout and "stable window" in done.stdout and "search.lr.high" in done.stdout
