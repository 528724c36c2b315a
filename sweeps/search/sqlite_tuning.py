"""Connection settings for the embedded SQLite stores (Optuna storage and MLflow tracking).

SQLite's defaults (rollback journal, ``synchronous=FULL``) fsync the database and its journal on
every commit. Optuna writes one transaction per report, user attribute and state change, and MLflow
one per run update, so on a small model those fsyncs cost more than the training: measured here,
an Optuna trial with two rung reports and five user attributes took 47 ms and an MLflow child run
(tags, params, one metric batch, end) 15 ms; with ``journal_mode=WAL`` and ``synchronous=NORMAL``
23 ms and 8 ms (``benchmarks/overhead.py`` has the end-to-end numbers).

What that trades: WAL with ``synchronous=NORMAL`` is still crash-safe for the application (a worker
killed with SIGKILL loses no committed transaction and never corrupts the file); only an operating
system crash or power loss can roll back the last commits. WAL also lets the MLflow UI or
``sweeps status`` read while a worker writes. It needs a local file system (as SQLite always does
for more than one process), which is why several workers or machines use PostgreSQL instead.

The settings apply to SQLite connections that SQLAlchemy opens in this process, which are the
Optuna storage's and MLflow's SQL store's; other databases are untouched. WAL keeps its index in
shared memory beside the database file, which a network file system (NFS home directories on
clusters) cannot provide: there, ``SWEEPS_SQLITE_JOURNAL=delete`` keeps SQLite's own rollback
journal with ``synchronous=FULL`` (its defaults).
"""

from __future__ import annotations

import os
import sqlite3

import sqlalchemy
from sqlalchemy import event

from sweeps.errors import ConfigError

JOURNAL_ENV = "SWEEPS_SQLITE_JOURNAL"
JOURNAL_MODES = {  # journal mode -> synchronous level that is crash-safe with it
    "wal": "NORMAL",  # fsync at checkpoints, not at every commit; readers never block the writer
    "delete": "FULL",  # SQLite's defaults: for file systems without shared memory (NFS)
    "truncate": "FULL",
    "persist": "FULL",
}
BUSY_TIMEOUT_MS = 30000  # wait for another connection's write instead of 'database is locked'

_installed_pragmas: tuple[str, ...] | None = None


def sqlite_pragmas(journal_mode: str) -> tuple[str, ...]:
    """The statements run on each new SQLite connection for ``journal_mode``."""
    mode = journal_mode.strip().lower()
    if mode not in JOURNAL_MODES:
        raise ConfigError(JOURNAL_ENV, journal_mode, "unknown SQLite journal mode", ", ".join(JOURNAL_MODES))
    return (f"PRAGMA journal_mode={mode.upper()}", f"PRAGMA synchronous={JOURNAL_MODES[mode]}", f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def tune_sqlite_connections() -> None:
    """Apply the journal mode from ``SWEEPS_SQLITE_JOURNAL`` (default ``wal``) to every SQLite
    connection SQLAlchemy opens from now on (idempotent; the first call decides)."""
    global _installed_pragmas
    if _installed_pragmas is None:
        _installed_pragmas = sqlite_pragmas(os.environ.get(JOURNAL_ENV, "wal"))
        event.listen(sqlalchemy.engine.Engine, "connect", _on_connect)


def _on_connect(dbapi_connection: object, _record: object) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection) or _installed_pragmas is None:
        return
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _installed_pragmas:
            cursor.execute(pragma)
    finally:
        cursor.close()

