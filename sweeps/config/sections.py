"""The composed config as typed, frozen sections: what each module below the entry points receives.

``compose_config`` validates the composed ``DictConfig`` once (``sweeps.config.compose.validate``);
``Sections.of(cfg)`` then reads it into the dataclasses below, and modules take the section they
need (``make_pruner(sweep)``, ``make_storage(storage)``, keyword-only where a function takes several:
``open_study(sweep=..., storage=..., space=...)``), the way Optuna's ``create_study`` takes its settings. A name a section does not know (a sampler, a pruner, a
direction, a ramp mode) is refused here with ``ConfigError``; nothing downstream falls through to a
default on a name it does not recognise.

The whole ``DictConfig`` still travels where it is the data: an objective receives its trial's
config (the objective interface), the search space reads ``search.*`` and sets ``train.*`` keys, and
exports, stored study configs and the parent run's ``sweep_config.yaml`` record it. The ``train``
section stays a mapping for the same reason: objectives add their own keys to it, and the trainer's
own checks (``sweeps.config.validation.check_train``) type the keys it reads.

This module imports no Optuna, MLflow, Hydra or torch: the CLI builds sections before the sweep stack loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal, get_args

from sweeps.errors import ConfigError

if TYPE_CHECKING:
    from sweeps.results.curve_diagnosis import Thresholds

Sampler = Literal["tpe", "gp", "random", "grid"]
Pruner = Literal["hyperband", "median", "none"]
Direction = Literal["maximize", "minimize"]
RampMode = Literal["exp", "linear"]
HighFrom = Literal["min_loss", "edge", "steepest"]

SAMPLERS: tuple[str, ...] = get_args(Sampler)
PRUNERS: tuple[str, ...] = get_args(Pruner)
DIRECTIONS: tuple[str, ...] = get_args(Direction)
RAMP_MODES: tuple[str, ...] = get_args(RampMode)
HIGH_FROM: tuple[str, ...] = get_args(HighFrom)


def one_of(key: str, value: Any, allowed: tuple[str, ...]) -> Any:
    """``value`` if it is one of ``allowed``, else a ``ConfigError`` naming the key and the choices."""
    if value not in allowed:
        raise ConfigError(key, value, "unknown value", ", ".join(allowed))
    return value


@dataclass(frozen=True, kw_only=True)
class TpeSettings:
    n_startup_trials: int = 5
    multivariate: bool = True


@dataclass(frozen=True, kw_only=True)
class GpSettings:
    n_startup_trials: int = 10


@dataclass(frozen=True, kw_only=True)
class HyperbandSettings:
    min_resource: int = 1
    reduction_factor: int = 3


@dataclass(frozen=True, kw_only=True)
class MedianSettings:
    n_startup_trials: int = 5
    n_warmup_steps: int = 1


@dataclass(frozen=True, kw_only=True)
class SweepSection:
    """``sweep.*``, with ``max_epochs`` (``train.epochs``): a trial's full budget and the pruner's maximum resource."""

    study_name: str
    n_trials: int
    metric: str
    direction: Direction = "maximize"
    sampler: Sampler = "tpe"
    pruner: Pruner = "hyperband"
    max_epochs: int = 1
    timeout: float | None = None
    seed: int = 0
    max_failures: int = 0
    allow_config_change: bool = False
    workers: int | Literal["auto"] = 1
    gpus: Any = "auto"  # "auto", a list of GPU ids, or empty for the CPU
    trials_per_gpu: int = 1
    tpe: TpeSettings = TpeSettings()
    gp: GpSettings = GpSettings()
    hyperband: HyperbandSettings = HyperbandSettings()
    median: MedianSettings = MedianSettings()
    rung_model_min_trials: int | None = None  # sweep.rung_model.min_trials: BOHB's rule, off when None

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SweepSection:
        sweep, train = cfg["sweep"], cfg.get("train") or {}
        timeout = sweep.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
            raise ConfigError("sweep.timeout", timeout, "must be a number of seconds > 0", "null (no limit), 3600")
        return cls(
            study_name=str(sweep["study_name"]),
            n_trials=int(sweep["n_trials"]),
            metric=str(sweep["metric"]),
            direction=one_of("sweep.direction", sweep.get("direction", "maximize"), DIRECTIONS),
            sampler=one_of("sweep.sampler", sweep.get("sampler", "tpe"), SAMPLERS),
            pruner=one_of("sweep.pruner", sweep.get("pruner", "hyperband"), PRUNERS),
            max_epochs=int(train.get("epochs", 1)),
            timeout=None if timeout is None else float(timeout),
            seed=int(sweep.get("seed", 0)),
            max_failures=int(sweep.get("max_failures", 0)),
            allow_config_change=bool(sweep.get("allow_config_change", False)),
            workers=sweep.get("workers", 1) if sweep.get("workers", 1) == "auto" else int(sweep.get("workers", 1)),
            gpus=gpus if isinstance(gpus := sweep.get("gpus", "auto"), str) or gpus is None else tuple(gpus),
            trials_per_gpu=int(sweep.get("trials_per_gpu", 1)),
            tpe=_settings(TpeSettings, sweep.get("tpe")),
            gp=_settings(GpSettings, sweep.get("gp")),
            hyperband=_settings(HyperbandSettings, sweep.get("hyperband")),
            median=_settings(MedianSettings, sweep.get("median")),
            rung_model_min_trials=(sweep.get("rung_model") or {}).get("min_trials"),
        )


@dataclass(frozen=True, kw_only=True)
class StorageSection:
    """``storage.*``: the Optuna RDB storage and how dead workers' trials are found."""

    url: str
    heartbeat_interval: int = 30
    grace_period: int = 90
    max_retry: int = 1
    reap_interval: float = 60.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> StorageSection:
        return _settings(cls, cfg["storage"], url=str(cfg["storage"]["url"]))


