"""What became of a trial: the one definition every store, table, plot and console line reads.

    outcome      Optuna state   MLflow status   counts toward the total   when
    complete     COMPLETE       FINISHED        yes                       finished all epochs
    pruned       PRUNED         FINISHED        yes                       stopped by the pruner
    diverged     PRUNED         FINISHED        yes                       loss became NaN/inf
    failed       FAIL           FAILED          yes                       the objective raised
    interrupted  FAIL           KILLED          no (re-queued)            Ctrl-C, SIGTERM
    lost         FAIL           FAILED          no (retried)              its worker died (heartbeat)
    running      RUNNING        RUNNING         no                        not ended yet
    waiting      WAITING        SCHEDULED       no                        queued (a retry, an enqueue)

A pruned or diverged trial is the search doing its job, so its run ends FINISHED and the
``sweeps.outcome`` tag tells them apart; KILLED is kept for trials a person or a signal stopped
(README, "trial ended" table). The runner records the outcome as the trial's ``sweeps.outcome``
user attr; a trial without one (or with one its state contradicts) reads as its state's default,
so a FAIL with no recorded outcome is ``lost``: its runner never got to say why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import Enum

from optuna.trial import FrozenTrial, TrialState

OUTCOME_ATTR = "sweeps.outcome"  # Optuna user attr and MLflow tag


class Outcome(str, Enum):
    """A trial's outcome; its value is the name both stores record (``sweeps.outcome``)."""

    # name, Optuna state, MLflow run status, counts toward the study's total, plot colour, plot marker
    COMPLETE = ("complete", TrialState.COMPLETE, "FINISHED", True, "tab:blue", "o")
    PRUNED = ("pruned", TrialState.PRUNED, "FINISHED", True, "tab:orange", "x")
    DIVERGED = ("diverged", TrialState.PRUNED, "FINISHED", True, "tab:red", "X")
    FAILED = ("failed", TrialState.FAIL, "FAILED", True, "tab:gray", ".")
    INTERRUPTED = ("interrupted", TrialState.FAIL, "KILLED", False, "tab:gray", ".")
    LOST = ("lost", TrialState.FAIL, "FAILED", False, "tab:gray", ".")
    RUNNING = ("running", TrialState.RUNNING, "RUNNING", False, "tab:green", ">")
    WAITING = ("waiting", TrialState.WAITING, "SCHEDULED", False, "tab:gray", ".")

    state: TrialState
    run_status: str
    counts_toward_total: bool
    colour: str
    marker: str

    def __new__(cls, name: str, state: TrialState, run_status: str, counted: bool, colour: str, marker: str) -> Outcome:
        member = str.__new__(cls, name)
        member._value_ = name
        member.state, member.run_status, member.counts_toward_total = state, run_status, counted
        member.colour, member.marker = colour, marker
        return member

    def __str__(self) -> str:  # the recorded name, in f-strings and tags alike
        return self.value

    @classmethod
    def parse(cls, name: str | Outcome) -> Outcome:
        """``"pruned"`` -> ``Outcome.PRUNED``; an unknown name raises ``ValueError`` naming the known ones."""
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown trial outcome {name!r}; known: {', '.join(o.value for o in cls)}") from None


# The outcome of a trial that recorded none (or one its state contradicts): FAIL means its worker died.
STATE_DEFAULT = {TrialState.COMPLETE: Outcome.COMPLETE, TrialState.PRUNED: Outcome.PRUNED, TrialState.FAIL: Outcome.LOST,
                 TrialState.RUNNING: Outcome.RUNNING, TrialState.WAITING: Outcome.WAITING}


def outcome_of(trial: FrozenTrial) -> Outcome:
    """The trial's recorded outcome when its state agrees, else its state's default.

    A recorded name the state contradicts (a retried trial WAITING with its predecessor's attrs, a
    trial that recorded ``complete`` but died before Optuna heard it) is not believed."""
    recorded = trial.user_attrs.get(OUTCOME_ATTR)
    if recorded in Outcome._value2member_map_:
        outcome = Outcome(recorded)
        if outcome.state == trial.state:
            return outcome
    return STATE_DEFAULT[trial.state]


def counts_toward_total(trial: FrozenTrial) -> bool:
    """Whether the trial fills one of the study's ``sweep.n_trials`` (complete, pruned, diverged, failed)."""
    return outcome_of(trial).counts_toward_total


def outcome_counts(trials: Iterable[FrozenTrial]) -> Counter:
    """``Counter({"complete": 7, "pruned": 2, ...})``, keyed by outcome name."""
    return Counter(outcome_of(t).value for t in trials)
