"""The sweeper's config (``hydra/sweeper=sweeps``) and its sampler choices (``hydra/sweeper/sampler``).

The keys of hydra-optuna-sweeper keep their meaning, so migrating is changing
``override hydra/sweeper: optuna`` to ``sweeps``: ``params`` (Hydra's sweep grammar), ``direction``,
``study_name``, ``storage``, ``n_trials``, ``n_jobs``, ``sampler`` (``seed``, or another sampler via
``override hydra/sweeper/sampler: random``). Ours: ``search`` (mappings with ``zero_prob`` and
``when``), ``metric`` (what ``sweeps.results.study_report`` reports for the pruner), ``pruner`` with ``epochs``,
``tracking_uri`` and ``export_dir``. Kept light: Hydra imports this for every app it starts.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None  # null: the service's default seed (0), so a sweep is reproducible
    n_startup_trials: Optional[int] = None  # null: the service's default (conf/sweep/default.yaml)
    multivariate: Optional[bool] = None


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class GridSamplerConf:
    _target_: str = "optuna.samplers.GridSampler"
    seed: Optional[int] = None


@dataclass
class SweepsSweeperConf:
    _target_: str = "hydra_plugins.sweeps_sweeper.sweeper.SweepsSweeper"
    _recursive_: bool = False  # the sampler's _target_ names a sampler; sweeps builds it (seeding, constant liar)
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    sampler: Any = MISSING
    direction: Any = "minimize"  # minimize | maximize
    study_name: Optional[str] = None  # null: the app's job name (the script's name)
    storage: Optional[str] = None  # null: SWEEPS_STORAGE_URL, else sqlite:///optuna.db in the launch folder
    n_trials: int = 20  # the study's total: a re-run continues to it, it does not add more
    n_jobs: int = 1  # concurrent trials under a parallel launcher (joblib, submitit); needs PostgreSQL
    params: Optional[Dict[str, Any]] = None  # key: sweep expression, or a fixed value
    custom_search_space: Optional[str] = None  # hydra-optuna-sweeper's define-by-run hook: refused

    search: Dict[str, Any] = field(default_factory=dict)  # key: {type, low, high, log, zero_prob, when, ...}
    metric: str = "objective"  # the name of the returned value, and of what sweeps.report reports for the pruner
    pruner: str = "auto"  # hyperband | median | none; auto: hyperband when epochs is set, else none
    epochs: Optional[int] = None  # epochs per trial: Hyperband's maximum resource
    tracking_uri: Optional[str] = None  # null: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the launch folder
    export_dir: str = "${hydra.sweep.dir}/best"  # the best trial as +experiment=best (and overrides.txt)


ConfigStore.instance().store(group="hydra/sweeper", name="sweeps", node=SweepsSweeperConf, provider="sweeps")
for _name, _node in (("tpe", TPESamplerConf), ("random", RandomSamplerConf), ("grid", GridSamplerConf)):
    ConfigStore.instance().store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="sweeps")
