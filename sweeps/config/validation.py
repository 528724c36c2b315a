"""Every setting the service reads, typed and ranged, checked before anything is written.

A bad value used to surface late: ``sweep.seed=abc`` after the study was created,
``tracking.flush_seconds=abc`` after the parent run, ``search.lr='interval(-0.1, 0.1)'`` as 15
failed trials out of 20. Here each key has its type and range in one table, the trainer's own
checks (``sweeps.train.schedules.build_schedule``, which a trial runs) are run on the configured ``train``
section and on each search parameter's extreme values, and an SQLite store's folder must be writable.
Everything raises ``ConfigError`` naming the key, so the CLI prints one line and exits 2.
"""

from __future__ import annotations

import difflib
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeps.errors import ConfigError

_ABSENT = object()

Check = Callable[[Any], bool]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int, high: float = math.inf) -> tuple[Check, str]:
    return (lambda v: _integer(v) and low <= v <= high), f"an integer in [{low}, {high:g}]" if high != math.inf else f"an integer >= {low}"


def number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> tuple[Check, str]:
    def check(v: Any) -> bool:
        return _number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)

    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"
    return check, f"a number in {interval}"


BOOLEAN: tuple[Check, str] = (lambda v: isinstance(v, bool), "true or false")


def or_value(rule: tuple[Check, str], *values: Any) -> tuple[Check, str]:
    check, text = rule
    return (lambda v: v in values or check(v)), f"{text}, or {', '.join(map(str, values))}"


# The settings of the sweep, its stores and its trainer: key -> (check, what is allowed).
SETTINGS: dict[str, tuple[Check, str]] = {
    "sweep.seed": integer(0, 2**32 - 1),
    "sweep.tpe.n_startup_trials": integer(0),
    "sweep.tpe.multivariate": BOOLEAN,
    "sweep.gp.n_startup_trials": integer(1),
    "sweep.rung_model.min_trials": or_value(integer(1), None),
    "sweep.median.n_startup_trials": integer(0),
    "sweep.median.n_warmup_steps": integer(0),
    "sweep.hyperband.min_resource": integer(1),
    "sweep.hyperband.reduction_factor": integer(2),
    "sweep.max_failures": integer(0),
    "storage.heartbeat_interval": integer(1),
    "storage.grace_period": integer(1),
    "storage.max_retry": integer(0),
    "storage.reap_interval": number(0, low_open=True),
    "tracking.flush_seconds": number(0),
    "tracking.log_steps": BOOLEAN,
}
TRAIN_SETTINGS: dict[str, tuple[Check, str]] = {
    "epochs": integer(1),
    "batch_size": integer(1),
    "lr": number(0, low_open=True),
    "weight_decay": number(0),
    "momentum": number(0, 1, high_open=True),
    "nesterov": BOOLEAN,
    "lr_layer_decay": number(0, 1, low_open=True),
    "grad_clip": or_value(number(0, low_open=True), None),
    "diverge_factor": or_value(number(1, low_open=True), None),  # null: only NaN/inf stops a trial
    "seed": integer(0, 2**32 - 1),
    "threads": or_value(integer(1), "auto"),
}
STUDY_NAME_LIMIT = 128  # MLflow experiment names and tags hold it with room; Optuna's column is 512


def check_settings(cfg: DictConfig) -> None:
    """Type and range of every key in ``SETTINGS`` present in ``cfg``; the storage heartbeat pair."""
    for key, rule in SETTINGS.items():
        _check(key, OmegaConf.select(cfg, key, default=_ABSENT), rule)
    storage = cfg.get("storage") or {}
    if "grace_period" in storage and "heartbeat_interval" in storage and storage.grace_period <= storage.heartbeat_interval:
        raise ConfigError("storage.grace_period", storage.grace_period, f"must exceed storage.heartbeat_interval={storage.heartbeat_interval}, "
                          "or a live trial is declared dead between two heartbeats")
    name = str(OmegaConf.select(cfg, "sweep.study_name", default=""))
    if len(name) > STUDY_NAME_LIMIT:
        raise ConfigError("sweep.study_name", name, f"longer than {STUDY_NAME_LIMIT} characters ({len(name)})")


