"""``sweeps reproduce``: re-train a study's top configs on several seeds, under one MLflow run.

A trial's value is one draw of its config's noise; the mean and spread over seeds say which config
is robustly best (``production.most_robust``). Each re-training is a production run (the trial's
own config, the shared trainer) nested under a ``reproduce`` run that ends with the means and
spreads as metrics and the most robust trial as a tag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from omegaconf import DictConfig, open_dict
from optuna.trial import FrozenTrial, TrialState

from sweeps.config.sections import Sections
from sweeps.errors import ConfigError
from sweeps.results.export import trial_config
from sweeps.results.production import Reproduction, most_robust, seeds_for, train_production
from sweeps.run.outcome import Outcome
from sweeps.run.sweep import shareable_config
from sweeps.search.study_config import config_of_trial
from sweeps.track.tracker import ROLE_TAG, SweepTracker, trial_run_name

REPRODUCE_ROLE = "reproduce"


@dataclass(frozen=True)
class Reproduced:
    results: list[Reproduction]  # one per chosen trial, in the order chosen (best first)
    robust: Reproduction
    run_id: str  # the MLflow run the re-trainings are nested under


def top_trials(study: optuna.Study, direction: str, top: int) -> list[FrozenTrial]:
    """The ``top`` complete trials by value, best first; ``ConfigError`` when there is none."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None and t.state == TrialState.COMPLETE]
    if not complete:
        raise ConfigError("sweep.study_name", study.study_name, "has no completed trial yet")
    return sorted(complete, key=lambda t: t.value, reverse=direction == "maximize")[:top]


def reproduce(study: optuna.Study, cfg: DictConfig, chosen: Sequence[FrozenTrial], seeds: int, advance: Callable[[], None] = lambda: None) -> Reproduced:
    """Train each of ``chosen`` on ``seeds`` seeds (its own first); ``advance`` after each training."""
    settings = Sections.of(cfg)
    tracker = SweepTracker.from_section(settings.tracking, study.study_name)
    parent = tracker.start_run(REPRODUCE_ROLE, {ROLE_TAG: REPRODUCE_ROLE, "sweeps.top": str(len(chosen)), "sweeps.seeds": str(seeds)})
    results = []
    for trial in chosen:
        trial_cfg = trial_config(config_of_trial(study, trial, shareable_config(cfg)), trial)  # the config it ran with
        with open_dict(trial_cfg):
            trial_cfg.provenance = {"study": study.study_name, "trial": trial.number, "mlflow_run_id": trial.user_attrs.get("mlflow_run_id")}
        values = []
        for seed in seeds_for(int(trial_cfg.train.seed), seeds):
            trial_cfg.train.seed = seed
            values.append(train_production(trial_cfg, tracker, parent_run_id=parent, name=f"{trial_run_name(trial.number)}-seed-{seed}").value)
            advance()
        results.append(Reproduction(trial.number, tuple(values)))
    robust = most_robust(results, settings.sweep.maximize)
    tracker.log_metrics(parent, None, {**{f"trial_{r.trial}_mean": r.mean for r in results}, **{f"trial_{r.trial}_std": r.std for r in results}})
    tracker.end_trial(parent, Outcome.COMPLETE, {"sweeps.most_robust_trial": str(robust.trial)})
    return Reproduced(results, robust, parent)
