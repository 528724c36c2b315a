"""What a launched job runs: the app's task function as trial ``hydra.job.num`` of the sweep's study.

Picklable (joblib and submitit ship it to other processes) and light to unpickle: the service is
imported inside the job. The job finds its study from its own ``hydra.sweeper`` node, runs the task
function with ``sweeps.results.study_report`` routed to its trial, and records the outcome in both stores
(``sweeps.run.foreign.run_trial``): pruned is PRUNED and the job returns normally; a failure is FAIL and
the job fails as Hydra reports it.
"""

from __future__ import annotations

from typing import Any

from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf


class TrialJob:
    def __init__(self, task_function: TaskFunction) -> None:
        self.task_function = task_function

    def __call__(self, cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig

        from hydra_plugins.sweeps_sweeper._settings import local_config
        from sweeps.run.foreign import run_trial
        from sweeps.track.tracker import flatten

        hydra = HydraConfig.get()
        local = local_config(hydra.sweeper, str(hydra.job.name), str(hydra.runtime.cwd))
        run_params = {**flatten(OmegaConf.to_container(cfg, resolve=True)), "hydra.job_dir": str(hydra.runtime.output_dir)}
        return run_trial(local, int(hydra.job.num), lambda: self.task_function(cfg), run_params)
