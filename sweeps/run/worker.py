"""Run trials until the study's total is reached, and keep both stores truthful while doing it.

Each trial runs through Optuna's own ``study.optimize`` (its RDB heartbeat only works there), one
at a time, so the worker can check before every trial that the study's total leaves room for it. Every worker also reaps: trials of dead
workers are failed (stale heartbeat) and their MLflow runs closed, at start and then periodically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.run.outcome import Outcome, counts_toward_total, outcome_of
from sweeps.run.signals import StopFlag
from sweeps.run.trial import RUN_ID_ATTR, TrialRunner
from sweeps.run.trial_slots import TrialSlots
from sweeps.search.seeding import grid_exhausted
from sweeps.search.study import fail_stale_trials
from sweeps.track.tracker import SweepTracker

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


class Reaper:
    """Fails stale trials and closes MLflow runs their dead workers left RUNNING.

    Called at a worker's start and, as a trial callback, at most every ``interval`` seconds.
    """

    def __init__(self, tracker: SweepTracker, interval: float = 60.0) -> None:
        self.tracker = tracker
        self.interval = interval
        self.last = float("-inf")

    def __call__(self, study: optuna.Study, _trial: FrozenTrial | None = None) -> int:
        if time.monotonic() - self.last < self.interval:
            return 0
        self.last = time.monotonic()
        fail_stale_trials(study)
        return self.tracker.reap(ended_trial_runs(study))


class FailureStreak:
    """A trial callback counting this worker's trials that failed in a row (the objective raised).

    A sweep whose every trial fails (a bug in the objective, a missing dataset) used to run to its
    total and exit 0 with "no trial completed"; ``sweep.max_failures`` in a row stop it (0: never).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.last_error: str | None = None

    def __call__(self, _study: optuna.Study, trial: FrozenTrial) -> None:
        outcome = outcome_of(trial)
        if outcome == Outcome.FAILED:
            self.count += 1
            self.last_error = trial.user_attrs.get("error")
        elif outcome in (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED):
            self.count = 0

    @property
    def tripped(self) -> bool:
        return self.limit > 0 and self.count >= self.limit

    def reason(self) -> str:
        return f"{self.count} trials failed in a row (sweep.max_failures={self.limit}); last error: {self.last_error}"


def ended_trial_runs(study: optuna.Study) -> Iterator[tuple[str, str, str]]:
    """``(run_id, outcome, reason)`` of every ended trial that has an MLflow run."""
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if run_id and trial.state.is_finished():
            yield run_id, outcome_of(trial).value, f"trial {trial.number} ended {trial.state.name} without closing its run"


def run_trials(
    study: optuna.Study,
    runner: TrialRunner,
    total: int | Callable[[], int],
    callbacks: Sequence[TrialCallback] = (),
    stop: StopFlag | None = None,
    max_trials: int | None = None,
    poll_seconds: float = 1.0,
    slots: TrialSlots | None = None,
    deadline: float | None = None,
    trial_attrs: Mapping[str, Any] | None = None,
    failures: FailureStreak | None = None,
) -> int:
    """Run trials one at a time until the study holds ``total`` finished trials.

    Before each trial the worker checks that finished plus running trials (of every worker) leave a
    slot, so N workers do not overshoot the total by N-1. When the running trials of others fill
    the remaining slots, it waits: they finish, or their worker died and the heartbeat fails them
    (then their retry takes the slot). ``slots`` makes the count and the trial's creation one
    critical section across workers (``sweeps.run.trial_slots``). Also stops on a stop request, an
    aborted sweep, an exhausted grid, or after ``max_trials`` here. A trial whose objective raised is
    recorded as failed and the loop goes on (``catch``). Returns how many trials this call ran.
    ``total`` may be a function: it is read again before every trial (a total raised mid-sweep).
    No trial starts once ``time.monotonic()`` passes ``deadline`` (``sweep.timeout``).
    """
    stop = stop or StopFlag()
    slots = slots or TrialSlots(None, study.study_name)  # one process: nothing to lock

    def objective(trial: optuna.Trial) -> float:
        slots.release()  # the trial exists (RUNNING) now: every other worker's count includes it
        for key, value in (trial_attrs or {}).items():  # e.g. which of the study's configs it runs
            trial.set_user_attr(key, value)
        return runner(trial)

    ran = 0
    callbacks = [*callbacks, failures] if failures is not None else callbacks
    while not stop.requested() and runner.aborted is None and not grid_exhausted(study):
        if max_trials is not None and ran >= max_trials:
            break
        if failures is not None and failures.tripped:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        slots.acquire()
        try:
            trials = study.get_trials(deepcopy=False)
            finished = sum(counts_toward_total(t) for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            limit = total() if callable(total) else total
            if finished >= limit:
                break
            if finished + running >= limit:
                slots.release()
                time.sleep(poll_seconds)
                fail_stale_trials(study)
                continue
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=callbacks, gc_after_trial=False)
        finally:
            slots.release()
        ran += 1
    return ran
