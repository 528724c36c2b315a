"""One sweep, start to end: check every input, then run trials with both stores in step.

``plan_sweep`` validates everything a sweep needs (search space, objective, storage, tracking) and
creates nothing, so bad input leaves no study and no MLflow run behind. ``open_sweep`` creates or
resumes the study and its parent run, stores the sweep's config on the study (so workers elsewhere
run the same space), and corrects what dead workers left behind. ``work`` runs trials; ``close_sweep``
writes the summary on the parent run. ``run_sweep`` is the three in one process.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial

from sweeps.config.compose import to_yaml
from sweeps.config.sections import Sections
from sweeps.config.validation import check_search_against_trainer
from sweeps.errors import ConfigError, SweepFailed
from sweeps.lr.runner import objective_task, record_range_test, run_range_test
from sweeps.results.study_report import Report, publish_report
from sweeps.run.outcome import Outcome
from sweeps.run.outcome import outcome_counts as count_outcomes
from sweeps.run.signals import StopFlag, shielded
from sweeps.run.trial import RUN_ID_ATTR, TrialRunner
from sweeps.run.trial_slots import TrialSlots
from sweeps.run.worker import FailureStreak, Reaper, TrialCallback, run_trials
from sweeps.search.db_retry import ReconnectingStorage
from sweeps.search.init_lock import store_init_lock
from sweeps.search.seeding import grid_exhausted
from sweeps.search.space import SearchSpace, apply_params, parse_search_space
from sweeps.search.sqlite_tuning import tune_sqlite_connections
from sweeps.search.study import check_storage, finished_count, open_study, redact
from sweeps.search.study_config import TRIAL_VERSION_ATTR, VERSIONS_ATTR, config_of_trial, remember, store_config, stored_config
from sweeps.track.tracker import SweepTracker, best_trial_metrics, check_tracking, sweep_params
from sweeps.train.accelerator import guard_out_of_memory
from sweeps.train.objective import Objective, load_objective
from sweeps.train.rung_eval import check_rung_eval

LR_FIND_ATTR = "lr_find"
LOCAL_KEYS = ("storage", "tracking")


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: its composed config (what each trial's config starts from), its typed
    sections (what the service reads), its search space and objective."""

    cfg: DictConfig
    space: SearchSpace
    objective: Objective | None
    sections: Sections = None  # type: ignore[assignment]  (None: read from cfg here)

    def __post_init__(self) -> None:
        if self.sections is None:
            object.__setattr__(self, "sections", Sections.of(self.cfg))


@dataclass
class Sweep:
    """An opened sweep: its plan (with any range-test bounds applied), study and tracking."""

    plan: SweepPlan
    study: optuna.Study
    tracker: SweepTracker
    parent_run_id: str
    reaper: Reaper
    config_version: int = 0  # which of the study's configs this process runs (sweeps.search.study_config)
    timed_out: bool = False  # work() stopped at sweep.timeout before the study's total


@dataclass
class SweepResult:
    study: optuna.Study
    parent_run_id: str
    ran: int
    counts: Counter = field(default_factory=Counter)
    aborted: str | None = None
    report: Report | None = None

    @property
    def best(self) -> FrozenTrial | None:
        try:
            return self.study.best_trial
        except ValueError:
            return None


def plan_sweep(cfg: DictConfig) -> SweepPlan:
    """Validate a composed config end to end; raises ``ConfigError``; writes nothing."""
    sections = Sections.of(cfg)  # every service section typed; sweep.timeout, diagnosis.* checked
    space = parse_search_space(cfg)
    check_search_against_trainer(cfg, space)  # a bound no trial could train with is refused here
    if sections.sweep.sampler == "grid":
        space.grid()
    objective = load_objective(cfg)
    check_rung_eval(cfg.train)  # a bad value must stop the sweep here, not fail its first trial
    if sections.lr_find.enabled:
        if not any(p.name == "lr" and p.target == "train.lr" for p in space.params):
            raise ConfigError("lr_find", "auto", "seeds search.lr (setting train.lr), which this search space lacks")
        objective_task(cfg.objective)
    tune_sqlite_connections()  # validates SWEEPS_SQLITE_JOURNAL before anything is written
    check_storage(sections.storage.url)
    check_tracking(sections.tracking.uri)
    return SweepPlan(cfg, space, objective, sections)


