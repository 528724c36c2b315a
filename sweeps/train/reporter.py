"""The object an objective reports to, and the ways a trial can be told to stop.

Objectives see only this module: ``reporter.report(epoch, **metrics)`` once per epoch. It raises a
``TrialStopped`` subclass when the pruner or the divergence guard says stop; the objective lets it
propagate. The reporter knows neither Optuna nor MLflow: it is given two callables, one that asks
the pruner and one that records metrics, so a test (or ``sweeps train``) can pass plain functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class TrialStopped(Exception):
    """Base of every "stop this trial now" signal raised inside an objective."""

    outcome = "stopped"


class Pruned(TrialStopped):
    """The pruner judged the trial at this epoch not worth continuing."""

    outcome = "pruned"

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned at epoch {epoch} ({value:.4g})")
        self.epoch = epoch
        self.value = value


class Diverged(TrialStopped):
    """The loss became NaN/inf (or blew up): the LR is too high for this configuration."""

    outcome = "diverged"

    def __init__(self, step: int, lr: float, loss: float, epoch: int | None = None) -> None:
        super().__init__(f"diverged at step {step} (lr={lr:.3g}, loss={loss})")
        self.step = step
        self.lr = lr
        self.loss = loss
        self.epoch = epoch


class Interrupted(TrialStopped):
    """The worker was asked to stop (SIGINT/SIGTERM): end this trial so it can be retried."""

    outcome = "interrupted"

    def __init__(self, epoch: int, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name} after epoch {epoch}")
        self.epoch = epoch
        self.signal_name = signal_name


class MetricMissing(KeyError):
    """The objective never reported the metric the study optimizes (a config error, not a bad trial)."""


class Reporter(Protocol):
    """What a training loop calls each epoch: the one method every reporter has (``sweeps.api.report`` too)."""

    def report(self, epoch: int, **metrics: float) -> None: ...


@runtime_checkable
class TrialRecorder(Reporter, Protocol):
    """A reporter the shared trainer may read more from (``TrialReporter``): it keeps each epoch's
    per-step losses and LRs (for the curve diagnosis), and names the epochs at which the pruner
    judges (``rung_epochs``: where a rung evaluation is worth its cost; None = every epoch)."""

    rung_epochs: frozenset[int] | None

    def record_steps(self, losses: list[float], lrs: list[float]) -> None: ...


PruneCheck = Callable[[int, float], bool]  # (epoch, value) -> stop?
MetricSink = Callable[[int, Mapping[str, float]], None]  # (epoch, metrics) -> None


@dataclass
class TrialReporter:
    """Fans one epoch's metrics out to a sink (tracking) and to a prune check (the study).

    The optimized metric must be among the reported ones. A non-finite optimized metric stops the
    trial as diverged rather than feeding NaN to the sampler.
    """

    metric: str
    should_prune: PruneCheck = lambda epoch, value: False
    sink: MetricSink = lambda epoch, metrics: None
    stop_requested: Callable[[], str | None] = lambda: None  # the signal's name once a stop is asked
    step_sink: Callable[[int, list[float], list[float]], None] | None = None  # (first step, losses, lrs)
    rung_epochs: frozenset[int] | None = None  # the pruner's epochs (sweeps.search.hyperband.pruning_epochs)
    history: list[dict[str, float]] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    step_lrs: list[float] = field(default_factory=list)

    def record_steps(self, losses: list[float], lrs: list[float]) -> None:
        """Per-step train loss and LR of the epoch just trained (trainers that have them call this)."""
        if self.step_sink is not None:
            self.step_sink(len(self.step_losses), losses, lrs)
        self.step_losses.extend(losses)
        self.step_lrs.extend(lrs)

    def report(self, epoch: int, **metrics: float) -> None:
        """Record one epoch; the pruner judges ``rung_<metric>`` when given, else ``<metric>``.

        ``rung_<metric>`` is what the trial would score if its schedule ended here (a cooled-down
        or averaged copy; see schedule-aware rung evaluation): mid-schedule raw values make
        high-LR trials look worse than they will end.
        """
        values = {name: float(value) for name, value in metrics.items()}
        if self.metric not in values:
            raise MetricMissing(f"not reported by the objective, which reported: {', '.join(values)}")
        self.history.append({"epoch": epoch, **values})
        self.sink(epoch, values)
        value = values.get(f"rung_{self.metric}", values[self.metric])
        if not math.isfinite(value):
            raise Diverged(step=-1, lr=values.get("lr", float("nan")), loss=value, epoch=epoch)
        if self.should_prune(epoch, value):
            raise Pruned(epoch, value)
        if signal_name := self.stop_requested():
            raise Interrupted(epoch, signal_name)

    @property
    def last_epoch(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0


def recording_reporter(metric: str) -> TrialReporter:
    """A reporter that only records: for production training and tests."""
    return TrialReporter(metric)
