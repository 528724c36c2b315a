"""Production training from an exported config: full epochs, no pruning, its own MLflow run linked
to the trial it came from; and re-training top configs on several seeds.

Same training code as the sweep (the objective's ``make_task`` and the shared trainer), so with the
same seed and device a run reproduces the source trial's metric: exactly on the CPU (deterministic
kernels, same batch order), within cuDNN's non-determinism on a GPU.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from sweeps.config.sections import Sections
from sweeps.track.tracker import SweepTracker, check_tracking, flatten, production_run_name
from sweeps.train.objective import load_objective, objective_hook
from sweeps.train.reporter import TrialReporter
from sweeps.train.training import train

TRAIN_ROLE = "train"


@dataclass(frozen=True)
class TrainRun:
    run_id: str
    value: float
    metrics: dict[str, float]
    test: dict[str, float] = field(default_factory=dict)  # the objective's test split, when asked and offered


def train_production(cfg: DictConfig, tracker: SweepTracker, checkpoint: bool = False, parent_run_id: str | None = None, name: str = "train",
                     test_split: bool = False) -> TrainRun:
    """Train ``cfg`` to the end and record it; tags point at the source trial when known.

    ``test_split``: also log the objective's final evaluation (``evaluate_test``) on the trained model."""
    origin = cfg.get("provenance") or {}
    metric = str(cfg.sweep.metric)
    tags = {"sweeps.role": TRAIN_ROLE, "sweeps.metric": metric}
    if origin:
        tags.update({
            "sweeps.source_study": str(origin.get("study")),
            "sweeps.source_trial": str(origin.get("trial")),
            "sweeps.source_run_id": str(origin.get("mlflow_run_id")),
        })
    run_id = tracker.start_run(name, tags, parent_run_id)
    settings = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k in ("train", "objective")}
    tracker.log_params(run_id, flatten(settings))
    reporter = TrialReporter(metric, sink=lambda epoch, metrics: tracker.log_metrics(run_id, epoch, metrics))
    try:
        value, model = _train(cfg, reporter)
        test = _test_metrics(cfg.objective, model) if test_split else {}
        tracker.log_metrics(run_id, reporter.last_epoch, {f"final_{metric}": value, **test})
        tracker.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        if checkpoint and model is not None:
            folder = Path(tempfile.mkdtemp(prefix="sweeps-checkpoint-"))
            torch.save(model.state_dict(), folder / "model.pt")
            tracker.log_artifact(run_id, folder / "model.pt", "checkpoint")
    except BaseException as err:
        tracker.end_trial(run_id, "failed", {"sweeps.error": f"{type(err).__name__}: {err}"[:500]})
        raise
    tracker.end_trial(run_id, "complete", {})
    return TrainRun(run_id, value, dict(reporter.history[-1]) if reporter.history else {}, test)


def train_from_config(cfg: DictConfig, checkpoint: bool = False) -> tuple[TrainRun, str]:
    """``sweeps train``: ``cfg`` trained in its source study's experiment (else ``sweep.study_name``'s),
    the run named after the source trial, the test split evaluated; returns the run and the experiment."""
    settings = Sections.of(cfg)
    check_tracking(settings.tracking.uri)
    origin = cfg.get("provenance") or {}
    experiment = str(origin.get("study") or settings.sweep.study_name)
    tracker = SweepTracker.from_section(settings.tracking, experiment)
    return train_production(cfg, tracker, checkpoint, name=production_run_name(origin), test_split=True), experiment


@dataclass(frozen=True)
class Reproduction:
    trial: int
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def most_robust(results: Sequence[Reproduction], maximize: bool) -> Reproduction:
    """The config with the best mean over seeds (ties: the smaller spread)."""
    sign = 1 if maximize else -1
    return max(results, key=lambda r: (sign * r.mean, -r.std))


def seeds_for(first: int, count: int) -> list[int]:
    """The trial's own seed (``train.seed``) first, then the next ones."""
    return [first + i for i in range(count)]


def _test_metrics(objective: Mapping[str, Any], model: Any) -> dict[str, float]:
    """The objective module's ``evaluate_test(model, cfg.objective) -> dict`` on the trained model (its
    held-out test split), or nothing when it offers none. Only production training calls it: a sweep
    selects on validation metrics and never reads the test split."""
    hook = objective_hook(str(objective["target"]), "evaluate_test")
    return {k: float(v) for k, v in hook(model, objective).items()} if hook is not None and model is not None else {}


def _train(cfg: DictConfig, reporter: TrialReporter) -> tuple[float, Any]:
    """The objective's task through the shared trainer when it has one (to keep the model), else
    the objective function itself."""
    make_task = objective_hook(str(cfg.objective.target), "make_task")
    if make_task is not None:
        result = train(make_task(cfg.objective), cfg.train, reporter)
        return float(result.metrics[str(cfg.sweep.metric)]), result.model
    return float(load_objective(cfg)(cfg, reporter)), None