def check_train(train: Mapping[str, Any], where: str = "train") -> None:
    """The trainer's own checks on a ``train`` section, before any trial runs: types and ranges,
    and the schedule with its knobs exactly as a trial builds it (``build_schedule``)."""
    from sweeps.train.schedules import build_schedule

    for key, rule in TRAIN_SETTINGS.items():
        _check(f"{where}.{key}", train.get(key, _ABSENT), rule)
    betas = train.get("betas", [0.9, 0.999])
    if not (isinstance(betas, Iterable) and len(list(betas)) == 2 and all(_number(b) and 0 <= b < 1 for b in betas)):
        raise ConfigError(f"{where}.betas", betas, "must be two numbers in [0, 1)", "[0.9, 0.999]")
    # steps are large enough that only the knobs' own ranges can fail, not a short run's rounding
    build_schedule(train, total_steps=1_000_000, steps_per_epoch=1_000)


def check_search_against_trainer(cfg: DictConfig, space: Any) -> None:
    """Each search parameter that sets a ``train`` key, at its extreme values (both bounds, every
    choice), must pass the trainer's checks: a bound no trial could train with is refused here,
    not as failed trials. Conditional parameters are checked under their condition."""
    base = OmegaConf.to_container(cfg.train, resolve=True)
    by_name = {p.name: p for p in space.params}
    for param in space.params:
        if not param.target.startswith("train."):
            continue
        key = param.target.split(".", 1)[1]
        condition = {}
        for other, allowed in param.when.items():
            if other in by_name and by_name[other].target.startswith("train."):
                condition[by_name[other].target.split(".", 1)[1]] = allowed[0]
        for raw in _extremes(param.distribution):
            value = param.applied_value(raw)
            try:
                check_train({**base, **condition, key: value})
            except ConfigError as err:
                spec = OmegaConf.select(cfg, f"search.{param.name}", default=None)
                spec = spec if isinstance(spec, str) else OmegaConf.to_container(spec) if isinstance(spec, DictConfig) else spec
                problem = f"{value!r} is outside the trainer's range for {err.key} ({err.problem})"
                raise ConfigError(f"search.{param.name}", spec, problem, err.allowed) from None


def check_sqlite_location(key: str, url: str, database: str, create: bool = True) -> None:
    """An SQLite store must be writable where it lies: its folder (to create it, and WAL's side
    files) and the file itself. ``create=False`` (read-only verbs): the file must already exist."""
    path = Path(database).expanduser().resolve()
    if not path.parent.is_dir():
        raise ConfigError(key, url, f"folder {path.parent} does not exist")
    if not path.exists():
        if not create:
            raise ConfigError(key, url, f"no store at {path}", "the path of an existing store, or run `sweeps run` there first")
    else:
        try:
            with open(path, "r+b"):
                pass
        except OSError as err:
            raise ConfigError(key, url, f"cannot write {path} ({err.strerror})", "a writable location") from None
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as err:
        raise ConfigError(key, url, f"cannot write in folder {path.parent} ({err.strerror})", "a writable location") from None


def did_you_mean(key: str, keys: Iterable[str]) -> str | None:
    """The closest existing key to a misspelt one (``sweep.n_trial`` -> ``sweep.n_trials``)."""
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    found = difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.8)
    return siblings[found[0]] if found else None


def config_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config (sections and leaves)."""
    keys = []
    container = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    for name, value in container.items():
        keys.append(f"{prefix}{name}")
        if isinstance(value, Mapping):
            keys.extend(config_keys(value, f"{prefix}{name}."))
    return keys


def _check(key: str, value: Any, rule: tuple[Check, str]) -> None:
    if value is _ABSENT:
        return
    check, allowed = rule
    if not check(value):
        raise ConfigError(key, value, "out of range" if _number(value) else "wrong type", allowed)


def _extremes(distribution: Any) -> list[Any]:
    if hasattr(distribution, "choices"):
        return list(distribution.choices)
    return [distribution.low, distribution.high]
