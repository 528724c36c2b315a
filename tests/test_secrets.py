"""No database password in anything a sweep writes or shows: both stores, artifacts, exports,
printed lines, worker logs, and the command lines of its worker processes (visible in ``ps``).

A real PostgreSQL role with a unique password owns both stores (the test server trusts local
connections, so it accepts any password; what matters here is where the password travels).
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from sweeps.track.redact import redact, redact_values
from tests.conftest import POSTGRES_URL, run_cli

pytestmark = pytest.mark.integration

FAST = ["objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "search=lr_only", "sweep.pruner=none", "train.epochs=2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://u:s3cret@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        ("browse: sweeps ui tracking.uri=mysql://a:b%40c@h/db now", "browse: sweeps ui tracking.uri=mysql://a:***@h/db now"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),
        ("sqlite:///optuna.db and postgresql://u@h/db", "sqlite:///optuna.db and postgresql://u@h/db"),
        ("http://host/path?a=b:c@d", "http://host/path?a=b:c@d"),
        (42, 42),
    ],
)
def test_redact_hides_only_the_password(text, expected) -> None:
    assert redact(text) == expected
    assert redact(redact(text)) == expected


def test_redact_values_walks_nested_configs() -> None:
    data = {"storage": {"url": "postgresql://u:pw@h/db", "n": 3}, "list": ["http://a:pw@b", None]}
    assert redact_values(data) == {"storage": {"url": "postgresql://u:***@h/db", "n": 3}, "list": ["http://a:***@b", None]}


@pytest.fixture
def role_with_password():
    """A login role with a unique password owning two fresh databases; yields (password, optuna URL, mlflow URL)."""
    suffix = uuid.uuid4().hex[:10]
    role, password = f"sweeps_leak_{suffix}", f"pw{uuid.uuid4().hex}"
    databases = [f"sweeps_leak_optuna_{suffix}", f"sweeps_leak_mlflow_{suffix}"]
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        for name in databases:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}" OWNER {role}'))
    base = sqlalchemy.engine.make_url(POSTGRES_URL).set(username=role, password=password)
    urls = [base.set(database=name).render_as_string(hide_password=False) for name in databases]
    try:
        yield password, urls[0], urls[1]
    finally:
        with admin.connect() as connection:
            for name in databases:
                connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sqlalchemy.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def _worker_command_lines(folder: Path, stop: threading.Event, seen: list[str]) -> None:
    """Every ``sweeps worker`` command line in ``folder`` while the sweep runs (what ps shows); the
    folder tells this sweep's workers from those of tests running beside it."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    cwd = os.readlink(f"/proc/{pid}/cwd")
                except OSError:
                    continue
                if "sweeps.cli" in cmdline and " worker" in cmdline and Path(cwd) == folder.resolve():
                    seen.append(cmdline)
        stop.wait(0.2)


def _database_text(url: str) -> str:
    """Every row of every table of the database, as text."""
    engine = sqlalchemy.create_engine(url)
    chunks = []
    with engine.connect() as connection:
        tables = connection.execute(sqlalchemy.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars().all()
        assert tables, "the store has no tables: nothing was written"
        for table in tables:
            chunks.extend(connection.execute(sqlalchemy.text(f'SELECT t::text FROM "{table}" t')).scalars().all())
    engine.dispose()
    return "\n".join(chunks)


def test_no_password_anywhere_a_sweep_writes(tmp_path: Path, role_with_password) -> None:
    password, optuna_url, mlflow_url = role_with_password
    env = {"SWEEPS_STORAGE_URL": optuna_url, "TMPDIR": str(tmp_path)}  # worker logs land in tmp_path
    stores = ["storage=postgres", f"tracking.uri={mlflow_url}", f"tracking.artifact_location={tmp_path}/artifacts"]
    outputs = []
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_worker_command_lines, args=(tmp_path, stop, seen), daemon=True)
    watcher.start()
    try:
        done = run_cli("run", *stores, *FAST, "sweep.study_name=leak", "sweep.n_trials=4", "sweep.workers=2", cwd=tmp_path, env=env)
    finally:
        stop.set()
        watcher.join()
    outputs.append(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr
    assert seen, "no worker process was seen"

    for args in (["status", "leak", *stores, "--json"], ["best", "leak", *stores, "--export", "best.yaml"]):
        listed = run_cli(*args, cwd=tmp_path, env=env)
        assert listed.returncode == 0, listed.stderr
        outputs.append(listed.stdout + listed.stderr)
    trained = run_cli("train", "--config", "best.yaml", f"tracking.uri={mlflow_url}", f"tracking.artifact_location={tmp_path}/artifacts", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr
    outputs.append(trained.stdout + trained.stderr)
    refused = run_cli("run", f"storage.url={optuna_url.replace('127.0.0.1', 'nosuchhost.invalid')}", *FAST, cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "***" in refused.stderr
    outputs.append(refused.stdout + refused.stderr)

    files = {path: path.read_bytes().decode(errors="replace") for path in tmp_path.rglob("*") if path.is_file()}
    artifacts = [p for p in files if "artifacts" in p.parts]
    assert any(p.name == "best_config.yaml" for p in artifacts) and any(p.name == "config.yaml" for p in artifacts)
    assert any(p.name.startswith("worker-") for p in files), "worker logs were not found"
    places = {
        **{f"file {p}": text for p, text in files.items()},
        **{f"output {i}": text for i, text in enumerate(outputs)},
        **{f"worker command line {i}": line for i, line in enumerate(seen)},
        "optuna store": _database_text(optuna_url),
        "mlflow store": _database_text(mlflow_url),
    }
    leaks = [where for where, text in places.items() if password in text]
    assert leaks == [], f"the password appears in: {leaks}"
    assert "***" in places["mlflow store"]  # the redacted URL is there (sweeps.storage tag, best_config.yaml)
