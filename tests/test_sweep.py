"""Sweeps through the public verbs with real stores: failures, divergence, interrupts and killed workers
leave both Optuna and MLflow telling the truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.run.sweep import plan_sweep, run_sweep
from tests.conftest import REPO_ROOT, run_cli, store_overrides

pytestmark = pytest.mark.integration


def runs_by_trial(tmp_path: Path, study_name: str) -> dict[int, object]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(study_name)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'trial'", max_results=1000)
    return {int(r.data.tags["sweeps.trial_number"]): r for r in runs}


def parent_run(tmp_path: Path, study_name: str):
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name(study_name)
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'parent'")
    return parent


def test_failed_trials_are_recorded_not_fatal(compose, tmp_path: Path) -> None:
    cfg = compose("objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "sweep.n_trials=8", "sweep.pruner=none")
    result = run_sweep(plan_sweep(cfg))
    trials = result.study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 8 and failed, "batch_size=16 trials must fail"
    assert all(t.params["batch_size"] == 16 for t in failed)
    runs = runs_by_trial(tmp_path, cfg.sweep.study_name)
    for trial in trials:
        run = runs[trial.number]
        if trial.state == TrialState.FAIL:
            assert run.info.status == "FAILED"
            assert run.data.tags["sweeps.error"] == "RuntimeError: batch_size 16 is not supported by this objective"
        else:
            assert run.info.status == "FINISHED"
    assert parent_run(tmp_path, cfg.sweep.study_name).info.status == "FINISHED"


def test_too_high_lr_diverges_as_pruned_with_step_and_lr(compose, tmp_path: Path) -> None:
    cfg = compose("search=lr_only", "search.lr=tag(log, interval(1e5, 1e7))", "train.optimizer=sgd", "sweep.n_trials=2", "sweep.pruner=none")
    result = run_sweep(plan_sweep(cfg))
    runs = runs_by_trial(tmp_path, cfg.sweep.study_name)
    for trial in result.study.get_trials():
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["sweeps.outcome"] == "diverged"
        run = runs[trial.number]
        assert run.info.status == "FINISHED"  # the search working, not a broken run: the outcome tag says why
        assert run.data.tags["sweeps.outcome"] == "diverged"
        diverged_at = int(run.data.tags["sweeps.diverged_at_step"])
        assert diverged_at < 23  # within the first epoch
        assert float(run.data.tags["sweeps.diverged_lr"]) > 0
        # no epoch finished, yet the run shows the training loss up to the blow-up
        losses = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(run.info.run_id, "train_loss_step")
        assert losses and 0 == min(m.step for m in losses) and max(m.step for m in losses) <= diverged_at
    assert result.counts["diverged"] == 2


def test_metric_never_reported_stops_the_sweep_with_a_clear_message(tmp_path: Path) -> None:
    done = run_cli(
        "run", *store_overrides(tmp_path), "objective=custom", "objective.target=tests.objectives_for_tests:wrong_metric", "sweep.n_trials=5", cwd=tmp_path
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "sweeps: error: sweep.metric='val_acc': not reported by the objective, which reported: accuracy"
    study = optuna.load_study(study_name="sweeps", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.get_trials()) == 1


def test_interrupt_ends_the_trial_as_killed_and_resume_reaches_the_total(compose, tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "interrupt-now"
    marker.touch()
    monkeypatch.setenv("SWEEPS_TEST_INTERRUPT_MARKER", str(marker))
    cfg = compose("objective=custom", "objective.target=tests.objectives_for_tests:interrupt_third_trial", "sweep.n_trials=3", "sweep.pruner=none")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan_sweep(cfg))
    trial, retry = optuna.load_study(study_name="sweeps", storage=cfg.storage.url).get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["sweeps.outcome"] == "interrupted"
    assert retry.state == TrialState.WAITING
    assert runs_by_trial(tmp_path, "sweeps")[0].info.status == "KILLED"
    assert parent_run(tmp_path, "sweeps").info.status == "KILLED"

    result = run_sweep(plan_sweep(cfg))
    trials = result.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["sweeps.retry_of"] == 0  # re-queued
    assert parent_run(tmp_path, "sweeps").info.status == "FINISHED"


def wait_for_first_report(storage: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name="sweeps", storage=storage).get_trials()
        except Exception:
            trials = []
        if trials and trials[0].intermediate_values:
            return
        time.sleep(0.2)
    raise TimeoutError("no trial reported")


def test_sigterm_ends_the_trial_at_the_next_epoch_requeues_it_and_exits_143(tmp_path: Path) -> None:
    args = ["run", *store_overrides(tmp_path), "objective=custom", "objective.target=tests.objectives_for_tests:slow", "train.epochs=3", "sweep.n_trials=2", "sweep.pruner=none"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_first_report(f"sqlite:///{tmp_path}/optuna.db")
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 143, stderr
    assert "stopped by SIGTERM" in stderr
    study = optuna.load_study(study_name="sweeps", storage=f"sqlite:///{tmp_path}/optuna.db")
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and first.user_attrs["sweeps.outcome"] == "interrupted"
    assert retry.state == TrialState.WAITING and retry.system_attrs["fixed_params"] == first.params
    run = runs_by_trial(tmp_path, "sweeps")[0]
    assert run.info.status == "KILLED" and "SIGTERM" in run.data.tags["sweeps.error"]
    assert parent_run(tmp_path, "sweeps").info.status == "KILLED"


def test_killed_worker_leaves_no_run_lying_running(tmp_path: Path) -> None:
    args = [
        "run", *store_overrides(tmp_path), "objective=custom", "objective.target=tests.objectives_for_tests:slow",
        "train.epochs=3", "sweep.n_trials=2", "sweep.pruner=none", "storage.heartbeat_interval=1", "storage.grace_period=2",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    wait_for_first_report(storage)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert runs_by_trial(tmp_path, "sweeps")[0].info.status == "RUNNING"  # what a dead worker leaves
    time.sleep(2.5)  # past the heartbeat grace period

    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="sweeps", storage=storage).get_trials()
    assert trials[0].state == TrialState.FAIL
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert trials[1].params == trials[0].params  # the dead worker's trial was retried
    runs = runs_by_trial(tmp_path, "sweeps")
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["sweeps.outcome"] == "lost"
    assert "sweeps.reaped" in runs[0].data.tags
    assert all(run.info.status != "RUNNING" for run in runs.values())


def test_study_on_postgresql_resumes_to_its_total(tmp_path: Path, postgres_database: str) -> None:
    args = ["run", *store_overrides(tmp_path)[1:], "storage=postgres", "sweep.n_trials=4", "train.epochs=3", "sweep.study_name=pg"]
    done = run_cli(*args, cwd=tmp_path, env={"SWEEPS_STORAGE_URL": postgres_database})
    assert done.returncode == 0, done.stderr
    done = run_cli(*args[:-3], "sweep.n_trials=5", *args[-2:], cwd=tmp_path, env={"SWEEPS_STORAGE_URL": postgres_database})
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="pg", storage=postgres_database)
    assert len(study.get_trials()) == 5 and all(t.state.is_finished() for t in study.get_trials())
    assert len(runs_by_trial(tmp_path, "pg")) == 5
