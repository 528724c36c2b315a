"""Best configs out of a study: the complete trial config with provenance, and batch-size transfer.

The exported file is a plain Hydra/OmegaConf YAML of the whole config the trial trained with (not
only its sampled params), so ``sweeps train --config best.yaml`` runs it as is, plus a
``provenance`` block saying where it came from. Transfer rules are pure functions.
"""

from __future__ import annotations

import datetime as dt
import math
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial

from sweeps.errors import ConfigError
from sweeps.search.space import apply_params, parse_search_space
from sweeps.track.redact import redact

# Batch-size scaling rules: the LR factor for a batch-size ratio k.
LR_SCALING = {
    "linear": lambda k: k,  # Goyal et al. 2017 (SGD): LR ∝ batch size, with warmup
    "sqrt": lambda k: math.sqrt(k),  # Adam-family: LR ∝ √batch size (Malladi et al. 2022)
    "none": lambda k: 1.0,
}
DEFAULT_RULE = {"sgd": "linear", "adam": "sqrt", "adamw": "sqrt"}
MAX_WARMUP_FRAC = 0.3


def trial_config(stored_config: Mapping[str, Any], trial: FrozenTrial) -> DictConfig:
    """The complete config ``trial`` trained with: the study's config with its sampled values applied."""
    cfg = OmegaConf.create(dict(stored_config))
    return apply_params(cfg, parse_search_space(cfg).applied(trial.params))


def provenance(study: optuna.Study, trial: FrozenTrial, storage_url: str, metric: str) -> dict[str, Any]:
    """Where a config came from: enough to find the trial, its run and the code again."""
    return {
        "study": study.study_name,
        "storage": redact(storage_url),
        "trial": trial.number,
        "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
        "metric": metric,
        "value": trial.value,
        "git_commit": git_commit(),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class BestExport:
    """``sweeps best``: the best trial, the complete config it trained with (moved to another batch
    size when asked) and its provenance (with ``batch_size_transfer`` when moved)."""

    trial: FrozenTrial
    config: DictConfig
    origin: dict[str, Any]


def best_export(study: optuna.Study, shared: Mapping[str, Any], *, storage_url: str, metric: str, batch_size: int | None = None,
                scaling: str | None = None) -> BestExport:
    """The study's best trial with the config it ran with (``shared``: the study's config, without
    the local stores; on a study whose config changed, the trial's own version)."""
    from sweeps.search.study_config import config_of_trial

    try:
        trial = study.best_trial
    except ValueError:
        raise ConfigError("sweep.study_name", study.study_name, "has no completed trial yet") from None
    config = trial_config(config_of_trial(study, trial, shared), trial)
    origin = provenance(study, trial, storage_url, metric)
    if batch_size is None:
        return BestExport(trial, config, origin)
    new_train, change = transfer_batch_size(config.train, batch_size, scaling)
    config.train = OmegaConf.create(new_train)
    origin["batch_size_transfer"] = change
    return BestExport(trial, config, origin)


def export_config(cfg: DictConfig, origin: dict[str, Any], path: str | Path) -> Path:
    """Write ``cfg`` with a ``provenance`` block (minus local store settings) to ``path``."""
    data = OmegaConf.to_container(cfg, resolve=True)
    data.pop("storage", None)
    data.pop("tracking", None)
    data["provenance"] = {**origin, "seed": data.get("train", {}).get("seed")}  # the seed it trained with
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(OmegaConf.to_yaml(OmegaConf.create(data))))  # a value from ${oc.env:...} may hold one
    return path


def transfer_batch_size(train: Mapping[str, Any], batch_size: int, rule: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A train config moved to another batch size; returns (new train settings, what changed).

    LR × f(k) with k = new / old batch size: ``linear`` (f = k) for SGD, ``sqrt`` (f = √k) for the
    Adam family by default. Warmup grows with the LR factor (a larger step needs a longer ramp; Goyal
    et al. warm up over more samples when scaling up): ``warmup_frac × max(1, f)``, capped at 0.3.
    """
    if batch_size <= 0:
        raise ConfigError("--batch-size", batch_size, "must be a positive integer")
    optimizer = str(train.get("optimizer", "adamw"))
    rule = rule or DEFAULT_RULE.get(optimizer, "sqrt")
    if rule not in LR_SCALING:
        raise ConfigError("--scaling", rule, "unknown rule", ", ".join(LR_SCALING))
    old_batch = int(train["batch_size"])
    ratio = batch_size / old_batch
    factor = LR_SCALING[rule](ratio)
    new = dict(train)
    new["batch_size"] = batch_size
    new["lr"] = float(train["lr"]) * factor
    old_warmup = float(train.get("warmup_frac", 0.0))
    new["warmup_frac"] = min(MAX_WARMUP_FRAC, old_warmup * max(1.0, factor))
    change = {
        "rule": rule,
        "from_batch_size": old_batch,
        "to_batch_size": batch_size,
        "lr_factor": factor,
        "lr": [float(train["lr"]), new["lr"]],
        "warmup_frac": [old_warmup, new["warmup_frac"]],
    }
    return new, change


def git_commit() -> str | None:
    """The commit of the code that is running, when it runs from a git checkout."""
    try:
        here = Path(__file__).resolve().parent
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return done.stdout.strip() or None if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
