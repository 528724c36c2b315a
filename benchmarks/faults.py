"""Fault drill: the shared topology under the faults a cluster sees, with the figures printed.

PostgreSQL (a fresh database for the study and one for MLflow) + an ``mlflow server`` on it + a
study created with ``sweeps create`` + 3 ``sweeps worker`` processes on trials of ~3 s. Then, while
they run: worker 0 is SIGKILLed mid-trial, every connection to the study's database is terminated
(``pg_terminate_backend``), the total is raised with ``sweeps extend``, worker 1 is SIGKILLed
mid-trial, connections are terminated again. The survivor must finish the study alone.

Checked and printed: the study ends with exactly the raised total of counted trials, all counted
trials drew distinct params, no trial is RUNNING in Optuna and no run RUNNING in MLflow (after
the survivor's exit, and after one more ``sweeps worker`` start, which reaps what dead workers
left), the survivor exited 0 (no worker died of the connection drops), and how long it all took.
Numbers go to ``benchmarks/results/faults.json``.

    .venv/bin/python benchmarks/faults.py [--trials 18] [--raised 21] [--epochs 4]

Needs a PostgreSQL server that lets the test role create databases (SWEEPS_TEST_POSTGRES_URL,
default postgresql+psycopg://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import requests
import sqlalchemy
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweeps.search.db_retry import ReconnectingStorage  # noqa: E402
from sweeps.search.study import counts_toward_total  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("SWEEPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
HEARTBEAT = ["storage.heartbeat_interval=1", "storage.grace_period=4", "storage.reap_interval=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def terminate_connections(admin: sqlalchemy.engine.Engine, database: str) -> int:
    with admin.connect() as connection:
        return len(connection.execute(
            sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
            {"db": database}).all())


def running_trial_of(study: optuna.Study, reported: bool = True) -> bool:
    return any(t.state == TrialState.RUNNING and (t.intermediate_values or not reported) for t in study.get_trials(deepcopy=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=18)
    parser.add_argument("--raised", type=int, default=21)
    parser.add_argument("--epochs", type=int, default=4, help="one-second epochs per trial")
    args = parser.parse_args()

    suffix = uuid.uuid4().hex[:8]
    names = {"optuna": f"sweeps_faults_{suffix}", "mlflow": f"sweeps_faults_{suffix}_mlflow"}
    admin = sqlalchemy.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        for name in names.values():
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    urls = {k: sqlalchemy.engine.make_url(ADMIN_URL).set(database=v).render_as_string(hide_password=False) for k, v in names.items()}
    work = Path(tempfile.mkdtemp(prefix="sweeps-faults-"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--artifacts-destination", str(work / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env={**os.environ, "MLFLOW_BACKEND_STORE_URI": urls["mlflow"], "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    tracking = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SWEEPS_STORAGE_URL": urls["optuna"], "MLFLOW_TRACKING_URI": tracking, "SWEEPS_STUDY_NAME": "faults"}
    sweeps = [sys.executable, "-m", "sweeps.cli"]
    workers: list[subprocess.Popen] = []
    events: list[str] = []
    started = time.monotonic()

    def log(event: str) -> None:
        events.append(f"{time.monotonic() - started:6.1f} s  {event}")
        print(events[-1], flush=True)

    try:
        wait_until(lambda: _healthy(tracking), 120, "mlflow server did not start")
        created = subprocess.run([*sweeps, "create", "storage=postgres", "tracking=server", "objective=custom",
                                  "objective.target=tests.objectives_for_tests:slow", f"train.epochs={args.epochs}", "sweep.pruner=none",
                                  f"sweep.n_trials={args.trials}", "sweep.sampler=random"], cwd=work, env=env, capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        log(f"study created: {args.trials} trials of {args.epochs} one-second epochs, 3 workers")
        logs = [open(work / f"worker-{i}.log", "w") for i in range(3)]
        workers = [subprocess.Popen([*sweeps, "worker", "storage=postgres", "tracking=server", *HEARTBEAT], cwd=work, env=env,
                                    stdout=logs[i], stderr=subprocess.STDOUT, start_new_session=True) for i in range(3)]
        observer = ReconnectingStorage(urls["optuna"], engine_kwargs={"pool_pre_ping": True})  # this script survives the drops too
        study = optuna.load_study(study_name="faults", storage=observer)
        wait_until(lambda: running_trial_of(study), 180, "no trial started")
        os.kill(workers[0].pid, signal.SIGKILL)
        log("worker 0 SIGKILLed mid-trial")
        log(f"terminated {terminate_connections(admin, names['optuna'])} connections to the study's database")
        extend = subprocess.Popen([*sweeps, "extend", "faults", str(args.raised), "storage=postgres"], cwd=work, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)  # a new process: it pays the imports while the workers run
        out, err = extend.communicate(timeout=300)
        assert extend.returncode == 0, err
        log(f"total raised {args.trials} -> {args.raised} with sweeps extend, {sum(counts_toward_total(t) for t in study.get_trials())} trials finished by then")
        wait_until(lambda: running_trial_of(study), 120, "no trial running")
        os.kill(workers[1].pid, signal.SIGKILL)
        log("worker 1 SIGKILLed mid-trial")
        log(f"terminated {terminate_connections(admin, names['optuna'])} connections to the study's database")
        time.sleep(2)
        log(f"terminated {terminate_connections(admin, names['optuna'])} connections to the study's database")
        code = workers[2].wait(timeout=600)
        log(f"worker 2 exited {code}")
        figures = _figures(study, tracking)
        tidy = subprocess.run([*sweeps, "worker", "storage=postgres", "tracking=server", *HEARTBEAT], cwd=work, env=env, capture_output=True, text=True)
        log(f"one more `sweeps worker` (reaps at start) exited {tidy.returncode}: {tidy.stdout.strip().splitlines()[-1:]}")
        after = _figures(study, tracking)
        result = {
            "trials_created": args.trials, "total_raised_to": args.raised, "survivor_exit_code": code,
            "after_survivor": figures, "after_one_more_worker_start": after, "seconds": round(time.monotonic() - started, 1), "events": events,
            "survivor_log_tail": (work / "worker-2.log").read_text().strip().splitlines()[-5:],
        }
        print(json.dumps({k: v for k, v in result.items() if k != "events"}, indent=1))
        ok = (code == 0 and after["counted"] == args.raised and after["distinct_params_among_counted"] == after["counted"]
              and after["optuna_running"] == 0 and after["mlflow_running"] == 0)
        print("PASS" if ok else "FAIL")
        out = ROOT / "benchmarks" / "results" / "faults.json"
        out.write_text(json.dumps({**result, "pass": ok}, indent=1) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=1).ok
    except requests.RequestException:
        return False


def _figures(study: optuna.Study, tracking: str) -> dict:
    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if counts_toward_total(t)]
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("faults")
    running_runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    return {
        "trials": len(trials),
        "counted": len(counted),
        "distinct_params_among_counted": len({tuple(sorted(t.params.items())) for t in counted}),
        "by_state": {state.name: sum(t.state == state for t in trials) for state in TrialState if any(t.state == state for t in trials)},
        "optuna_running": sum(t.state == TrialState.RUNNING for t in trials),
        "mlflow_running": sum(r.data.tags.get("sweeps.role") == "trial" for r in running_runs),
        "mlflow_running_parent": sum(r.data.tags.get("sweeps.role") == "parent" for r in running_runs),
    }


if __name__ == "__main__":
    main()
