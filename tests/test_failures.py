"""Failures are visible and bounded: a failed trial's error is in the console, in status and in
--json; sweep.max_failures failed trials in a row stop the sweep with exit 1 and the error; a double
Ctrl-C still closes the parent run and prints the interrupted line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO_ROOT, run_cli, store_overrides
from tests.test_sweep import parent_run, wait_for_first_report

pytestmark = pytest.mark.integration

FAILING = ["objective=custom", "objective.target=tests.failing_objectives:missing_data", "search=lr_only", "sweep.pruner=none", "train.epochs=2"]
ERROR = "FileNotFoundError: no dataset at /data/digits.npz"


def test_trials_failing_in_a_row_stop_the_sweep_with_exit_1_and_their_error(tmp_path: Path) -> None:
    done = run_cli("run", *store_overrides(tmp_path), *FAILING, "sweep.n_trials=10", "sweep.max_failures=3", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == f"sweeps: error: 3 trials failed in a row (sweep.max_failures=3); last error: {ERROR}"
    study = optuna.load_study(study_name="sweeps", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.get_trials()) == 3
    parent = parent_run(tmp_path, "sweeps")
    assert parent.info.status == "FAILED" and ERROR in parent.data.tags["sweeps.error"]

    status = run_cli("status", "sweeps", *store_overrides(tmp_path), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert [row["error"] for row in json.loads(status.stdout)["trials"]] == [ERROR] * 3
    table = run_cli("status", "sweeps", *store_overrides(tmp_path), cwd=tmp_path, env={"COLUMNS": "200"})
    assert "error" in table.stdout and "FileNotFoundError" in table.stdout


def test_failed_trials_are_listed_with_their_error_after_the_sweep(tmp_path: Path) -> None:
    done = run_cli("run", *store_overrides(tmp_path), *FAILING, "sweep.n_trials=2", "sweep.max_failures=0", cwd=tmp_path, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr  # max_failures=0: never stop; the total is reached
    assert f"failed: trials 0, 1 (2): {ERROR}" in done.stdout


def test_a_double_ctrl_c_closes_the_parent_run_and_says_so(tmp_path: Path) -> None:
    args = ["run", *store_overrides(tmp_path), "objective=custom", "objective.target=tests.objectives_for_tests:slow", "train.epochs=4",
            "sweep.n_trials=2", "sweep.pruner=none"]
    sweep = subprocess.Popen([sys.executable, "-m", "sweeps.cli", *args], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_first_report(f"sqlite:///{tmp_path}/optuna.db")
    sweep.send_signal(signal.SIGINT)
    import time

    time.sleep(0.3)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130, stderr
    assert "sweeps: interrupted; re-run the same command to continue the study" in stderr and "Traceback" not in stderr
    parent = parent_run(tmp_path, "sweeps")
    assert parent.info.status == "KILLED"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    running = client.search_runs([parent.info.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert running == [] or all(r.data.tags.get("sweeps.role") == "trial" for r in running)
