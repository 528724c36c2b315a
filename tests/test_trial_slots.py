"""Counting the study and creating a trial is one critical section across workers on PostgreSQL:
a second worker of the same study waits until the first worker's trial exists."""

from __future__ import annotations

import threading
import time

import pytest

from sweeps.run.trial_slots import TrialSlots, lock_key

pytestmark = pytest.mark.integration


def test_a_second_worker_waits_for_the_slot(postgres_database: str) -> None:
    first, second = TrialSlots(postgres_database, "shared"), TrialSlots(postgres_database, "shared")
    assert first.locking and second.locking
    taken: list[float] = []
    first.acquire()
    waiter = threading.Thread(target=lambda: (second.acquire(), taken.append(time.monotonic())))
    waiter.start()
    time.sleep(0.5)
    assert taken == [], "the second worker counted the study while the first held its slot"
    released = time.monotonic()
    first.release()
    waiter.join(timeout=10)
    assert len(taken) == 1 and taken[0] >= released
    second.close()
    first.close()


def test_other_studies_do_not_wait_and_release_is_idempotent(postgres_database: str) -> None:
    mine, other = TrialSlots(postgres_database, "a"), TrialSlots(postgres_database, "b")
    mine.acquire()
    done = threading.Event()
    threading.Thread(target=lambda: (other.acquire(), done.set())).start()
    assert done.wait(timeout=5), "a lock on study 'a' blocked study 'b'"
    mine.release()
    mine.release()  # idempotent: the objective releases first, the loop's finally again
    assert not mine.held
    for slots in (mine, other):
        slots.close()


def test_a_closed_connection_frees_the_slot(postgres_database: str) -> None:
    """A worker killed while holding the lock closes its connection: PostgreSQL frees the lock."""
    dying, survivor = TrialSlots(postgres_database, "s"), TrialSlots(postgres_database, "s")
    dying.acquire()
    dying._connection.close()  # what the server sees when the process dies
    done = threading.Event()
    threading.Thread(target=lambda: (survivor.acquire(), done.set())).start()
    assert done.wait(timeout=10)
    survivor.close()


def test_sqlite_and_single_process_slots_lock_nothing(tmp_path) -> None:
    for slots in (TrialSlots(f"sqlite:///{tmp_path}/o.db", "s"), TrialSlots(None, "s")):
        assert not slots.locking
        slots.acquire()
        slots.acquire()
        slots.release()
        slots.close()
    assert lock_key("s") == lock_key("s") != lock_key("t") and -(2**63) <= lock_key("s") < 2**63


class _InstantRunner:
    aborted = None

    def __call__(self, trial) -> float:
        return trial.suggest_float("x", 0.0, 1.0)


def _workers_race(url: str, total: int, lock: bool, name: str = "race") -> int:
    """Two workers (threads, each with its own Study) whose count of the study is slow, so both
    count before either creates its trial; returns how many trials the study ends with."""
    import optuna

    from sweeps.run.worker import run_trials

    optuna.create_study(study_name=name, storage=url)

    def worker() -> None:
        study = optuna.load_study(study_name=name, storage=url)
        read = study.get_trials

        def slow_count(*args, **kwargs):
            trials = read(*args, **kwargs)
            time.sleep(0.3)  # the other worker counts now too, unless the slot is locked
            return trials

        study.get_trials = slow_count
        slots = TrialSlots(url if lock else None, name)
        try:
            run_trials(study, _InstantRunner(), total, poll_seconds=0.05, slots=slots)
        finally:
            slots.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return len(optuna.load_study(study_name=name, storage=url).get_trials())


def test_two_racing_workers_stop_at_the_total(postgres_database: str) -> None:
    assert _workers_race(postgres_database, total=3, lock=True) == 3
    # control: the same race without the slot lock overshoots the total, so the lock is what holds it
    assert _workers_race(postgres_database, total=3, lock=False, name="race-unlocked") > 3
