"""One sweep, start to end: check every input, then run trials with both stores in step.

``plan_sweep`` validates everything a sweep needs (search space, objective, storage, tracking)
and creates nothing, so bad input leaves no study and no MLflow run behind. ``run_sweep`` opens
the study and the parent run (or resumes both), corrects what a dead worker left behind, runs
trials to the study's total and writes the summary on the parent run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import optuna
from omegaconf import DictConfig
from optuna.trial import FrozenTrial, TrialState

from sweeps.config import to_yaml
from sweeps.errors import ConfigError
from sweeps.objective import Objective, load_objective
from sweeps.range_test import objective_task, record_range_test, run_range_test
from sweeps.space import SearchSpace, apply_params, parse_search_space
from sweeps.study import OUTCOME_ATTR, check_storage, fail_stale_trials, open_study, redact
from sweeps.tracking import SweepTracker, check_tracking
from sweeps.trial import RUN_ID_ATTR, TrialRunner
from sweeps.worker import TrialCallback, run_trials

LR_FIND_ATTR = "lr_find"
STATE_OUTCOME = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "lost"}


@dataclass(frozen=True)
class SweepPlan:
    cfg: DictConfig
    space: SearchSpace
    objective: Objective


@dataclass
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    ran: int
    counts: Counter = field(default_factory=Counter)
    aborted: str | None = None

    @property
    def best(self) -> FrozenTrial | None:
        try:
            return self.study.best_trial
        except ValueError:
            return None


def plan_sweep(cfg: DictConfig) -> SweepPlan:
    """Validate a composed config end to end; raises ``ConfigError``; writes nothing."""
    space = parse_search_space(cfg)
    if cfg.sweep.sampler == "grid":
        space.grid()
    objective = load_objective(cfg)
    if cfg.lr_find.enabled:
        if not any(p.name == "lr" and p.target == "train.lr" for p in space.params):
            raise ConfigError("lr_find", "auto", "seeds search.lr (setting train.lr), which this search space lacks")
        objective_task(cfg)
    check_storage(str(cfg.storage.url))
    check_tracking(str(cfg.tracking.uri))
    return SweepPlan(cfg, space, objective)


def run_sweep(
    plan: SweepPlan, callbacks: Sequence[TrialCallback] = (), on_open: Callable[[optuna.Study], None] | None = None
) -> SweepResult:
    """Open or resume the study and its parent run, run trials to the total, close the parent run.

    ``callbacks`` run after every trial (progress views); ``on_open`` sees the study once opened.
    """
    cfg = plan.cfg
    study = open_study(cfg, plan.space)
    if on_open is not None:
        on_open(study)
    tracker = SweepTracker(str(cfg.tracking.uri), study.study_name, cfg.tracking.get("artifact_location"))
    fail_stale_trials(study)
    tracker.reap(_ended_trial_runs(study))
    parent_run_id = tracker.open_parent(_parent_tags(cfg))
    tracker.log_text(parent_run_id, to_yaml(cfg), "sweep_config.yaml")
    if cfg.lr_find.enabled:
        plan = _seed_lr_bounds(plan, study, tracker, parent_run_id)
    runner = TrialRunner(cfg, plan.space, plan.objective, tracker)
    status, ran = "KILLED", 0  # stays KILLED if the loop is interrupted
    try:
        ran = run_trials(study, runner, int(cfg.sweep.n_trials), callbacks)
        status = "FAILED" if runner.aborted else "FINISHED"
    finally:
        result = SweepResult(study, parent_run_id, ran, _outcome_counts(study), runner.aborted)
        _close_parent(tracker, plan, result, status)
    return result


def _seed_lr_bounds(plan: SweepPlan, study: optuna.Study, tracker: SweepTracker, parent_run_id: str) -> SweepPlan:
    """Run the LR range test once per study and search ``lr`` within the bounds it gives.

    The bounds are kept on the study (user attr ``lr_find``), so a resumed sweep searches the same
    space without re-running the test.
    """
    found = study.user_attrs.get(LR_FIND_ATTR)
    if found is None:
        report = run_range_test(plan.cfg)
        run_id, plot = record_range_test(tracker, report, parent_run_id)
        found = {**report.summary(), "run_id": run_id}
        study.set_user_attr(LR_FIND_ATTR, found)
        tracker.client.log_artifact(parent_run_id, str(plot))
        tracker.set_tags(parent_run_id, {f"sweeps.lr_find.{k}": (f"{v:.6g}" if isinstance(v, float) else v) for k, v in found.items()})
    space = plan.space.with_bounds("lr", float(found["search_low"]), float(found["search_high"]))
    return SweepPlan(plan.cfg, space, plan.objective)


def best_config(plan: SweepPlan, trial: FrozenTrial) -> DictConfig:
    """The complete config the trial trained with (not only its sampled params)."""
    return apply_params(plan.cfg, plan.space.applied(trial.params))


def _ended_trial_runs(study: optuna.Study):
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if run_id and trial.state in STATE_OUTCOME:
            yield run_id, trial.user_attrs.get(OUTCOME_ATTR, STATE_OUTCOME[trial.state]), f"trial {trial.number} ended {trial.state.name}"


def _outcome_counts(study: optuna.Study) -> Counter:
    counts: Counter = Counter()
    for trial in study.get_trials(deepcopy=False):
        counts[trial.user_attrs.get(OUTCOME_ATTR, STATE_OUTCOME.get(trial.state, trial.state.name.lower()))] += 1
    return counts


def _parent_tags(cfg: DictConfig) -> dict[str, str]:
    return {
        "sweeps.objective": str(cfg.objective.name),
        "sweeps.storage": redact(str(cfg.storage.url)),
        "sweeps.sampler": str(cfg.sweep.sampler),
        "sweeps.pruner": str(cfg.sweep.pruner),
        "sweeps.metric": str(cfg.sweep.metric),
        "sweeps.direction": str(cfg.sweep.direction),
        "sweeps.n_trials": str(cfg.sweep.n_trials),
        "sweeps.status": "running",
    }


def _close_parent(tracker: SweepTracker, plan: SweepPlan, result: SweepResult, status: str) -> None:
    metric = str(plan.cfg.sweep.metric)
    metrics = {f"n_{outcome}": float(n) for outcome, n in result.counts.items()}
    tags = {"sweeps.status": status.lower()}
    best = result.best
    if best is not None:
        metrics[f"best_{metric}"] = float(best.value)
        tags["sweeps.best_trial"] = str(best.number)
        tags["sweeps.best_run_id"] = str(best.user_attrs.get(RUN_ID_ATTR, ""))
        tracker.log_text(result.parent_run_id, to_yaml(best_config(plan, best)), "best_config.yaml")
    if result.aborted:
        tags["sweeps.error"] = result.aborted
    tracker.close_parent(status, metrics, tags)
