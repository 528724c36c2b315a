"""Workers survive a database blip: every Optuna storage call and the trial-slot lock reconnect and
retry with backoff (``sweeps.search.db_retry``), tested with ``pg_terminate_backend`` on a real PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy
from optuna.trial import TrialState

from sweeps.errors import StoreUnavailable
from sweeps.run.sweep import plan_sweep, run_sweep
from sweeps.run.trial_slots import TrialSlots
from sweeps.search.db_retry import is_connection_error, retrying
from sweeps.search.study import finished_count

pytestmark = pytest.mark.integration

FAST = ["objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "search=lr_only", "sweep.pruner=none", "train.epochs=2"]


def _dropped() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionError("server closed the connection unexpectedly"))


def test_retrying_backs_off_then_succeeds_or_gives_up_with_one_line() -> None:
    waits: list[float] = []
    failures = iter([_dropped(), _dropped(), None])

    def flaky() -> str:
        err = next(failures)
        if err:
            raise err
        return "ok"

    assert retrying(flaky, deadline=10, what="test", sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0]

    def down() -> None:
        raise _dropped()

    with pytest.raises(StoreUnavailable, match=r"^test: database unreachable for \d+ s \(") as caught:
        retrying(down, deadline=0.1, what="test", sleep=lambda s: None)
    assert "\n" not in str(caught.value)

    def bad_value() -> None:
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, ValueError("duplicate key"))

    with pytest.raises(sqlalchemy.exc.IntegrityError):  # not a connection problem: never retried
        retrying(bad_value, deadline=10, what="test", sleep=waits.append)
    assert len(waits) == 2 and is_connection_error(_dropped()) and not is_connection_error(ValueError("x"))


def _terminate_others(admin: sqlalchemy.engine.Engine, database: str) -> int:
    with admin.connect() as connection:
        return len(connection.execute(
            sqlalchemy.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
            {"db": database},
        ).all())


@pytest.fixture
def terminator(postgres_database: str):
    """``terminate()`` drops every connection to the test database, as a server restart would."""
    admin = sqlalchemy.create_engine(postgres_database, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    database = sqlalchemy.engine.make_url(postgres_database).database
    yield lambda: _terminate_others(admin, database)
    admin.dispose()


def test_the_trial_slot_lock_is_retaken_on_a_fresh_connection(postgres_database: str, terminator) -> None:
    slots, other = TrialSlots(postgres_database, "s"), TrialSlots(postgres_database, "s")
    slots.acquire()
    assert terminator() >= 1  # the lock's connection dies while held: the server frees the lock
    slots.release()  # nothing left to release; no error
    other.acquire()  # so another worker can take it
    other.release()
    terminator()
    slots.acquire()  # and the first worker takes it again on a new connection
    slots.release()
    for each in (slots, other):
        each.close()


def test_a_sweep_survives_connections_terminated_throughout(tmp_path, postgres_database: str, terminator, compose) -> None:
    cfg = compose(*FAST, f"storage.url={postgres_database}", "sweep.n_trials=12", "sweep.study_name=blips")
    plan = plan_sweep(cfg)
    done = threading.Event()
    kills: list[int] = []

    def keep_terminating() -> None:  # a flapping server: every connection dropped every 0.4 s
        while not done.wait(0.4):
            kills.append(terminator())

    killer = threading.Thread(target=keep_terminating, daemon=True)
    try:
        result = run_sweep(plan, on_open=lambda study: killer.start())
    finally:
        done.set()
        if killer.is_alive():
            killer.join()
    trials = result.study.get_trials(deepcopy=False)
    assert sum(1 for n in kills if n) >= 3, f"too few connections were terminated mid-sweep: {kills}"
    assert finished_count(result.study) == 12
    assert not [t for t in trials if t.state == TrialState.RUNNING]
