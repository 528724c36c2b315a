"""A sweep of code the service does not train: a Hydra app (``hydra_plugins.sweeps_sweeper``) or a
Python function (``sweeps.api.optimize``).

It is the service's sweep with the trial split in two: the sweeping side asks the study for a trial
and its params (``TrialAsker``); whoever runs the training opens that trial by number
(``run_trial``: a Hydra job in another process, or this process) and calls ``sweeps.api.report``
each epoch. Both sides reuse the service's pieces: the search space (``sweeps.search.space``), the study
with its sampler, pruner and totals (``sweeps.search.study``, ``sweeps.run.sweep.open_sweep``), the trial's life
and outcome mapping (``sweeps.run.trial.TrialRunner``) and the MLflow record (``sweeps.track.tracker``).
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.storages._heartbeat import get_heartbeat_thread  # what study.optimize runs around a trial
from optuna.trial import FrozenTrial, TrialState

from sweeps.api import TrialContext, reporting_to
from sweeps.config.compose import builtin_config_dir, to_yaml, validate
from sweeps.config.sections import StorageSection, SweepSection, TrackingSection
from sweeps.errors import ConfigError
from sweeps.run.outcome import Outcome
from sweeps.run.sweep import LOCAL_KEYS, Sweep, SweepPlan, SweepResult, close_sweep, open_sweep
from sweeps.run.trial import TrialRunner
from sweeps.run.trial_slots import TrialSlots
from sweeps.search.seeding import grid_exhausted
from sweeps.search.space import SearchSpace
from sweeps.search.study import OUTCOME_ATTR, check_storage, counts_toward_total, fail_stale_trials, make_pruner, make_storage
from sweeps.search.study_config import stored_config
from sweeps.track.tracker import SweepTracker, check_tracking
from sweeps.train.reporter import MetricMissing, TrialReporter

# Optuna warns when a storage with heartbeats is used through ask/tell: run_trial runs the heartbeat itself.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


SHIPPED_SECTIONS = {"sweep": "sweep/default.yaml", "storage": "storage/sqlite.yaml", "tracking": "tracking/local.yaml",
                    "lr_find": "lr_find/off.yaml", "diagnosis": "diagnosis/default.yaml"}
PRUNERS_NEEDING_EPOCHS = ("hyperband", "median")


def service_config(
    name: str,
    sweep: Mapping[str, Any],
    *,
    epochs: int | None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    base_dir: str | Path = ".",
    where: str = "",
) -> DictConfig:
    """The config the service's study, trials and tracking read, for code the service does not train.

    The shipped defaults of ``conf/`` (sampler and pruner knobs, heartbeats, flush interval,
    diagnosis thresholds) with ``sweep`` keys set over them, ``train.epochs`` (the pruner's maximum
    resource), and the stores; relative SQLite paths and the artifact folder are made absolute
    against ``base_dir``, so a job that changes directory opens the same files. ``sweep.pruner=auto``
    is Hyperband when ``epochs`` is known, else none. Errors name ``<where><key>``.
    """
    folder = builtin_config_dir()
    cfg = OmegaConf.create({section: OmegaConf.load(folder / path) for section, path in SHIPPED_SECTIONS.items()})
    trainer = OmegaConf.load(folder / "train/default.yaml")
    cfg.train = {"epochs": epochs if epochs is not None else 1, "diverge_factor": trainer.diverge_factor}  # diagnosis reads the guard's factor
    cfg.objective = {"name": name}
    cfg.search = {}  # the space lives in the sweep's SearchSpace; its targets are the code's own keys
    for key, value in sweep.items():
        if value is not None:
            OmegaConf.update(cfg, f"sweep.{key}", value, merge=True)
    if storage is not None:
        cfg.storage.url = storage
    if tracking_uri is not None:
        cfg.tracking.uri = tracking_uri
    if cfg.sweep.pruner == "auto":
        cfg.sweep.pruner = "hyperband" if epochs is not None else "none"
    if epochs is None and cfg.sweep.pruner in PRUNERS_NEEDING_EPOCHS:
        raise ConfigError(f"{where}epochs", None, f"the {cfg.sweep.pruner} pruner needs the epochs each trial trains", "an int, or pruner=none")
    OmegaConf.resolve(cfg)
    base = Path(base_dir).resolve()
    cfg.storage.url = absolute_sqlite(str(cfg.storage.url), base)
    cfg.tracking.uri = absolute_sqlite(str(cfg.tracking.uri), base)
    if cfg.tracking.get("artifact_location"):
        cfg.tracking.artifact_location = str(base / str(cfg.tracking.artifact_location))
    try:  # the service's own checks, on a copy with the trainer defaults they also read
        validate(OmegaConf.merge({"train": trainer}, cfg))
    except ConfigError as err:
        raise ConfigError(where + err.key.removeprefix("sweep.").removeprefix("train."), err.value, err.problem, err.allowed) from None
    return cfg


def absolute_sqlite(url: str, base: Path) -> str:
    """``sqlite:///optuna.db`` -> ``sqlite:////<base>/optuna.db``; other URLs unchanged."""
    match = re.fullmatch(r"sqlite:///(?!/)(.+)", url)
    return f"sqlite:///{base / match.group(1)}" if match else url

