"""One worker at a time takes a slot of the study's trial total, so N workers never overshoot it.

A worker counts the study (finished + running trials) and, when a slot is left, starts a trial. Two
workers that count at the same moment both see the same free slot and both start: measured on 3
local workers with ``sweep.n_trials=7``, the study sometimes ended with 8. The count and the
trial's creation must therefore be one critical section across processes.

On PostgreSQL that section is a session-level advisory lock keyed by the study name
(``pg_advisory_lock``), taken before counting and released as soon as the new trial exists in the
storage as RUNNING, where the next worker's count sees it. It is held for milliseconds, never while
training, on a connection opened for it and closed after; a worker that dies holding it closes its
connection, which releases it. SQLite studies
have one worker (several are refused, ``sweeps.run.launcher``), so there the lock does nothing; other
servers are not locked either (MySQL's ``GET_LOCK`` would be the equivalent).
"""

from __future__ import annotations

import hashlib

import sqlalchemy

from sweeps.search.db_retry import is_connection_error, retrying

LOCKING_BACKENDS = ("postgresql",)


class TrialSlots:
    """``acquire()`` before counting the study, ``release()`` once the trial is created (idempotent).

    The lock lives on a connection taken for this one acquisition and closed at release, never on a
    long-lived one: a connection dropped between trials (server restart, ``pg_terminate_backend``,
    a tunnel blip) is simply not used again, and taking the lock retries across a drop like every
    other storage call (``sweeps.search.db_retry``). A connection that drops while the lock is held loses
    the lock with it (the server releases it); ``release()`` then has nothing left to do.
    """

    def __init__(self, storage_url: str | None, study_name: str, retry_deadline: float = 90.0) -> None:
        """``storage_url`` None: a single process, nothing to lock."""
        url = sqlalchemy.engine.make_url(storage_url) if storage_url else None
        self.key = lock_key(study_name)
        self.held = False
        self.retry_deadline = retry_deadline
        self._engine = None
        self._connection = None
        if url is not None and url.get_backend_name() in LOCKING_BACKENDS:
            # AUTOCOMMIT: a session lock needs no transaction, and none is left open while waiting.
            # NullPool: closing the connection ends the session, and with it any lock it held.
            self._engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)

    @property
    def locking(self) -> bool:
        return self._engine is not None

    def acquire(self) -> None:
        if self._engine is not None and not self.held:
            self._connection = retrying(self._lock, self.retry_deadline, "trial slot lock")
        self.held = True

    def _lock(self):
        connection = self._engine.connect()
        try:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self.key})
        except BaseException:
            _close_quietly(connection)
            raise
        return connection

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except sqlalchemy.exc.DBAPIError as err:
                if not is_connection_error(err):
                    raise
            finally:  # a dropped connection took the lock with it
                _close_quietly(self._connection)
                self._connection = None
        self.held = False

    def close(self) -> None:
        self.release()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _close_quietly(connection) -> None:
    try:
        connection.close()
    except sqlalchemy.exc.DBAPIError:
        pass


def lock_key(study_name: str) -> int:
    """A stable signed 64-bit key for ``study_name`` (PostgreSQL advisory locks take a bigint)."""
    return int.from_bytes(hashlib.blake2b(f"sweeps.trial_slots:{study_name}".encode(), digest_size=8).digest(), "big", signed=True)