def open_sweep(plan: SweepPlan) -> Sweep:
    """Create or resume the study and its parent run; fail stale trials, close their runs."""
    cfg, settings = plan.cfg, plan.sections
    with store_init_lock(settings.storage.url, settings.tracking.uri):  # two processes on fresh SQLite stores
        study = open_study(sweep=settings.sweep, storage=settings.storage, space=plan.space)
        # another search space, objective or trainer on an existing study is refused (sweeps.search.study_config)
        version = remember(study, shareable_config(cfg), settings.sweep.allow_config_change)
        if stored_total(study) != settings.sweep.n_trials:
            set_total(study, settings.sweep.n_trials)  # workers of this study re-read it before each trial
        tracker = SweepTracker.from_section(settings.tracking, study.study_name)
    reaper = Reaper(tracker, settings.storage.reap_interval)
    reaper(study)
    parent_run_id = tracker.open_parent(_parent_tags(settings, objective=str(cfg.objective.name)))
    changed = tracker.log_new_params(parent_run_id, sweep_params(shareable_config(cfg)))
    tracker.set_tags(parent_run_id, {f"sweeps.changed.{k}": f"{old} -> {now}" for k, (old, now) in changed.items()})
    tracker.log_text(parent_run_id, to_yaml(OmegaConf.masked_copy(cfg, [k for k in cfg if k not in LOCAL_KEYS])), "sweep_config.yaml")
    if settings.lr_find.enabled:
        plan = _seed_lr_bounds(plan, study, tracker, parent_run_id)
    return Sweep(plan, study, tracker, parent_run_id, reaper, version)


def work(sweep: Sweep, callbacks: Sequence[TrialCallback] = (), stop: StopFlag | None = None, max_trials: int | None = None) -> tuple[int, str | None]:
    """Run trials until the study's total (or ``max_trials`` here); returns (ran, why aborted)."""
    plan, settings = sweep.plan, sweep.plan.sections
    runner = TrialRunner(plan.cfg, plan.space, guard_out_of_memory(plan.objective), sweep.tracker, stop, sections=settings)  # GPU OOM fails the trial only
    slots = TrialSlots(settings.storage.url, sweep.study.study_name, retry_deadline=float(settings.storage.grace_period))
    try:
        total = lambda: stored_total(sweep.study, default=settings.sweep.n_trials)  # noqa: E731
        deadline = _deadline(settings.sweep.timeout)
        versioned = {TRIAL_VERSION_ATTR: sweep.config_version} if stored_config(sweep.study, key=VERSIONS_ATTR) else None
        failures = FailureStreak(settings.sweep.max_failures)
        ran = run_trials(sweep.study, runner, total, [*callbacks, sweep.reaper], stop, max_trials, slots=slots, deadline=deadline,
                         trial_attrs=versioned, failures=failures)
    finally:
        slots.close()
    if failures.tripped:
        raise SweepFailed(failures.reason())
    if deadline is not None and time.monotonic() >= deadline and not total_reached(sweep):
        sweep.timed_out = True
        sweep.tracker.set_tags(sweep.parent_run_id, {"sweeps.timeout_reached": f"{settings.sweep.timeout:g} s, after {ran} trials here"})
    return ran, runner.aborted


def _deadline(timeout: float | None) -> float | None:
    """``time.monotonic()`` after which no trial starts (``sweep.timeout`` seconds from now), or None."""
    return None if timeout is None else time.monotonic() + timeout


