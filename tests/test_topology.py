"""The docker-compose topology with the same processes started directly: PostgreSQL, an
``mlflow server`` on a PostgreSQL backend store, ``sweeps create`` and several ``sweeps worker``s.
One worker is killed mid-trial: the study still reaches its total and no run is left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import POSTGRES_URL, REPO_ROOT, free_port, run_cli, wait_for_health

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("topology")]  # one worker starts the module's server once


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` with one worker on its own PostgreSQL database, as in docker-compose.yml; one
    server for the module (its tests write to experiments of their own), started once."""
    database = f"sweeps_test_mlflow_{uuid.uuid4().hex[:12]}"
    backend = sqlalchemy.engine.make_url(POSTGRES_URL).set(database=database).render_as_string(hide_password=False)
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{database}"'))
    port = free_port()
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_for_health(url, 120):
            raise TimeoutError("mlflow server did not start")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


def test_workers_share_a_study_and_a_killed_worker_leaves_nothing_running(tmp_path: Path, postgres_database: str, mlflow_server: str) -> None:
    env = {"SWEEPS_STORAGE_URL": postgres_database, "MLFLOW_TRACKING_URI": mlflow_server, "SWEEPS_STUDY_NAME": "shared"}
    created = run_cli(
        "create", "storage=postgres", "tracking=server", "objective=custom", "objective.target=tests.objectives_for_tests:held",
        "train.epochs=3", "sweep.n_trials=6", "sweep.pruner=none", cwd=tmp_path, env=env,
    )
    assert created.returncode == 0, created.stderr
    worker_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    heartbeat = ["storage.heartbeat_interval=1", "storage.grace_period=3", "storage.reap_interval=1"]  # per worker, like the store URLs
    command = [sys.executable, "-m", "sweeps.cli", "worker", "storage=postgres", "tracking=server", *heartbeat]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    study = optuna.load_study(study_name="shared", storage=postgres_database)
    killed = None
    try:
        # Each first trial holds its last epoch until released (``held``), its worker's pid in holding/:
        # the worker killed is one that holds a RUNNING trial, whichever worker got to a trial first.
        by_pid = {w.pid: w for w in workers}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _holders(tmp_path, by_pid):
            assert all(w.poll() is None for w in workers), [w.communicate() for w in workers if w.poll() is not None]
            time.sleep(0.1)
        holders = _holders(tmp_path, by_pid)
        assert holders, "no worker reached the last epoch of a trial in 120 s"
        victim = holders[0]
        running = [t for t in study.get_trials() if t.state == TrialState.RUNNING and t.intermediate_values]
        assert running, [(t.number, t.state.name) for t in study.get_trials()]
        by_pid[victim].send_signal(signal.SIGKILL)  # dies mid-trial: its trial and run stay RUNNING for now
        by_pid[victim].wait(timeout=30)
        killed = time.monotonic()
    finally:
        # Release the survivors once the victim's heartbeat is older than the grace period (3 s): their
        # reaper runs as their held trials end, so it fails and re-queues the dead trial before the other
        # trials can fill the total without it (the database's clock, not one a test can inject).
        while killed is not None and time.monotonic() - killed < 4.5:
            time.sleep(0.1)
        (tmp_path / "release").touch()
    for worker in workers:
        if worker.pid == victim:
            continue
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    assert by_pid[victim].returncode == -signal.SIGKILL

    trials = study.get_trials()
    counted = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(counted) == 6, [(t.number, t.state.name) for t in trials]
    assert all(t.state != TrialState.RUNNING for t in trials)
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(lost) == 1 and any(t.params == lost[0].params for t in counted)  # the dead worker's trial was retried

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("shared")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    (parent,) = [r for r in runs if r.data.tags.get("sweeps.role") == "parent"]
    assert parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("sweeps.role") == "trial"]
    assert len(children) == len(trials)
    (reaped,) = [r for r in children if r.info.run_id == lost[0].user_attrs["mlflow_run_id"]]
    assert reaped.info.status == "FAILED" and reaped.data.tags["sweeps.outcome"] == "lost" and "sweeps.reaped" in reaped.data.tags


def _holders(folder: Path, workers: dict[int, subprocess.Popen]) -> list[int]:
    """Pids of workers inside a trial of the ``held`` objective (it writes ``holding/<pid>``)."""
    holding = folder / "holding"
    return sorted(int(p.name) for p in holding.iterdir() if int(p.name) in workers) if holding.is_dir() else []


def test_run_with_local_workers_reaches_the_total_exactly(tmp_path: Path, postgres_database: str, mlflow_server: str) -> None:
    done = run_cli(
        "run", f"storage.url={postgres_database}", f"tracking.uri={mlflow_server}", "sweep.workers=3", "sweep.n_trials=7", "train.epochs=3",
        "sweep.study_name=local", "train.threads=auto", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "7/7" in done.stdout
    trials = optuna.load_study(study_name="local", storage=postgres_database).get_trials()
    assert len(trials) == 7 and all(t.state.is_finished() for t in trials)
    client = MlflowClient(mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("local").experiment_id], max_results=100)
    assert sorted(r.data.tags["sweeps.role"] for r in runs) == ["parent"] + ["trial"] * 7
    assert all(r.info.status != "RUNNING" for r in runs)
    assert {r.data.params["train.threads"] for r in runs if r.data.tags["sweeps.role"] == "trial"} == {str(max(1, (os.cpu_count() or 1) // 3))}
