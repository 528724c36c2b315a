"""Several local worker processes on one study: who gets which GPU and how many CPU threads, which
stores can take several writers, and starting and watching the processes.

Each worker is a separate ``sweeps worker`` process (a long-lived process, never one per trial: the
stack takes seconds to import). They share nothing but the stores: the Optuna study decides what
each samples, the MLflow store receives their runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sweeps.config.sections import Sections, StorageSection, TrackingSection
from sweeps.errors import ConfigError
from sweeps.track.redact import redact

if TYPE_CHECKING:  # the sweep stack loads only when local workers run
    import optuna

    from sweeps.run.sweep import SweepPlan, SweepResult

POSTGRES_HINT = "storage=postgres with SWEEPS_STORAGE_URL=postgresql+psycopg://user:password@host:5432/optuna"
SERVER_HINT = "run `mlflow server --backend-store-uri sqlite:///mlflow.db --workers 1` and set tracking.uri=http://127.0.0.1:5000"


@dataclass(frozen=True)
class Assignment:
    """What one local worker gets: environment additions and config overrides."""

    index: int
    env: dict[str, str] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()


def check_shared_stores(workers: int, *, storage: StorageSection, tracking: TrackingSection) -> None:
    """Refuse several writers on stores that cannot take them, and say what to use instead."""
    if workers <= 1:
        return
    if storage.url.startswith("sqlite"):
        raise ConfigError(
            "storage.url", storage.url,
            f"{workers} workers cannot share an SQLite study (concurrent writers lock the file, optuna#820)", POSTGRES_HINT,
        )
    if urlparse(tracking.uri).scheme in ("sqlite", "", "file"):
        raise ConfigError("tracking.uri", tracking.uri, f"{workers} workers cannot write one local MLflow store", SERVER_HINT)


def check_packing(sweep_cfg: Any) -> None:
    """``sweep.workers`` (a positive number or ``auto``) and ``sweep.trials_per_gpu`` (a positive number)."""
    per_gpu = sweep_cfg.get("trials_per_gpu", 1)
    if isinstance(per_gpu, bool) or not isinstance(per_gpu, int) or per_gpu < 1:
        raise ConfigError("sweep.trials_per_gpu", per_gpu, "must be a positive integer (local workers pinned to each GPU)")
    workers = sweep_cfg.get("workers", 1)
    if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError("sweep.workers", workers, "must be a positive integer or auto", "auto = sweep.trials_per_gpu x GPUs, 1 without GPUs")


def worker_count(setting: Any, trials_per_gpu: int, gpus: Sequence[str], shared_stores: bool) -> tuple[int, str | None]:
    """How many local workers ``sweep.workers`` means, and a note when ``auto`` had to settle for one.

    A number is kept. ``auto``: ``trials_per_gpu`` per GPU when GPUs are present, else 1; several
    workers need stores that take several writers, so on the embedded SQLite stores ``auto`` stays
    at 1 and says why (an explicit number there is refused by ``check_shared_stores``).
    """
    if setting != "auto":
        return int(setting), None
    packed = int(trials_per_gpu) * len(gpus)
    if packed <= 1:
        return 1, None
    if not shared_stores:
        return 1, (
            f"sweep.workers=auto: 1 worker, not {trials_per_gpu} x {len(gpus)} GPUs = {packed}: "
            f"several workers need shared stores ({POSTGRES_HINT}; tracking: {SERVER_HINT})"
        )
    return packed, None


def resolve_workers(sections: Sections, *, device: str = "auto") -> tuple[int, str | None]:
    """``sweep.workers`` as a number (``worker_count``); GPUs are counted only for ``auto`` off the CPU (``train.device``)."""
    sweep = sections.sweep
    on_gpu = sweep.workers == "auto" and device != "cpu"
    gpus = gpu_ids(sweep.gpus) if on_gpu else []
    return worker_count(sweep.workers, sweep.trials_per_gpu, gpus, stores_take_several_writers(storage=sections.storage, tracking=sections.tracking))


def stores_take_several_writers(*, storage: StorageSection, tracking: TrackingSection) -> bool:
    try:
        check_shared_stores(2, storage=storage, tracking=tracking)
    except ConfigError:
        return False
    return True


def store_urls_env(*, storage: StorageSection, tracking: TrackingSection) -> dict[str, str]:
    """The store URLs for local workers, as the environment variables the config reads
    (``conf/storage``, ``conf/tracking``): a URL holds the database password, and a process's
    command line is visible to every user of the machine (``ps``); its environment is not."""
    return {"SWEEPS_STORAGE_URL": storage.url, "MLFLOW_TRACKING_URI": tracking.uri}


def store_settings(*, storage: StorageSection, tracking: TrackingSection) -> list[str]:
    """The other ``storage.*`` / ``tracking.*`` settings of this sweep, as worker overrides."""
    overrides = []
    for section, settings, secret in (("storage", storage, "url"), ("tracking", tracking, "uri")):
        for key, value in asdict(settings).items():
            if key != secret:
                overrides.append(f"{section}.{key}={'null' if value is None else str(value).lower() if isinstance(value, bool) else value}")
    return overrides


def gpu_ids(setting: Any) -> list[str]:
    """``auto``: every visible CUDA device; a list: those ids; none/empty: CPU only."""
    if setting in (None, "", "none", []):
        return []
    if setting == "auto":
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    return [str(g) for g in (setting if isinstance(setting, Sequence) and not isinstance(setting, str) else [setting])]


def assign_workers(workers: int, gpus: Sequence[str], threads_setting: Any, cpu_count: int | None = None) -> list[Assignment]:
    """One GPU per worker, round-robin over ``gpus``; without GPUs, CPU threads split between workers.

    With ``sweep.trials_per_gpu=k`` there are k x GPUs workers, so each GPU id gets k of them, each a
    process with its own CUDA context that sees only its GPU (``CUDA_VISIBLE_DEVICES``, as ``cuda:0``).
    ``SWEEPS_WORKERS_PER_GPU`` tells a worker how many share its GPU (named in out-of-memory errors).
    ``threads_setting`` is ``train.threads``: a number is kept; ``auto`` becomes cores // workers so
    the workers together never oversubscribe the CPU.
    """
    cores = cpu_count or os.cpu_count() or 1
    assignments = []
    for index in range(workers):
        env = {"SWEEPS_WORKER_INDEX": str(index)}
        overrides: list[str] = []
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
            env["SWEEPS_WORKERS_PER_GPU"] = str(len(range(index % len(gpus), workers, len(gpus))))
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
        if threads_setting in (None, "auto"):
            overrides.append(f"train.threads={max(1, cores // workers)}")
        assignments.append(Assignment(index, env, tuple(overrides)))
    return assignments


class LocalWorkers:
    """Start ``sweeps worker`` processes, forward stop signals, wait, report failures."""

    def __init__(self, assignments: Sequence[Assignment], common: Sequence[str], config_dir: str | None = None, env: dict[str, str] | None = None) -> None:
        """``env``: added to every worker's environment (the store URLs: never on a command line)."""
        self.log_dir = Path(tempfile.mkdtemp(prefix="sweeps-workers-"))
        self.processes: list[subprocess.Popen] = []
        for assignment in assignments:
            command = [sys.executable, "-m", "sweeps.cli", "worker", *(["--config-dir", config_dir] if config_dir else []), *common, *assignment.overrides]
            log = open(self.log_dir / f"worker-{assignment.index}.log", "w")
            self.processes.append(
                subprocess.Popen(command, env={**os.environ, **(env or {}), **assignment.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )

    def signal_all(self, signum: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signum)

    def wait(self, poll: Callable[[], None], stop_requested: Callable[[], bool], interval: float = 1.0) -> list[int]:
        """Call ``poll`` every ``interval`` s until all exit; forward a stop request once."""
        forwarded = False
        while any(p.poll() is None for p in self.processes):
            if stop_requested() and not forwarded:
                self.signal_all(signal.SIGTERM)
                forwarded = True
            poll()
            time.sleep(interval)
        poll()
        return [p.returncode for p in self.processes]

    def failure_report(self, codes: Sequence[int]) -> str:
        lines = []
        for index, code in enumerate(codes):
            if code not in (0, 130, 143):
                tail = (self.log_dir / f"worker-{index}.log").read_text().strip().splitlines()[-3:]
                lines.append(redact(f"worker {index} exited {code}: " + " | ".join(tail)))
        return "\n".join(lines)


def run_local_workers(
    plan: SweepPlan, workers: int, stop_requested: Callable[[], bool], on_open: Callable[[optuna.Study], None],
    on_progress: Callable[[optuna.Study], None], config_dir: str | None = None, say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> SweepResult:
    """``sweep.workers=N`` on one machine: create or resume the sweep of ``plan`` here,
    run ``workers`` worker processes on it, call ``on_progress(study)`` while they run, close the
    sweep (FINISHED at the total, else KILLED) and return its ``SweepResult``. ``on_open(study)``
    once the study is open; ``say`` gets each failed worker's last lines."""
    from sweeps.run.sweep import close_sweep, open_sweep, total_reached  # the sweep stack: after every check

    stores = {"storage": plan.sections.storage, "tracking": plan.sections.tracking}
    sweep = open_sweep(plan)
    on_open(sweep.study)
    train = plan.cfg.train
    common = [*store_settings(**stores), f"sweep.study_name={sweep.study.study_name}", f"train.device={train.device}"]
    local = LocalWorkers(assign_workers(workers, gpu_ids(plan.sections.sweep.gpus), train.threads), common, config_dir, env=store_urls_env(**stores))
    codes = local.wait(lambda: on_progress(sweep.study), stop_requested)
    report = local.failure_report(codes)
    if report:
        say(report)
    return close_sweep(sweep, "FINISHED" if total_reached(sweep) else "KILLED")