def close_sweep(sweep: Sweep, status: str, ran: int = 0, aborted: str | None = None) -> SweepResult:
    """Summary metrics, best config and final status on the parent run."""
    result = SweepResult(sweep.study, sweep.parent_run_id, ran, outcome_counts(sweep.study), aborted)
    settings = sweep.plan.sections
    metric = settings.sweep.metric
    # every outcome, 0 included: a resumed sweep overwrites the counts of the last run (no stale n_waiting)
    seen = {*(o.value for o in Outcome), *result.counts}
    metrics = {f"n_{outcome}": float(result.counts.get(outcome, 0)) for outcome in sorted(seen)}
    tags = {"sweeps.status": status.lower()}
    best = result.best
    if best is not None:
        metrics[f"best_{metric}"] = float(best.value)
        metrics.update(best_trial_metrics(sweep.plan.space.applied(best.params)))
        tags["sweeps.best_trial"] = str(best.number)
        tags["sweeps.best_run_id"] = str(best.user_attrs.get(RUN_ID_ATTR, ""))
        sweep.tracker.log_text(sweep.parent_run_id, to_yaml(best_config(sweep.plan, best, sweep.study)), "best_config.yaml")
    if aborted:
        tags["sweeps.error"] = aborted
    try:
        result.report = publish_report(sweep.study, sweep.tracker, sweep.parent_run_id, sweep=settings.sweep,
                                       thresholds=settings.diagnosis, space=sweep.plan.space)
    except Exception as err:  # a figure must never cost the sweep its summary or its final status
        tags["sweeps.report_error"] = f"{type(err).__name__}: {err}"[:500]
    sweep.tracker.close_parent(status, metrics, tags)
    return result


def total_reached(sweep: Sweep) -> bool:
    return finished_count(sweep.study) >= stored_total(sweep.study, default=sweep.plan.sections.sweep.n_trials)


def stored_total(study: optuna.Study, default: int | None = None) -> int | None:
    """The study's total as stored with its config (``sweeps run`` and ``sweeps extend`` change it)."""
    stored = stored_config(study)
    try:
        return int(stored["sweep"]["n_trials"])
    except (TypeError, KeyError, ValueError):
        return default


def extend(study: optuna.Study, n_trials: int) -> int:
    """``sweeps extend``: set the study's total to ``n_trials``; returns the previous total."""
    finished = finished_count(study)
    if n_trials < max(1, finished):
        raise ConfigError("N", n_trials, f"study {study.study_name!r} already has {finished} finished trials", f"an integer >= {max(1, finished)}")
    previous = stored_total(study)
    set_total(study, n_trials)
    return previous


def set_total(study: optuna.Study, n_trials: int) -> None:
    """Store a new total: the CLI's next status shows it and every running worker takes it up
    before its next trial (``work`` re-reads it), so raising it mid-sweep reaches all of them."""
    stored = dict(stored_config(study) or {})
    stored["sweep"] = {**stored.get("sweep", {}), "n_trials": int(n_trials)}
    store_config(study, stored)


def run_sweep(
    plan: SweepPlan,
    callbacks: Sequence[TrialCallback] = (),
    on_open: Callable[[optuna.Study], None] | None = None,
    stop: StopFlag | None = None,
) -> SweepResult:
    """Open or resume the sweep, run trials to the total, close the parent run (one process).

    ``callbacks`` run after every trial (progress views); ``on_open`` sees the study once opened.
    The parent run ends FINISHED, FAILED (aborted) or KILLED (interrupted).
    """
    sweep = open_sweep(plan)
    if on_open is not None:
        on_open(sweep.study)
    status, ran, aborted = "KILLED", 0, None  # stays KILLED if the loop is interrupted
    try:
        ran, aborted = work(sweep, callbacks, stop)
        status = "FAILED" if aborted else ("FINISHED" if total_reached(sweep) or grid_exhausted(sweep.study) or sweep.timed_out else "KILLED")
    except SweepFailed as err:  # the parent run ends FAILED with the error; the CLI exits 1
        status, aborted = "FAILED", str(err)
        raise
    finally:
        with shielded():  # a second Ctrl-C waits until the parent run is closed
            result = close_sweep(sweep, status, ran, aborted)
    return result


WORKER_LOCAL_OVERRIDES = ("storage", "tracking", "sweep.study_name", "train.device", "train.threads", "hydra.")


