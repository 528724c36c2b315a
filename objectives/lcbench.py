"""``lcbench``: LCBench learning curves through the YAHPO Gym surrogate (no training, no GPU).

LCBench (Zimmer, Lindauer & Hutter 2021) trained funnel-shaped MLPs with SGD + cosine annealing for
52 epochs on 34 OpenML data sets; YAHPO Gym (Pfisterer et al. 2022) fitted a surrogate to those
curves. A trial here asks the surrogate for its configuration's whole curve (one batched query,
~5 ms) and reports it epoch by epoch, so the sampler, the pruner, MLflow and the diagnosis see a
real-looking learning curve at almost no cost. This is the benchmark the field judges samplers and
pruners on; its search space is ours (learning rate, batch size, weight decay, momentum) plus the
network's depth, width and dropout.

Data: the ``lcbench`` folder of the public ``slds-lmu/yahpo_data`` repository, found through
``objective.data_dir`` or the ``SWEEPS_YAHPO_DATA`` environment variable (the folder that holds
``lcbench/``). Package: ``pip install 'sweeps[lcbench]'`` (``yahpo-gym``). yahpo-gym keeps a settings
file; it is written to a temporary folder, never to the user's home.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from sweeps.errors import ConfigError
from sweeps.train.reporter import Reporter

DATA_ENV = "SWEEPS_YAHPO_DATA"
EPOCHS = 52
METRICS = ("val_acc", "val_loss", "val_balanced_acc", "sim_time")
# LCBench's config space (config_space.json): name -> (low, high, log, integer)
SPACE = {
    "batch_size": (16, 512, True, True),
    "learning_rate": (1e-4, 0.1, True, False),
    "momentum": (0.1, 0.99, False, False),
    "weight_decay": (1e-5, 0.1, False, False),
    "num_layers": (1, 5, False, True),
    "max_units": (64, 1024, True, True),
    "max_dropout": (0.0, 1.0, False, False),
}
GET_DATA = f"set objective.data_dir or {DATA_ENV} to the folder holding lcbench/ (from github.com/slds-lmu/yahpo_data)"


def data_dir(objective: DictConfig) -> Path:
    """The folder holding ``lcbench/``; ``ConfigError`` naming what to set when it is missing."""
    given = objective.get("data_dir") or os.environ.get(DATA_ENV)
    key = "objective.data_dir" if objective.get("data_dir") else DATA_ENV
    if not given:
        raise ConfigError("objective.data_dir", None, "LCBench's surrogate data is not configured", GET_DATA)
    folder = Path(str(given)).expanduser()
    if not (folder / "lcbench" / "model.onnx").is_file():
        raise ConfigError(key, str(given), "no lcbench/model.onnx in this folder", GET_DATA)
    return folder.resolve()


def check_config(cfg: DictConfig) -> None:
    """Everything a trial needs, checked before any store is touched (called by ``load_objective``)."""
    folder = data_dir(cfg.objective)
    _import_yahpo()
    instance = str(cfg.objective.instance)
    instances = _instances(str(folder))
    if instance not in instances:
        raise ConfigError("objective.instance", instance, "not an LCBench task",
                          f"one of its {len(instances)} OpenML task ids, e.g. 167168, 189873, 189906 (YAHPO-SO)")
    epochs = cfg.train.epochs
    if not isinstance(epochs, int) or not 1 <= epochs <= EPOCHS:
        raise ConfigError("train.epochs", epochs, f"LCBench curves have {EPOCHS} epochs", f"1..{EPOCHS}")
    _config_of(cfg)  # the trainer defaults and objective keys must lie inside LCBench's space


@dataclass(frozen=True)
class Surrogate:
    """One LCBench task's surrogate: whole learning curves for batches of configurations."""

    instance: str
    data_dir: str

    def curves(self, configs: list[dict[str, float]], epochs: int = EPOCHS) -> dict[str, np.ndarray]:
        """``{metric: array (len(configs), epochs)}`` for ``METRICS``; ``sim_time`` is cumulative.

        The surrogate's ``time`` is not guaranteed to grow with the epoch (it extrapolates), so the
        cumulative training time is its running maximum.
        """
        bench = _benchmark(self.data_dir, self.instance)
        rows = bench.objective_function(
            [{**config, "OpenML_task_id": self.instance, "epoch": epoch} for config in configs for epoch in range(1, epochs + 1)]
        )
        shape = (len(configs), epochs)
        column = lambda name: np.array([row[name] for row in rows], dtype=float).reshape(shape)  # noqa: E731
        return {
            "val_acc": column("val_accuracy") / 100.0,  # a fraction, like the other objectives
            "val_loss": column("val_cross_entropy"),
            "val_balanced_acc": column("val_balanced_accuracy"),
            "sim_time": np.maximum.accumulate(column("time"), axis=1),
        }