# --- the sweeping side: open, ask, close -----------------------------------------------------------

def open_foreign_sweep(cfg: DictConfig, space: SearchSpace, search: Mapping[str, Any]) -> Sweep:
    """Check both stores (creating nothing on failure), then create or resume the study and its
    parent run (``sweeps.run.sweep.open_sweep``); the space's specs become parent-run params."""
    plan = SweepPlan(cfg, space, objective=None)
    check_storage(plan.sections.storage.url)
    check_tracking(plan.sections.tracking.uri)
    sweep = open_sweep(plan)
    specs = {f"search.{k}": v if isinstance(v, str) else to_yaml(OmegaConf.create(v)).strip() for k, v in search.items()}
    sweep.tracker.log_new_params(sweep.parent_run_id, specs)
    return sweep


class TrialAsker:
    """Hands out the study's trials to several slots (threads) until its total is reached.

    A slot gets a trial only while finished plus running trials leave room (a resumed sweep
    continues to the same total); on PostgreSQL the count and the trial's creation run under the
    study's advisory lock (``sweeps.run.trial_slots``), so several sweepers on one study do not overshoot.
    """

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.total = sweep.plan.sections.sweep.n_trials
        self.slots = TrialSlots(sweep.plan.sections.storage.url, sweep.study.study_name)
        self.lock = threading.Lock()

    def next_trial(self) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """``(trial, {config key: applied value})``, or None when the total is reached."""
        study = self.sweep.study
        with self.lock:
            self.slots.acquire()
            try:
                if self._taken(study) >= self.total:
                    fail_stale_trials(study)  # a dead job's trial frees its slot (and is re-queued once)
                    if self._taken(study) >= self.total:
                        return None
                if grid_exhausted(study):
                    return None
                trial = study.ask()
            finally:
                self.slots.release()
        return trial, self.sweep.plan.space.sample(trial)

    @staticmethod
    def _taken(study: optuna.Study) -> int:
        return sum(counts_toward_total(t) or t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False))

    def close(self) -> None:
        self.slots.close()