@dataclass(frozen=True, kw_only=True)
class TrackingSection:
    """``tracking.*``: the MLflow tracking store."""

    uri: str
    artifact_location: str | None = None
    log_steps: bool = False
    flush_seconds: float = 5.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrackingSection:
        tracking = cfg["tracking"]
        location = tracking.get("artifact_location")
        return _settings(cls, tracking, uri=str(tracking["uri"]), artifact_location=None if location is None else str(location))


@dataclass(frozen=True, kw_only=True)
class LrFindSection:
    """``lr_find.*``: the LR range test that sets ``search.lr``'s bounds before a sweep."""

    enabled: bool = False
    lr_min: float = 1e-7
    lr_max: float = 10.0
    steps: int = 100
    mode: RampMode = "exp"
    smooth_beta: float = 0.98
    diverge_factor: float = 4.0
    low_div: float = 10.0
    high_from: HighFrom = "min_loss"
    high_div: float = 1.0

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> LrFindSection:
        section = cfg.get("lr_find") or {}
        one_of("lr_find.mode", section.get("mode", "exp"), RAMP_MODES)
        one_of("lr_find.high_from", section.get("high_from", "min_loss"), HIGH_FROM)
        return _settings(cls, section)


@dataclass(frozen=True, kw_only=True)
class Sections:
    """Every service section of one composed config, typed; built once per entry point."""

    sweep: SweepSection
    storage: StorageSection
    tracking: TrackingSection
    lr_find: LrFindSection
    diagnosis: Thresholds  # the curve classifier's own typed section: its cut-offs live beside their measurements

    @classmethod
    def of(cls, cfg: Mapping[str, Any]) -> Sections:
        from sweeps.results.curve_diagnosis import Thresholds  # pure (numpy); loaded once the rest is valid

        return cls(
            sweep=SweepSection.from_config(cfg),
            storage=StorageSection.from_config(cfg),
            tracking=TrackingSection.from_config(cfg),
            lr_find=LrFindSection.from_config(cfg),
            diagnosis=Thresholds.from_mapping(cfg.get("diagnosis") or {}),
        )


def _settings(cls: type, section: Mapping[str, Any] | None, **given: Any) -> Any:
    """``cls`` from the keys of ``section`` it declares (others belong to other readers), cast to each field's default's type."""
    values = dict(given)
    for f in fields(cls):
        if f.name in values or section is None or f.name not in section:
            continue
        value = section[f.name]
        default = f.default
        if value is not None and isinstance(default, bool):
            value = bool(value)
        elif value is not None and isinstance(default, float):
            value = float(value)
        elif value is not None and isinstance(default, int):
            value = int(value)
        values[f.name] = value
    return cls(**values)