def config_from_study(local: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """A worker's config: the study's stored config, with this machine's stores, device and threads.

    Everything else is fixed by the study, so every worker runs the same search space and trainer;
    an override of such a key is refused rather than silently ignored.
    """
    for override in overrides:
        key = override.lstrip("+~").partition("=")[0]
        if not key.startswith(WORKER_LOCAL_OVERRIDES):
            raise ConfigError(key, override.partition("=")[2], "fixed by the study for every worker", "storage*, tracking*, sweep.study_name, train.device, train.threads")
    here = Sections.of(local)
    check_storage(here.storage.url, create=False)  # joining or reading a study never creates a store
    name = here.sweep.study_name
    tune_sqlite_connections()
    storage = ReconnectingStorage(here.storage.url, retry_deadline=float(here.storage.grace_period))
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    if name not in summaries:
        raise ConfigError("sweep.study_name", name, f"no such study in {redact(here.storage.url)}", ", ".join(sorted(summaries)) or "create it with `sweeps create` or `sweeps run`")
    stored = stored_config(storage, storage.get_study_id_from_name(name))
    if stored is None:
        raise ConfigError("sweep.study_name", name, "was not created by sweeps (it has no stored config)")
    cfg = OmegaConf.create({**stored, **{k: OmegaConf.to_container(local[k], resolve=True) for k in LOCAL_KEYS}})
    cfg.train.device, cfg.train.threads = local.train.device, local.train.threads
    OmegaConf.set_struct(cfg, True)
    return cfg


def shareable_config(cfg: DictConfig) -> dict[str, Any]:
    """The config workers must share, without the local keys (store URLs may hold passwords)."""
    container = OmegaConf.to_container(cfg, resolve=True)
    return {k: v for k, v in container.items() if k not in LOCAL_KEYS}


def best_config(plan: SweepPlan, trial: FrozenTrial, study: optuna.Study | None = None) -> DictConfig:
    """The complete config the trial trained with (not only its sampled params); on a study whose
    config changed (``sweep.allow_config_change``), the config of the trial's own version."""
    if study is not None and stored_config(study, key=VERSIONS_ATTR):
        from sweeps.results.export import trial_config

        return trial_config(config_of_trial(study, trial, shareable_config(plan.cfg)), trial)
    return apply_params(plan.cfg, plan.space.applied(trial.params))


def outcome_counts(study: optuna.Study) -> Counter:
    return count_outcomes(study.get_trials(deepcopy=False))


def _seed_lr_bounds(plan: SweepPlan, study: optuna.Study, tracker: SweepTracker, parent_run_id: str) -> SweepPlan:
    """Run the LR range test once per study and search ``lr`` within the bounds it gives.

    The bounds are kept on the study (user attr ``lr_find``), so a resumed sweep or another worker
    searches the same space without re-running the test.
    """
    found = study.user_attrs.get(LR_FIND_ATTR)
    if found is None:
        report = run_range_test(objective=plan.cfg.objective, train=plan.cfg.train, settings=plan.sections.lr_find)
        run_id, plot = record_range_test(tracker, report, parent_run_id)
        found = {**report.summary(), "run_id": run_id}
        study.set_user_attr(LR_FIND_ATTR, found)
        tracker.log_artifact(parent_run_id, plot)
        tracker.set_tags(parent_run_id, {f"sweeps.lr_find.{k}": (f"{v:.6g}" if isinstance(v, float) else v) for k, v in found.items()})
    space = plan.space.with_bounds("lr", float(found["search_low"]), float(found["search_high"]))
    return replace(plan, space=space)


def _parent_tags(settings: Sections, *, objective: str) -> dict[str, str]:
    sweep = settings.sweep
    return {
        "sweeps.objective": objective,
        "sweeps.storage": redact(settings.storage.url),
        "sweeps.sampler": sweep.sampler,
        "sweeps.pruner": sweep.pruner,
        "sweeps.metric": sweep.metric,
        "sweeps.direction": sweep.direction,
        "sweeps.n_trials": str(sweep.n_trials),
        "sweeps.status": "running",
    }
