"""``SweepsSweeper``: the class Hydra finds and instantiates. It only stores its settings: the sweep
itself (``_impl``) imports Optuna, MLflow and the service, which an app that does not sweep must not
pay for at every start."""

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.sweeps_sweeper.config import SweepsSweeperConf  # noqa: F401  (registers the configs)


class SweepsSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self._impl: Optional[Any] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra_plugins.sweeps_sweeper._impl import SweepsSweeperImpl

        self._impl = SweepsSweeperImpl(self.settings)
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        assert self._impl is not None, "setup() first"
        return self._impl.sweep(arguments)