def fail_unfinished(study: optuna.Study, number: int, why: str) -> bool:
    """Mark trial ``number`` FAIL (outcome failed, so it counts toward the total) if its runner
    never ended it, e.g. a job whose config did not compose; returns whether it did."""
    trial = optuna.Trial(study, study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    if study._storage.get_trial(trial._trial_id).state != TrialState.RUNNING:
        return False
    trial.set_user_attr(OUTCOME_ATTR, Outcome.FAILED.value)
    trial.set_user_attr("error", why[:500])
    study.tell(number, state=TrialState.FAIL)
    return True


def close_foreign_sweep(sweep: Sweep, status: str, best_config: Callable[[FrozenTrial], str] | None = None, aborted: str | None = None) -> SweepResult:
    """The service's close (``sweeps.run.sweep.close_sweep``: summary metrics, report, final status), then
    ``best_config.yaml`` on the parent run replaced by the code's own config of the best trial
    (``best_config(trial) -> YAML``): the service's one is its own config with the app's keys added."""
    result = close_sweep(sweep, status, 0, aborted)
    if result.best is not None and best_config is not None:
        sweep.tracker.log_text(sweep.parent_run_id, best_config(result.best), "best_config.yaml")
    return result


# --- the training side: one trial, opened by number ------------------------------------------------


def run_trial(local: DictConfig, number: int, train: Callable[[], Any], run_params: Mapping[str, Any]) -> float | None:
    """Run trial ``number`` of ``local.sweep.study_name`` (asked by the sweeping side) in this process.

    The study's stored config decides metric, pruner and epochs; ``local`` gives the stores.
    ``train()`` is the user's code: it calls ``report`` each epoch and returns the objective value
    (None: the last reported value of the metric). The outcome goes to both stores
    (``TrialRunner``): a pruned or diverged trial is told PRUNED and returns None; a failure is
    told FAIL and re-raised. The trial's heartbeat runs meanwhile, so a job that dies is failed and
    retried (``storage.max_retry``).
    """
    study, cfg, tracker = _open_study(to_yaml(local))
    storage = study._storage
    if storage.get_study_id_from_name(study.study_name) != study._study_id:  # deleted and created again since cached
        _open_study.cache_clear()
        study, cfg, tracker = _open_study(to_yaml(local))
        storage = study._storage
    trial = optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    runner = ForeignTrialRunner(cfg, SearchSpace(()), train, tracker, run_params)
    with get_heartbeat_thread(trial._trial_id, storage):
        try:
            value = runner(trial)
        except optuna.TrialPruned:
            study.tell(number, state=TrialState.PRUNED)
            return None
        except BaseException as err:
            study.tell(number, state=TrialState.FAIL)
            if runner.aborted is not None and isinstance(err, RuntimeError):  # TrialRunner's study.stop() outside optimize
                raise MetricMissing(runner.aborted) from None
            raise
    study.tell(number, value)
    return value


@functools.lru_cache(maxsize=4)
def _open_study(local_yaml: str) -> tuple[optuna.Study, DictConfig, SweepTracker]:
    """The study (with its stored config's pruner), config and tracker a job needs, once per
    process: a parallel launcher's worker runs many trials, and opening both stores costs
    round-trips (schema checks, experiment and parent-run lookups)."""
    local = OmegaConf.create(local_yaml)
    storage = make_storage(StorageSection.from_config(local))
    name = str(local.sweep.study_name)
    stored = stored_config(storage, storage.get_study_id_from_name(name))
    if stored is None:
        raise ConfigError("sweep.study_name", name, "was not created by sweeps (it has no stored config)")
    cfg = OmegaConf.create({**stored, **{k: OmegaConf.to_container(local[k], resolve=True) for k in LOCAL_KEYS}})
    study = optuna.load_study(study_name=name, storage=storage, pruner=make_pruner(SweepSection.from_config(cfg)))
    tracker = SweepTracker.from_section(TrackingSection.from_config(cfg), name)
    tracker.parent_run_id = tracker.find_parent()
    return study, cfg, tracker


class ForeignTrialRunner(TrialRunner):
    """A trial whose config was made elsewhere (a Hydra job's composed config, a function's
    params): the child run's params are that config; the objective runs ``train`` with ``report``
    routed to this trial."""

    def __init__(self, cfg: DictConfig, space: Any, train: Callable[[], Any], tracker: Any, run_params: Mapping[str, Any]) -> None:
        super().__init__(cfg, space, self._objective, tracker)
        self.train = train
        self.run_params = dict(run_params)
        self.number: int | None = None

    def __call__(self, trial: Any) -> float:
        self.number = trial.number
        return super().__call__(trial)

    def _objective(self, _trial_cfg: DictConfig, reporter: TrialReporter) -> float:
        context = TrialContext(reporter, self.tracker.study_name, self.number, self.buffer.run_id)
        with reporting_to(context):
            value = self.train()
        if value is None and reporter.history:
            value = reporter.history[-1][self.metric]
        if value is None:
            raise MetricMissing(f"the code returned None and reported no {self.metric}")
        return float(value)

    def _params(self, trial: Any, trial_cfg: DictConfig) -> dict[str, Any]:
        return {**trial.params, **self.run_params}
