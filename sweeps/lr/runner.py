"""The LR range test on a configured objective: run it, record it in MLflow, turn it into bounds.

The math and the suggestion rules are in ``lr_finder`` (pure); this module wires them to a built-in
objective's ``Task`` (its model, data, loss and the configured optimizer) and to the tracking store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sweeps.config.sections import LrFindSection
from sweeps.errors import ConfigError
from sweeps.lr.finder import RangeTestResult, plot_range_test, range_test, search_bounds
from sweeps.track.tracker import SweepTracker
from sweeps.train.objective import objective_hook
from sweeps.train.optimizers import build_optimizer
from sweeps.train.training import Batch, Task, batches, set_up

LR_FIND_ROLE = "lr_find"


@dataclass(frozen=True)
class RangeTestReport:
    result: RangeTestResult
    low: float  # the search bounds the rule gives
    high: float
    rule: tuple[str, str, str, str] = ("steepest", "/10", "min_loss", "")  # low reading, its divisor, high reading, its divisor

    def summary(self) -> dict[str, float]:
        s = self.result.suggestion
        values = {"steepest": s.steepest, "min_loss": s.min_loss, "edge": s.edge, "search_low": self.low, "search_high": self.high}
        return {k: float(v) for k, v in values.items() if v is not None}


def objective_task(objective: Mapping[str, Any]) -> Task:
    """The ``Task`` of an objective section: its module must offer ``make_task(cfg.objective)``."""
    target = str(objective["target"])
    make_task = objective_hook(target, "make_task")
    if make_task is None:
        raise ConfigError("objective.target", target, "the LR range test needs the objective's module to define make_task(cfg.objective) -> Task")
    return make_task(objective)


def run_range_test(*, objective: Mapping[str, Any], train: Mapping[str, Any], settings: LrFindSection) -> RangeTestReport:
    """Ramp the LR on the objective's model with the ``train`` section's optimizer; model state is discarded."""
    task = objective_task(objective)
    _, model, train_data, seed = set_up(task, train)  # the trainer's own setup: device, threads, seed, model
    probe = {**train, "schedule": "constant"}  # the ramp replaces the schedule (and schedule-free's warmup)
    optimizer = build_optimizer(model, probe, settings.steps)
    result = range_test(
        model,
        optimizer,
        _endless_batches(train_data, int(train["batch_size"]), seed),
        task.loss_fn,
        lr_min=settings.lr_min,
        lr_max=settings.lr_max,
        steps=settings.steps,
        mode=settings.mode,
        beta=settings.smooth_beta,
        diverge_factor=settings.diverge_factor,
    )
    high_from = settings.high_from
    low, high = search_bounds(result.suggestion, settings.low_div, settings.high_div, high_from)
    return RangeTestReport(result, low, high, ("steepest", _divisor(settings.low_div), high_from, _divisor(settings.high_div)))


def _divisor(value: float) -> str:
    return "" if float(value) == 1 else f"/{float(value):g}"


def free_path(path: Path) -> Path:
    """``path``, or ``name-2.png``, ``name-3.png``, ... when it exists: a plot is never overwritten."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def record_range_test(tracker: SweepTracker, report: RangeTestReport, parent_run_id: str | None = None, plot_dir: Path | None = None) -> tuple[str, Path]:
    """An MLflow run with the curve as metrics (step = ramp step), the suggestions as params and the
    plot as artifact; nested under ``parent_run_id`` when the test seeds a sweep."""
    run_id = tracker.start_run("lr-find", {"sweeps.role": LR_FIND_ROLE}, parent_run_id)
    tracker.log_params(run_id, {f"lr_find.{k}": f"{v:.6g}" for k, v in report.summary().items()})
    tracker.log_metric_history(run_id, report.result.as_metrics())
    folder = plot_dir or Path(tempfile.mkdtemp(prefix="sweeps-lr-find-"))
    plot = plot_range_test(report.result, free_path(folder / "lr_find.png"))
    tracker.log_artifact(run_id, plot)
    tracker.set_tags(run_id, {"sweeps.stop_reason": report.result.stop_reason})
    tracker.end_run(run_id, "FINISHED")
    return run_id, plot


def _endless_batches(data: Batch, batch_size: int, seed: int) -> Iterator[Batch]:
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from batches(data, batch_size, generator)
