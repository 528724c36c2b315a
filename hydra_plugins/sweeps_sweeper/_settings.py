"""The sweeper's settings as the service's config: one pure function, run by the sweeper and again by
every job (which finds its study through it: storage URL, study name; its trial is ``hydra.job.num``).

The storage URL is never put on a job's command line or in its overrides: a job resolves it from
its own ``hydra.sweeper`` node (``${oc.env:SWEEPS_STORAGE_URL}`` stays an interpolation in the
saved ``hydra.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.errors import ConfigError
from sweeps.run.foreign import service_config

WHERE = "hydra.sweeper."
SAMPLERS = {"optuna.samplers.TPESampler": "tpe", "optuna.samplers.RandomSampler": "random", "optuna.samplers.GridSampler": "grid"}


def local_config(settings: Mapping[str, Any], job_name: str, launch_dir: str) -> DictConfig:
    """The service config (``sweeps.run.foreign.service_config``) for these sweeper settings."""
    direction = settings.get("direction")
    if not isinstance(direction, str):
        raise ConfigError(f"{WHERE}direction", _plain(direction), "sweeps optimizes one objective", "minimize, maximize")
    if settings.get("custom_search_space"):
        raise ConfigError(f"{WHERE}custom_search_space", settings["custom_search_space"], "not supported",
                          "a search: mapping (zero_prob, when) for what params: cannot say")
    sampler = _plain(settings.get("sampler")) or {}
    target = sampler.get("_target_", "optuna.samplers.TPESampler")
    if target not in SAMPLERS:
        raise ConfigError(f"{WHERE}sampler._target_", target, "not a sampler sweeps runs", ", ".join(SAMPLERS))
    sweep = {
        "study_name": settings.get("study_name") or job_name,
        "n_trials": settings.get("n_trials"),
        "direction": direction,
        "metric": settings.get("metric"),
        "pruner": settings.get("pruner"),
        "sampler": SAMPLERS[target],
        "seed": sampler.get("seed"),
        "workers": settings.get("n_jobs"),
        "tpe": {k: sampler[k] for k in ("n_startup_trials", "multivariate") if sampler.get(k) is not None},
    }
    return service_config(
        job_name, sweep, epochs=settings.get("epochs"), storage=settings.get("storage"),
        tracking_uri=settings.get("tracking_uri"), base_dir=launch_dir, where=WHERE,
    )


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
