"""Database calls that survive a dropped connection: reconnect and retry with backoff, bounded.

A PostgreSQL restart, a failover, an SSH-tunnel blip or ``pg_terminate_backend`` used to kill every
worker at its next storage call (measured: 2 workers, both exited 1 within 7 s, a 199-line
traceback). Here every call of the Optuna storage is retried when it failed because the connection
was lost, with exponential backoff (0.5 s doubling, at most 8 s apart), until ``deadline`` seconds
have passed since the first failure: the worker's ``storage.grace_period``, so a worker never dies
from a blip shorter than the time after which its own trial would be declared dead anyway. Past
the deadline ``StoreUnavailable`` says so in one line. The engine pings connections before use
(``pool_pre_ping``), so a connection killed while idle is replaced without an error at all.

What is retried: errors of the connection (``OperationalError``, a DBAPI error that invalidated
the connection), also when Optuna wrapped them (``StorageInternalError`` from a failed commit).
Constraint violations and bad values are not: they would fail again. A write whose commit reached
the server just before the connection dropped may be sent twice: finishing a trial twice is taken
as done; a trial created twice leaves an empty RUNNING one, failed by the heartbeat like a dead
worker's.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
import sqlalchemy

from sweeps.errors import StoreUnavailable, first_line
from sweeps.track.redact import redact

T = TypeVar("T")
LOG = logging.getLogger("sweeps.db")
FIRST_WAIT, MAX_WAIT = 0.5, 8.0


def is_connection_error(err: BaseException) -> bool:
    """True when ``err`` (or what caused it) is a lost or refused database connection."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and (seen.connection_invalidated or isinstance(seen, sqlalchemy.exc.OperationalError)):
            return True
        if isinstance(seen, (sqlalchemy.exc.DisconnectionError, ConnectionError)):
            return True
        if type(seen).__module__.startswith("psycopg") and type(seen).__name__ in ("OperationalError", "InterfaceError"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retrying(call: Callable[[], T], deadline: float, what: str, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, retried on connection errors with backoff until ``deadline`` seconds have passed."""
    started, wait, attempt = None, FIRST_WAIT, 0
    while True:
        try:
            return call()
        except Exception as err:
            if not is_connection_error(err):
                raise
            now = time.monotonic()
            started = started if started is not None else now
            if now - started + wait > deadline:
                raise StoreUnavailable(f"{what}: database unreachable for {now - started:.0f} s ({_first_line(err)})") from None
            attempt += 1
            LOG.warning("sweeps: %s lost its database connection (%s); retry %d in %.1f s", what, _first_line(err), attempt, wait)
            sleep(wait)
            wait = min(MAX_WAIT, wait * 2)


_inside = threading.local()  # a storage method calling another one retries only at the outermost call


def _retried_method(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_inside, "active", False):
            return method(self, *args, **kwargs)
        attempts = 0

        def call() -> Any:
            nonlocal attempts
            attempts += 1
            _inside.active = True
            try:
                return method(self, *args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                if attempts > 1 and name == "set_trial_state_values":
                    return True  # the first attempt's commit reached the server before the drop
                raise
            finally:
                _inside.active = False

        return retrying(call, self.retry_deadline, f"storage.{name}")

    return wrapper


class ReconnectingStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage with each call retried across dropped connections (module docstring)."""

    retry_deadline: float = 90.0

    def __init__(self, url: str, *args: Any, retry_deadline: float = 90.0, **kwargs: Any) -> None:
        self.retry_deadline = retry_deadline
        self.redacted_url = redact(url)
        retrying(lambda: optuna.storages.RDBStorage.__init__(self, url, *args, **kwargs), retry_deadline, "storage (connect)")


_NOT_RETRIED = {"remove_session", "upgrade", "get_heartbeat_interval", "get_failed_trial_callback", "is_heartbeat_enabled"}
for _name, _method in list(vars(optuna.storages.RDBStorage).items()):
    if callable(_method) and not _name.startswith("__") and _name not in _NOT_RETRIED and not isinstance(_method, (staticmethod, classmethod)):
        setattr(ReconnectingStorage, _name, _retried_method(_name, _method))


def _first_line(err: BaseException) -> str:
    """The error's first line for a log line: any URL's password hidden, at most 200 characters."""
    return redact(first_line(err))[:200]
