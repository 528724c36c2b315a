"""Shared fixtures: the real composed config, shrunk, with both stores in a temporary folder."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import DictConfig

from sweeps.config.compose import compose_config

REPO_ROOT = Path(__file__).resolve().parents[1]

# The suite runs in parallel workers (pytest -n 2), each starting sweeps of its own: torch's default of
# one thread per core in every process (this one and the commands tests start, which inherit it)
# oversubscribes the cores, and OpenMP threads that wait for each other then crawl. The service's
# trainer takes 1 thread anyway (train.threads); this covers objectives that do not set it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def store_overrides(folder: Path) -> list[str]:
    """Optuna storage, MLflow store and artifacts inside ``folder`` (SQLite, the embedded default)."""
    return [
        f"storage.url=sqlite:///{folder}/optuna.db",
        f"tracking.uri=sqlite:///{folder}/mlflow.db",
        f"tracking.artifact_location={folder}/mlartifacts",
    ]


def copy_stores(source: Path, target: Path) -> None:
    """Copy the SQLite stores of a sweep run in ``source`` (see ``store_overrides``) into ``target``.

    With SQLite's backup API, not a file copy: the stores are in WAL mode, and a plain copy of
    ``optuna.db`` misses what is still in ``optuna.db-wal`` (migrations included). Run ids, trial
    numbers and artifact locations stay as they were: artifacts are read from ``source``'s folder,
    and new runs of the copy put theirs there too, each under its own run id."""
    for name in ("optuna.db", "mlflow.db"):
        with sqlite3.connect(source / name) as origin, sqlite3.connect(target / name) as copy:
            origin.backup(copy)
        origin.close()
        copy.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def compose(tmp_path: Path):
    """``compose(*overrides)``: the shipped config with stores in tmp_path and a short run."""

    def _compose(*overrides: str) -> DictConfig:
        return compose_config([*store_overrides(tmp_path), "train.epochs=3", "sweep.n_trials=4", *overrides])

    return _compose


def run_cli(*args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the ``sweeps`` command as a user would, in ``cwd``: a process of its own, forked from a
    server that imported the sweep stack once (``tests/cli_server.py``), or with
    ``SWEEPS_TEST_FORK_SERVER=0`` a fresh ``python -m sweeps.cli``."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    command = [sys.executable, "-m", "sweeps.cli", *args]
    if os.environ.get("SWEEPS_TEST_FORK_SERVER", "1") == "0":
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment, input=input)
    return _forked_cli(command, cwd, timeout, environment, input)


_CLI_SERVER: dict[str, object] = {}


def _cli_server() -> str:
    """The socket of this test process's CLI server, started on first use."""
    if "path" not in _CLI_SERVER:
        import atexit
        import shutil
        import signal
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="sweeps-cli-server-"))
        path = str(folder / "cli.sock")
        server = subprocess.Popen([sys.executable, "-m", "tests.cli_server", path], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                  env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, start_new_session=True)
        if server.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the CLI server did not start (exit status {server.poll()})")

        def stop() -> None:
            try:
                os.killpg(server.pid, signal.SIGKILL)  # the server and any command still running
            except ProcessLookupError:
                pass
            server.wait()
            shutil.rmtree(folder, ignore_errors=True)

        atexit.register(stop)
        _CLI_SERVER["path"] = path
    return str(_CLI_SERVER["path"])


def _forked_cli(command: list[str], cwd: Path, timeout: float, env: dict[str, str], input: str | None) -> subprocess.CompletedProcess:
    import json
    import signal
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sweeps-cli-") as folder:
        out, err, given = Path(folder) / "stdout", Path(folder) / "stderr", Path(folder) / "stdin"
        given.write_text(input or "")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(_cli_server())
            request = {"argv": command[3:], "cwd": str(cwd), "env": env, "stdin": str(given), "stdout": str(out), "stderr": str(err)}
            connection.sendall(json.dumps(request).encode())
            connection.shutdown(socket.SHUT_WR)
            connection.settimeout(timeout)
            reply = connection.makefile("rb")
            pid = int(reply.readline())
            try:
                status = reply.readline().strip()
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text()) from None
        code = int(status) if status else -signal.SIGKILL  # no status: the command was killed
        return subprocess.CompletedProcess(command, code, out.read_text(), err.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, seconds: float) -> bool:
    """Poll ``<url>/health`` (MLflow's server and UI) until it answers OK; False after ``seconds``."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=1).ok:
                return True
        except requests.RequestException:
            time.sleep(0.5)
    return False


POSTGRES_URL = os.environ.get("SWEEPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def postgres_database():
    """A fresh, empty PostgreSQL database on the test server (dropped afterwards); yields its URL."""
    import uuid

    import sqlalchemy

    name = f"sweeps_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


POSTGRES_FIXTURES = {"postgres_database", "role_with_password"}  # fixtures that need the PostgreSQL server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``-m postgres`` / ``-m "not postgres"``: a test is marked when it uses one of ``POSTGRES_FIXTURES``,
    directly or through another fixture (``unit`` and ``integration`` are each file's ``pytestmark``)."""
    for item in items:
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
