"""Helpers shared by the benchmark scripts: configs with throw-away stores, statistics, tables, JSON.

Benchmarks are scripts, not tests: each prints the exact command line, tables of ratios against a
baseline side by side, and writes its numbers to ``benchmarks/results/<name>.json``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.markup import escape
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=160)


def command_line() -> str:
    """The command that ran this script, as a user would retype it from the repository root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def print_header(title: str) -> str:
    cmd = command_line()
    console.print(f"[bold]{title}[/bold]")
    console.print(f"$ {escape(cmd)}")  # arguments like "[steepest/3, 3·steepest]" are not markup
    console.print(f"  {machine()['summary']}")
    return cmd


def machine() -> dict[str, Any]:
    import optuna
    import torch

    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "optuna": optuna.__version__,
        "cpu_count": cores,
        "load_avg_1min_at_start": round(load, 2),
        "summary": f"{cores} cores, load {load:.2f} at start; torch {torch.__version__}, optuna {optuna.__version__}",
    }


def quiet() -> None:
    """Silence Optuna's per-trial INFO lines and MLflow's warnings: the tables are the output."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    importlib.import_module("mlflow")  # configures its loggers on import: quiet them after
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def store_overrides(folder: Path) -> list[str]:
    """Optuna storage, MLflow store and artifacts inside ``folder``: nothing lands in the repository."""
    return [
        f"storage.url=sqlite:///{folder}/o.db",
        f"tracking.uri=sqlite:///{folder}/m.db",
        f"tracking.artifact_location={folder}/a",
    ]


@contextmanager
def scratch(prefix: str = "sweeps-bench-"):
    """A temporary folder for stores; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield Path(folder)


def compose(objective: str, *overrides: str, folder: Path | None = None):
    from sweeps.config.compose import compose_config

    stores = store_overrides(folder) if folder is not None else []
    return compose_config([f"objective={objective}", *stores, *overrides])


def steps_per_epoch(cfg, batch_size: int | None = None) -> int:
    """Optimizer steps in one epoch of the configured objective at ``batch_size`` (default: the config's)."""
    from sweeps.lr.runner import objective_task

    n_train = len(objective_task(cfg.objective).train_data[0])
    return math.ceil(n_train / int(batch_size or cfg.train.batch_size))


# ------------------------------------------------------------------------------------------------
# Training one config with the real trainer (the curves tables and the LR scans).


def filled(space, cfg, raw: dict[str, Any]) -> dict[str, Any]:
    """Raw values of every space parameter, taking the config's value where ``raw`` lacks one."""
    from omegaconf import OmegaConf

    return {p.name: raw[p.name] if p.name in raw else OmegaConf.select(cfg, p.target) for p in space.params}


def train_config(cfg, space, raw: dict[str, Any], rung_epochs: Iterable[int] | None = None, every_strategy: bool = False) -> dict[str, Any]:
    """Train one config to the epoch cap with the real trainer; its per-epoch curve.

    ``rung_epochs``: where the trainer computes rung values (default: every epoch but the last).
    ``every_strategy``: record the ``cooldown`` and ``averaged`` rung values of the same run
    (``every_rung_strategy``) as ``rung`` / ``extra_steps``, in ``rung_eval.py``'s format.
    """
    from sweeps.search.space import apply_params
    from sweeps.train.reporter import Diverged, recording_reporter

    trial_cfg = apply_params(cfg, space.applied(raw))
    objective = importlib.import_module(str(cfg.objective.target).partition(":")[0])
    reporter = recording_reporter(str(cfg.sweep.metric))
    # record rung values too, if the trainer offers them
    reporter.rung_epochs = frozenset(range(1, int(cfg.train.epochs)) if rung_epochs is None else rung_epochs)
    diverged_at_step = None
    start = time.perf_counter()
    try:
        with every_rung_strategy() if every_strategy else nullcontext():
            objective.train(trial_cfg, reporter)
    except Diverged as stop:
        diverged_at_step = int(stop.step)
    seconds = time.perf_counter() - start
    metric = str(cfg.sweep.metric)
    spe = steps_per_epoch(cfg, int(trial_cfg.train.batch_size))
    history = reporter.history
    entry = {
        "params": raw,
        "curve": [float(h[metric]) for h in history],
        "val_loss": [float(h.get("val_loss", math.nan)) for h in history],
        "diverged_at_step": diverged_at_step,
        "epochs_run": (diverged_at_step + 1) / spe if diverged_at_step is not None else float(len(history)),
        "steps_per_epoch": spe,
        "seconds": seconds,
    }
    if every_strategy:
        entry["rung"] = {name: {str(int(h["epoch"])): float(h[f"{prefix}{metric}"]) for h in history if f"{prefix}{metric}" in h}
                         for name, prefix in (("cooldown", "rung_"), ("averaged", AVERAGED_PREFIX))}
        extra, previous = {}, 0.0
        for h in history:
            if "rung_extra_steps" in h and str(int(h["epoch"])) in entry["rung"]["cooldown"]:
                extra[str(int(h["epoch"]))] = int(h["rung_extra_steps"] - previous)
                previous = h["rung_extra_steps"]
        entry["extra_steps"] = {"cooldown": extra}
    elif any(f"rung_{metric}" in h for h in history):
        entry["rung_curve"] = [float(h.get(f"rung_{metric}", h[metric])) for h in history]
    return entry


AVERAGED_PREFIX = "averaged_"