def train(cfg: DictConfig, reporter: Reporter) -> float:
    """The objective: report the surrogate's curve for this trial's config, epoch by epoch."""
    folder = data_dir(cfg.objective)
    epochs = int(cfg.train.epochs)
    curve = Surrogate(str(cfg.objective.instance), str(folder)).curves([_config_of(cfg)], epochs)
    for epoch in range(1, epochs + 1):
        reporter.report(epoch, **{name: float(values[0, epoch - 1]) for name, values in curve.items()})
    return float(curve[str(cfg.sweep.metric)][0, epochs - 1])


# The config key each of LCBench's parameters is read from.
KEYS = {
    "train.batch_size": "batch_size",
    "train.lr": "learning_rate",
    "train.momentum": "momentum",
    "train.weight_decay": "weight_decay",
    "objective.num_layers": "num_layers",
    "objective.max_units": "max_units",
    "objective.max_dropout": "max_dropout",
}


def _config_of(cfg: DictConfig) -> dict[str, float]:
    """The trial's config in LCBench's names, each checked against LCBench's range."""
    return lcbench_config({key: OmegaConf.select(cfg, key) for key in KEYS})


def lcbench_config(values: dict[str, object]) -> dict[str, float]:
    """``{config key: value}`` (``train.lr``, ...) in LCBench's names, each checked against its range."""
    config: dict[str, float] = {}
    for key, name in KEYS.items():
        low, high, _, integer = SPACE[name]
        number = _number(key, values[key], integer)
        if not low <= number <= high:
            raise ConfigError(key, values[key], f"outside LCBench's range for {name}", f"[{low}, {high}]")
        config[name] = number
    return config


def _number(key: str, value: object, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, value, "must be a number")
    if integer:
        return int(round(value))
    return float(value)


def _import_yahpo():
    """Import yahpo-gym with its settings file in a temporary folder (never in the user's home)."""
    if "YAHPO_LOCAL_CONFIG" not in os.environ:
        folder = Path(tempfile.gettempdir()) / f"sweeps-yahpo-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        os.environ["YAHPO_LOCAL_CONFIG"] = str(folder / "yahpo_gym.yaml")
    try:
        from yahpo_gym import benchmark_set, local_config
    except ImportError as err:
        raise ConfigError("objective", "lcbench", f"needs the yahpo-gym package ({err})", "pip install 'sweeps[lcbench]'") from None
    return benchmark_set, local_config


@lru_cache(maxsize=None)
def _benchmark(folder: str, instance: str):
    benchmark_set, local_config = _import_yahpo()
    local_config.init_config(data_path=folder)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its citations on every load
        bench = benchmark_set.BenchmarkSet("lcbench", instance=instance, multithread=False, check=False)
    return bench


@lru_cache(maxsize=None)
def _instances(folder: str) -> tuple[str, ...]:
    bench = _benchmark(folder, "189906")
    return tuple(str(i) for i in bench.instances)
