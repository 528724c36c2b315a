"""What the service itself costs a sweep, measured on the spot for ``sweeps preview``.

A sweep's wall time is not only its epochs: the command starts a Python process and imports torch,
Optuna and MLflow; opening the study and the parent run writes to both stores; every trial costs a
fixed 50-100 ms of store round-trips (README, tracking overhead); the end-of-sweep report draws its
figures. For a small model these dominate (a default digits sweep: 0.6 s of epochs, 11 s in all).

``measure_service_cost`` runs the real service code (``plan_sweep``, ``open_sweep``, ``work``,
``close_sweep``) on the configured sweep with an objective that reports every epoch instantly, on
throwaway SQLite stores in a temporary folder, and times each part. Nothing touches the user's
stores.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sweeps.train.reporter import Reporter

PROBE_TRIALS = 6


@dataclass(frozen=True)
class ServiceCost:
    """Seconds a sweep spends outside its epochs: once at start, per trial, once at the end."""

    startup_seconds: float  # a new interpreter's imports plus opening the study and the parent run
    per_trial_seconds: float  # one trial's store writes, all its epochs' reports included
    close_seconds: float  # summary, plots and sweep diagnosis on the parent run
    stores: str  # where it was measured

    def seconds(self, n_trials: int) -> float:
        return self.startup_seconds + n_trials * self.per_trial_seconds + self.close_seconds


def instant_objective(cfg: DictConfig, reporter: Reporter) -> float:
    """Reports every epoch at once: a trial that costs only the service's work."""
    metric = str(cfg.sweep.metric)
    value = 0.0
    for epoch in range(1, int(cfg.train.epochs) + 1):
        value = float(cfg.train.lr) * epoch / (1.0 + float(cfg.train.lr) * epoch)  # depends on the sampled lr: the pruner has work
        reporter.report(epoch, **{metric: value, "train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch, "lr": float(cfg.train.lr)})
    return value


def measure_service_cost(cfg: DictConfig, n_trials: int = PROBE_TRIALS) -> ServiceCost:
    """Time the service on ``cfg``'s sweep (sampler, pruner, epochs, tracking settings) with
    ``instant_objective`` and temporary SQLite stores; see the module docstring."""
    imports = _import_seconds()
    from sweeps.run.sweep import close_sweep, open_sweep, plan_sweep, work

    folder = Path(tempfile.mkdtemp(prefix="sweeps-preview-"))
    try:
        probe = _probe_config(cfg, folder, n_trials)
        started = time.perf_counter()
        sweep = open_sweep(plan_sweep(probe))
        opened = time.perf_counter() - started
        started = time.perf_counter()
        ran, _ = work(sweep)
        per_trial = (time.perf_counter() - started) / max(ran, 1)
        started = time.perf_counter()
        close_sweep(sweep, "FINISHED", ran)
        closed = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return ServiceCost(imports + opened, per_trial, closed, "SQLite")


def _import_seconds() -> float:
    """What ``sweeps run`` pays to import the stack: timed here on first import (the preview
    imports it anyway), or in a fresh interpreter when this process has it already."""
    started = time.perf_counter()
    if "sweeps.train.training" in sys.modules or "mlflow" in sys.modules:
        subprocess.run([sys.executable, "-c", "import sweeps.run.sweep, sweeps.train.training"], check=True, capture_output=True)
    else:
        import sweeps.run.sweep  # noqa: F401
        import sweeps.train.training  # noqa: F401
    return time.perf_counter() - started


def _probe_config(cfg: DictConfig, folder: Path, n_trials: int) -> DictConfig:
    probe = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    settings = {
        "storage.url": f"sqlite:///{folder}/optuna.db",
        "tracking.uri": f"sqlite:///{folder}/mlflow.db",
        "tracking.artifact_location": str(folder / "artifacts"),
        "objective.target": f"{__name__}:instant_objective",
        "objective.metrics": None,
        "sweep.study_name": "preview-probe",
        "sweep.n_trials": n_trials,
        "sweep.timeout": None,
        "lr_find.enabled": False,
    }
    for key, value in settings.items():
        OmegaConf.update(probe, key, value, merge=False, force_add=True)
    return probe
