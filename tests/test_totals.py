"""The study's total is stored with it: raising ``sweep.n_trials`` (``sweeps run`` or ``sweeps
extend``) updates it, running workers take it up before their next trial, status tells the truth."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from sweeps.run.sweep import open_sweep, plan_sweep, set_total, stored_total, work
from sweeps.search.study import finished_count
from tests.conftest import run_cli, store_overrides

pytestmark = pytest.mark.integration

INSTANT = ["objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "search=lr_only", "sweep.pruner=none", "train.epochs=2"]


def test_a_worker_takes_up_a_total_raised_while_it_runs(compose, tmp_path: Path) -> None:
    cfg = compose(*INSTANT, "sweep.n_trials=2")
    sweep = open_sweep(plan_sweep(cfg))
    elsewhere = optuna.load_study(study_name=str(cfg.sweep.study_name), storage=str(cfg.storage.url))

    def raise_total_during_first_trial(study, trial) -> None:  # what `sweeps extend` does from another shell
        if trial.number == 0:
            set_total(elsewhere, 5)

    ran, aborted = work(sweep, callbacks=[raise_total_during_first_trial])
    assert aborted is None
    assert (ran, finished_count(sweep.study), stored_total(sweep.study)) == (5, 5, 5)


def test_run_with_a_higher_total_and_extend_update_the_stored_total(tmp_path: Path) -> None:
    common = [*store_overrides(tmp_path), *INSTANT, "sweep.study_name=t1"]
    first = run_cli("run", *common, "sweep.n_trials=2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    raised = run_cli("run", *common, "sweep.n_trials=3", cwd=tmp_path)
    assert raised.returncode == 0, raised.stderr
    status = run_cli("status", "t1", *store_overrides(tmp_path), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["n_trials"] == 3 and len(json.loads(status.stdout)["trials"]) == 3

    extended = run_cli("extend", "t1", "5", *store_overrides(tmp_path), cwd=tmp_path)
    assert extended.returncode == 0, extended.stderr
    assert "total 3 -> 5" in extended.stdout
    study = optuna.load_study(study_name="t1", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert stored_total(study) == 5 and finished_count(study) == 3

    lowered = run_cli("extend", "t1", "2", *store_overrides(tmp_path), cwd=tmp_path)
    assert lowered.returncode == 2 and lowered.stderr.count("\n") == 1
    assert "already has 3 finished trials" in lowered.stderr and stored_total(study) == 5
