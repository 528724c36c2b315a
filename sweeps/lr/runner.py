"""The LR range test on a configured objective: run it, record it in MLflow, turn it into bounds.

The math and the suggestion rules are in ``lr_finder`` (pure); this module wires them to a built-in
objective's ``Task`` (its model, data, loss and the configured optimizer) and to the tracking store.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from sweeps.errors import ConfigError
from sweeps.lr.finder import RangeTestResult, plot_range_test, range_test, search_bounds
from sweeps.track.tracker import SweepTracker
from sweeps.train.objective import objective_hook
from sweeps.train.optimizers import build_optimizer
from sweeps.train.training import Batch, Task, batches, cpu_threads, resolve_device

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


def objective_task(cfg: DictConfig) -> Task:
    """The ``Task`` of the configured objective: its module must offer ``make_task(cfg.objective)``."""
    target = str(cfg.objective.target)
    make_task = objective_hook(target, "make_task")
    if make_task is None:
        raise ConfigError("objective.target", target, "the LR range test needs the objective's module to define make_task(cfg.objective) -> Task")
    return make_task(cfg.objective)


def run_range_test(cfg: DictConfig) -> RangeTestReport:
    """Ramp the LR on the objective's model with the configured optimizer; model state is discarded."""
    settings = cfg.lr_find
    task = objective_task(cfg)
    device = resolve_device(str(cfg.train.device))
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.train.get("threads", "auto")))
    torch.manual_seed(int(cfg.train.seed))
    model = task.build_model().to(device)
    train_data: Batch = tuple(t.to(device) for t in task.train_data)  # type: ignore[assignment]
    probe = {**cfg.train, "schedule": "constant"}  # the ramp replaces the schedule (and schedule-free's warmup)
    optimizer = build_optimizer(model, probe, int(settings.steps))
    result = range_test(
        model,
        optimizer,
        _endless_batches(train_data, int(cfg.train.batch_size), int(cfg.train.seed)),
        task.loss_fn,
        lr_min=float(settings.lr_min),
        lr_max=float(settings.lr_max),
        steps=int(settings.steps),
        mode=str(settings.mode),
        beta=float(settings.smooth_beta),
        diverge_factor=float(settings.diverge_factor),
    )
    high_from = str(settings.get("high_from", "min_loss"))
    low, high = search_bounds(result.suggestion, float(settings.low_div), float(settings.high_div), high_from)
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
