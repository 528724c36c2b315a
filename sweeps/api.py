"""Sweeps of training code that is not a sweeps objective: a Hydra app swept with
``python app.py -m hydra/sweeper=sweeps`` (``hydra_plugins.sweeps_sweeper``) or a Python function
(``optimize``).

Inside a trial the code calls ``report(epoch, **metrics)`` once per epoch. The metrics go to the
trial's MLflow child run (buffered, as the shared trainer's are), to the study where its pruner reads,
and to the divergence guard and the curve diagnosis; when the pruner (or the guard) says stop,
``report`` raises ``Pruned`` (``Diverged``) and the trial is recorded PRUNED, not failed. Outside a
sweep ``report`` does nothing, or logs to the MLflow run the script started itself, so the same script
runs unchanged in production.

A foreign sweep is the service's sweep with the trial split in two: the sweeping side asks the study
for a trial and its params (``next_trial``), whoever runs the training opens that trial by number
(``run_trial``: a Hydra job in another process, or this process). Both reuse the service's pieces:
the search space (``sweeps.space``), the study with its sampler, pruner and totals (``sweeps.study``,
``sweeps.sweep.open_sweep``), the trial's life and outcome mapping (``sweeps.trial.TrialRunner``) and
the MLflow record (``sweeps.tracking``).
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.config import builtin_config_dir, to_yaml, validate
from sweeps.errors import ConfigError
from sweeps.reporter import MetricMissing, TrialReporter


@dataclass
class TrialContext:
    """The trial the running code belongs to; outside a sweep every field is None."""

    reporter: TrialReporter | None = None
    study_name: str | None = None
    trial_number: int | None = None
    run_id: str | None = None

    @property
    def in_sweep(self) -> bool:
        return self.reporter is not None

    def report(self, epoch: int, **metrics: float) -> None:
        """One epoch's metrics; raises ``Pruned``/``Diverged`` when the trial should stop."""
        if self.reporter is not None:
            self.reporter.report(epoch, **metrics)
        elif "mlflow" in sys.modules:  # never import MLflow for a script that does not use it
            import mlflow

            if mlflow.active_run() is not None:
                mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=epoch)

    def record_steps(self, losses: list[float], lrs: list[float]) -> None:
        """The epoch's per-step training losses and LRs, for the curve diagnosis (optional)."""
        if self.reporter is not None:
            self.reporter.record_steps(losses, lrs)


_CURRENT: ContextVar[TrialContext | None] = ContextVar("sweeps_trial", default=None)


def current() -> TrialContext:
    """The running trial's context (a no-op context outside a sweep)."""
    return _CURRENT.get() or TrialContext()


def report(epoch: int, **metrics: float) -> None:
    """Report one epoch of the running trial: ``report(epoch, val_loss=0.31, val_acc=0.9)``."""
    current().report(epoch, **metrics)


@contextmanager
def reporting_to(context: TrialContext) -> Iterator[TrialContext]:
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


