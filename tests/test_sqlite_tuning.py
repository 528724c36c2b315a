"""The embedded SQLite stores run in WAL mode with synchronous=NORMAL: one fsync per checkpoint
instead of per commit, readers never blocked by a writing worker, and a killed worker loses nothing
committed (tests/test_sweep.py kills workers mid-trial on these same settings)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from sweeps.run.sweep import plan_sweep, run_sweep
from tests.conftest import run_cli, store_overrides

pytestmark = pytest.mark.integration


def sqlite_settings(url: str) -> dict[str, str]:
    """The journal mode and synchronous level a new SQLAlchemy connection to ``url`` gets."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
    finally:
        engine.dispose()
    return {"journal_mode": str(journal).lower(), "synchronous": {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(synchronous, str(synchronous))}


def test_sweep_stores_are_wal_with_normal_sync(compose, tmp_path: Path) -> None:
    cfg = compose("objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "sweep.n_trials=2", "sweep.pruner=none")
    run_sweep(plan_sweep(cfg))
    for name in ("optuna.db", "mlflow.db"):
        settings = sqlite_settings(f"sqlite:///{tmp_path}/{name}")
        assert settings == {"journal_mode": "wal", "synchronous": "normal"}, name
        # journal_mode=WAL is stored in the file: any other SQLite client (the MLflow UI, sqlite3) reads it that way
        with sqlite3.connect(tmp_path / name) as plain:
            assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_reader_mid_transaction_does_not_block_the_sweep(compose, tmp_path: Path) -> None:
    """``sweeps status`` or the MLflow UI holding a read transaction open while trials are written."""
    cfg = compose("objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "sweep.n_trials=1", "sweep.pruner=none")
    run_sweep(plan_sweep(cfg))
    readers = [sqlite3.connect(tmp_path / name, isolation_level=None) for name in ("optuna.db", "mlflow.db")]
    try:
        for reader in readers:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchone()  # holds a read snapshot
        cfg = compose("objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "sweep.n_trials=3", "sweep.pruner=none")
        result = run_sweep(plan_sweep(cfg))
    finally:
        for reader in readers:
            reader.close()
    states = [t.state for t in result.study.get_trials()]
    assert states.count(optuna.trial.TrialState.COMPLETE) + states.count(optuna.trial.TrialState.FAIL) == 3


def test_journal_mode_can_be_switched_off_for_network_file_systems(tmp_path: Path) -> None:
    args = ["run", *store_overrides(tmp_path), "objective=custom", "objective.target=tests.objectives_for_tests:quadratic",
            "sweep.n_trials=1", "train.epochs=2", "sweep.pruner=none"]
    done = run_cli(*args, cwd=tmp_path, env={"SWEEPS_SQLITE_JOURNAL": "delete"})
    assert done.returncode == 0, done.stderr
    for name in ("optuna.db", "mlflow.db"):
        assert sqlite3.connect(tmp_path / name).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_an_unknown_journal_mode_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    done = run_cli("run", *store_overrides(tmp_path), "sweep.n_trials=1", cwd=tmp_path, env={"SWEEPS_SQLITE_JOURNAL": "memory-ish"})
    assert done.returncode == 2
    assert "SWEEPS_SQLITE_JOURNAL='memory-ish': unknown SQLite journal mode; allowed: wal, delete, truncate, persist" in done.stderr + done.stdout
    assert list(tmp_path.iterdir()) == []
