"""``sweeps studies`` and ``sweeps delete``: the studies of a store with counts and best, and a study
removed from both stores, after asking, so that a new study of the same name starts clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from sweeps.run.sweep import plan_sweep, run_sweep
from sweeps.search.studies import list_studies
from tests.conftest import run_cli, store_overrides

pytestmark = pytest.mark.integration


def cli_with_input(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli(*args, cwd=tmp_path, input=text)


@pytest.fixture
def two_studies(compose, tmp_path: Path):
    cfg = compose("search=lr_only", "sweep.study_name=s1", "sweep.n_trials=3", "train.epochs=1", "sweep.pruner=none")
    result = run_sweep(plan_sweep(cfg))
    plain = optuna.create_study(study_name="plain", storage=cfg.storage.url, direction="minimize")  # not made by sweeps
    plain.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=2)
    return cfg, result


def test_studies_lists_counts_and_best(two_studies, tmp_path: Path) -> None:
    cfg, result = two_studies
    rows = {row.name: row for row in list_studies(cfg.storage.url)}
    assert set(rows) == {"s1", "plain"}
    s1 = rows["s1"]
    assert (s1.finished, s1.target, s1.metric, s1.direction) == (3, 3, "val_acc", "maximize")
    assert s1.outcomes["complete"] == 3 and s1.best_value == pytest.approx(result.study.best_value) and s1.best_trial == result.study.best_trial.number
    assert rows["plain"].best_value == pytest.approx(min(t.value for t in optuna.load_study(study_name="plain", storage=cfg.storage.url).trials))
    done = run_cli("studies", *store_overrides(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s1" in done.stdout and "3/3" in done.stdout and "plain" in done.stdout


def test_studies_never_creates_a_store(tmp_path: Path) -> None:
    done = run_cli("studies", *store_overrides(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "storage.url" in done.stderr
    assert not (tmp_path / "optuna.db").exists()


def test_delete_asks_then_removes_both_stores_and_the_name_starts_clean(two_studies, compose, tmp_path: Path) -> None:
    cfg, result = two_studies
    client = MlflowClient(cfg.tracking.uri)
    args = ("delete", "s1", *store_overrides(tmp_path))

    refused = cli_with_input(tmp_path, "n\n", *args)
    assert refused.returncode == 1 and "nothing deleted" in refused.stdout
    assert "Optuna study s1 (3 trials)" in refused.stdout and "MLflow experiment s1 (4 runs)" in refused.stdout
    assert {r.name for r in list_studies(cfg.storage.url)} == {"s1", "plain"}

    done = cli_with_input(tmp_path, "y\n", *args)
    assert done.returncode == 0, done.stderr
    assert {r.name for r in list_studies(cfg.storage.url)} == {"plain"}
    assert client.get_experiment_by_name("s1") is None
    unknown = run_cli("delete", "s1", "--yes", *store_overrides(tmp_path), cwd=tmp_path)
    assert unknown.returncode == 2 and "study='s1': no such study" in unknown.stderr and "plain" in unknown.stderr

    again = run_sweep(plan_sweep(compose("search=lr_only", "sweep.study_name=s1", "sweep.n_trials=1", "train.epochs=1")))
    experiment = client.get_experiment_by_name("s1")
    assert len(client.search_runs([experiment.experiment_id])) == 2  # the new parent and its one trial, none of the old
    assert len(again.study.trials) == 1


def test_timeout_stops_starting_trials_and_ends_the_sweep_finished(compose, tmp_path: Path) -> None:
    cfg = compose("objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "sweep.n_trials=100000",
                  "sweep.timeout=1.5", "sweep.study_name=timed")  # fmt: skip
    result = run_sweep(plan_sweep(cfg))
    assert 1 <= len(result.study.trials) < 100000 and all(t.state.is_finished() for t in result.study.trials)
    parent = MlflowClient(cfg.tracking.uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and "sweeps.timeout_reached" in parent.data.tags
    assert parent.data.params["timeout"] == "1.5"


@pytest.mark.parametrize("value", ["0", "-5", "abc"])
def test_timeout_must_be_positive_seconds(tmp_path: Path, value: str) -> None:
    done = run_cli("run", *store_overrides(tmp_path), f"sweep.timeout={value}", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("sweeps: error: sweep.timeout=") and "seconds" in done.stderr
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()
