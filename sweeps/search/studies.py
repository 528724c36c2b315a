"""The studies in a store, as ``optuna studies`` and W&B's project page show them, and deleting one.

``list_studies`` reads Optuna's storage only: per study its trials by outcome, the total it aims
at and its best value. ``delete_study`` removes a study from both stores: the Optuna study with its
trials, and the MLflow experiment of the same name, which is renamed ``<name>-deleted-<time>``
before MLflow's (soft) delete. MLflow keeps a deleted experiment's name reserved and ``sweeps``
restores an experiment found deleted, so without the rename a new study of the same name would
bring the old runs back. ``mlflow gc`` purges deleted experiments for good.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import optuna
from optuna.trial import TrialState

from sweeps.errors import ConfigError
from sweeps.run.outcome import counts_toward_total, outcome_counts
from sweeps.search.sqlite_tuning import tune_sqlite_connections
from sweeps.search.study import check_storage
from sweeps.search.study_config import stored_config
from sweeps.track.redact import redact


@dataclass
class StudyRow:
    name: str
    direction: str
    metric: str | None
    target: int | None  # sweep.n_trials, for studies created by sweeps
    finished: int
    outcomes: Counter = field(default_factory=Counter)  # complete, pruned, diverged, failed, running, ...
    best_value: float | None = None
    best_trial: int | None = None
    started: datetime | None = None


def open_storage(storage_url: str) -> optuna.storages.BaseStorage:
    """The storage, which must exist already (listing or deleting never creates an SQLite file)."""
    check_storage(storage_url, create=False)
    tune_sqlite_connections()
    return optuna.storages.get_storage(storage_url)


def list_studies(storage_url: str) -> list[StudyRow]:
    """Every study in ``storage_url``, oldest first (one storage read per study)."""
    storage = open_storage(storage_url)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study_id = storage.get_study_id_from_name(summary.study_name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        outcomes = outcome_counts(trials)
        config = stored_config(storage, study_id) or {}
        sweep = config.get("sweep") or {}
        direction = summary.direction.name.lower() if summary.direction is not None else "multi"
        row = StudyRow(
            summary.study_name, direction, sweep.get("metric"), sweep.get("n_trials"),
            sum(counts_toward_total(t) for t in trials), outcomes, started=summary.datetime_start,
        )  # fmt: skip
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        if complete and summary.direction is not None:
            best = (max if direction == "maximize" else min)(complete, key=lambda t: t.value)
            row.best_value, row.best_trial = float(best.value), best.number
        rows.append(row)
    return sorted(rows, key=lambda r: r.started or datetime.min)


@dataclass(frozen=True)
class DeletePlan:
    """What ``delete_study`` would remove: shown to the user before asking."""

    name: str
    storage_url: str
    n_trials: int
    tracking_uri: str
    experiment_id: str | None
    n_runs: int

    def describe(self) -> str:
        runs = (f"MLflow experiment {self.name} ({self.n_runs} runs) in {redact(self.tracking_uri)}"
                if self.experiment_id else f"no MLflow experiment {self.name} in {redact(self.tracking_uri)}")
        return f"Optuna study {self.name} ({self.n_trials} trials) in {redact(self.storage_url)}; {runs}"


def plan_delete(storage_url: str, tracking_uri: str, name: str) -> DeletePlan:
    """Check the study exists and count what would go; ``ConfigError`` naming the known studies if not."""
    storage = open_storage(storage_url)
    names = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in names:
        raise ConfigError("study", name, f"no such study in {redact(storage_url)}", ", ".join(sorted(names)) or "none")
    from sweeps.track.tracker import find_experiment  # MLflow loads only once the study is known

    experiment_id, n_runs = find_experiment(tracking_uri, name)
    return DeletePlan(name, storage_url, names[name].n_trials, tracking_uri, experiment_id, n_runs)


def delete_study(plan: DeletePlan) -> None:
    """Delete the study from Optuna's storage and its experiment from MLflow (renamed, then deleted)."""
    from sweeps.track.tracker import retire_experiment

    if plan.experiment_id is not None:
        retire_experiment(plan.tracking_uri, plan.experiment_id, f"{plan.name}-deleted-{time.strftime('%Y%m%dT%H%M%S')}")
    optuna.delete_study(study_name=plan.name, storage=plan.storage_url)

