"""Sweeps of training code that is not a sweeps objective: ``report`` for the code, ``optimize`` for a
Python function; a Hydra app is swept with ``python app.py -m hydra/sweeper=sweeps``
(``hydra_plugins.sweeps_sweeper``).

Inside a trial the code calls ``report(epoch, **metrics)`` once per epoch. The metrics go to the
trial's MLflow child run (buffered, as the shared trainer's are), to the study where its pruner reads,
and to the divergence guard and the curve diagnosis; when the pruner (or the guard) says stop,
``report`` raises ``Pruned`` (``Diverged``) and the trial is recorded PRUNED, not failed. Outside a
sweep ``report`` does nothing, or logs to the MLflow run the script started itself, so the same script
runs unchanged in production.

This module imports only the standard library at first: ``report`` costs nothing in production.
``optimize`` and the plugin are thin layers over ``sweeps.run.foreign``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sweeps.train.reporter import MetricMissing, TrialReporter


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




@dataclass
class OptimizeResult:
    """What ``optimize`` found: the study (Optuna's own object), the best trial's value, params (as
    applied, by key) and complete config, and the MLflow parent run."""

    study: Any
    parent_run_id: str
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Any  # DictConfig, or None when no trial completed
    counts: dict[str, int]


def optimize(
    fn: Callable[[Any], float | None],
    space: Mapping[str, Any],
    *,
    config: Mapping[str, Any] | None = None,
    n_trials: int = 20,
    metric: str = "objective",
    direction: str = "minimize",
    epochs: int | None = None,
    pruner: str = "auto",
    sampler: str = "tpe",
    seed: int | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
) -> OptimizeResult:
    """Sweep ``fn(cfg)`` over ``space`` with the service's study, pruner and tracking, in this process.

    ``space`` maps config keys to distributions in the same grammar as ``search:`` (``"tag(log,
    interval(1e-4, 0.1))"``, ``"choice(32, 64)"``, or a mapping with ``zero_prob`` / ``when``);
    ``cfg`` is ``config`` with the trial's values set (an OmegaConf ``DictConfig``). ``fn`` calls
    ``report(epoch, <metric>=...)`` each epoch to be pruned (``epochs`` = its epochs: Hyperband's
    maximum resource) and returns the objective (None: its last reported ``metric``). Stores default as
    the CLI's (``SWEEPS_STORAGE_URL`` / ``MLFLOW_TRACKING_URI``, else SQLite files here);
    ``n_trials`` is the study's total, so calling again resumes. Bad input raises ``ConfigError``
    before anything is written.
    """
    from omegaconf import OmegaConf

    from sweeps.config.compose import to_yaml
    from sweeps.run.foreign import TrialAsker, close_foreign_sweep, open_foreign_sweep, run_trial, service_config
    from sweeps.search.space import apply_params, parse_key_space
    from sweeps.track.tracker import flatten

    name = study_name or getattr(fn, "__name__", "optimize")
    settings = {"study_name": name, "n_trials": n_trials, "metric": metric, "direction": direction, "pruner": pruner, "sampler": sampler, "seed": seed}
    cfg = service_config(name, settings, epochs=epochs, storage=storage, tracking_uri=tracking_uri)
    search = parse_key_space(space, "space")
    if sampler == "grid":
        search.grid()
    base = OmegaConf.create(dict(config or {}))

    def config_of(values: Mapping[str, Any]) -> Any:
        return apply_params(base, values)

    sweep = open_foreign_sweep(cfg, search, space)
    asker = TrialAsker(sweep)
    status, aborted = "KILLED", None  # stays KILLED if interrupted
    try:
        while (asked := asker.next_trial()) is not None:
            trial, values = asked
            trial_cfg = config_of(values)
            try:
                run_trial(cfg, trial.number, lambda: fn(trial_cfg), flatten(OmegaConf.to_container(trial_cfg, resolve=True)))
            except MetricMissing as err:  # the code never reports the metric: no other trial would do better
                aborted = str(err)
                break
            except Exception:  # recorded as a failed trial in both stores; the sweep goes on
                continue
        status = "FAILED" if aborted else "FINISHED"
    finally:
        asker.close()
        result = close_foreign_sweep(sweep, status, lambda best: to_yaml(config_of(search.applied(best.params))), aborted)
    if aborted:
        raise MetricMissing(aborted)
    best = result.best
    return OptimizeResult(
        study=sweep.study,
        parent_run_id=sweep.parent_run_id,
        best_value=None if best is None else float(best.value),
        best_params={} if best is None else search.applied(best.params),
        best_config=None if best is None else config_of(search.applied(best.params)),
        counts=dict(result.counts),
    )