class _BothRungs:
    """The ``cooldown`` and ``averaged`` evaluators of one run; averaged values as ``averaged_*``."""

    def __init__(self, cooldown, averaged) -> None:
        self.cooldown, self.averaged = cooldown, averaged

    def after_step(self, model) -> None:
        self.cooldown.after_step(model)
        self.averaged.after_step(model)

    def epoch_metrics(self, epoch: int, steps_done: int, lr: float) -> dict[str, float]:
        metrics = dict(self.cooldown.epoch_metrics(epoch, steps_done, lr))  # a branch on a copy: the live model is untouched
        for name, value in self.averaged.epoch_metrics(epoch, steps_done, lr).items():
            metrics[AVERAGED_PREFIX + name.removeprefix("rung_")] = value
        return metrics


@contextmanager
def every_rung_strategy(cooldown_frac: float = 0.2, ema_horizon: float = 0.2):
    """Inside: the trainer runs the real ``CooldownRungs`` and ``AveragedRungs`` side by side.

    Both leave the trial's own trajectory untouched (the cooldown branches a copy, the average is a
    separate module), so one run yields the raw curve and both strategies' rung values, where
    ``rung_eval.py`` trains once per strategy: half the recording cost. A benchmark device only: it
    swaps ``sweeps.train.training.make_rung_evaluator`` for the duration of the block.
    """
    import sweeps.train.training as training
    from sweeps.train.rung_eval import make_rung_evaluator

    def both(train_cfg, model, optimizer, hooks, rung_epochs, epochs, steps_per_epoch):
        settings = dict(train_cfg)
        cooldown = make_rung_evaluator({**settings, "rung_eval": "cooldown", "rung_cooldown_frac": cooldown_frac},
                                       model, optimizer, hooks, rung_epochs, epochs, steps_per_epoch)
        averaged = make_rung_evaluator({**settings, "rung_eval": "averaged", "rung_ema_horizon": ema_horizon},
                                       model, optimizer, hooks, rung_epochs, epochs, steps_per_epoch)
        return _BothRungs(cooldown, averaged)

    original = training.make_rung_evaluator
    training.make_rung_evaluator = both
    try:
        yield
    finally:
        training.make_rung_evaluator = original


# ------------------------------------------------------------------------------------------------
# Statistics over seeds/repeats. Infinite values (target never reached) sort last, so a median stays
# finite while fewer than half of the runs are censored.


def summarize(values: Iterable[float]) -> dict[str, float]:
    xs = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
    if not xs:
        return {"n": 0, "median": math.nan, "q1": math.nan, "q3": math.nan, "min": math.nan, "max": math.nan, "n_inf": 0}
    return {
        "n": len(xs),
        "median": quantile(xs, 0.5),
        "q1": quantile(xs, 0.25),
        "q3": quantile(xs, 0.75),
        "min": xs[0],
        "max": xs[-1],
        "n_inf": sum(math.isinf(x) for x in xs),
    }


def quantile(sorted_xs: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) that tolerates inf at the top."""
    if not sorted_xs:
        return math.nan
    pos = q * (len(sorted_xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if lo == hi or sorted_xs[lo] == sorted_xs[hi]:
        return sorted_xs[lo]
    if math.isinf(sorted_xs[hi]):
        return math.inf
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def ratio(baseline: float, value: float) -> float:
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline):
        return math.nan
    if math.isinf(value):
        return 0.0 if not math.isinf(baseline) else math.nan
    if value == 0:
        return math.inf
    return baseline / value


def fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.0f}"


def fmt_spread(s: dict[str, float], digits: int = 3) -> str:
    """``median [q1–q3]``."""
    return f"{fmt(s['median'], digits)} [{fmt(s['q1'], digits)}–{fmt(s['q3'], digits)}]"


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> Table:
    out = Table(title=title, caption=caption, caption_justify="left")
    for i, name in enumerate(columns):
        out.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*(cell if isinstance(cell, str) else fmt(cell) for cell in row))
    console.print(out)
    return out


def write_json(name: str, payload: dict[str, Any], command: str) -> Path:
    """``benchmarks/results/<name>.json`` with the command line and the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"command": command, "written_at": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **payload}
    path.write_text(json.dumps(doc, indent=1, default=_json_default, allow_nan=True) + "\n")
    console.print(f"wrote {path.relative_to(RESULTS.parent.parent)}")
    return path


def read_json(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class Stopwatch:
    """``with watch("name"): ...`` accumulates wall seconds and call counts per name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
            self.calls[name] = self.calls.get(name, 0) + 1


def sample_raw_params(space, count: int, seed: int) -> list[dict]:
    """``count`` raw draws (Optuna's recorded values) from ``space``, scrambled Sobol."""
    study = optuna.create_study(sampler=optuna.samplers.QMCSampler(scramble=True, seed=seed))
    draws = []
    for _ in range(count):
        trial = study.ask()
        space.sample(trial)
        draws.append(dict(trial.params))
        study.tell(trial, 0.0)
    return draws


def instant_objective(cfg, reporter) -> float:
    """An objective with no training: a smooth accuracy-like curve of lr, reported every epoch, so a
    sweep over it measures only the service (trial creation, sampling, reports, both stores)."""
    score = 0.0
    for epoch in range(1, int(cfg.train.epochs) + 1):
        score = epoch / int(cfg.train.epochs) * math.exp(-((math.log10(float(cfg.train.lr)) + 2) ** 2))
        reporter.report(epoch, val_acc=score)
    return score
