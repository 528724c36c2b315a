"""Compose the sweep config with Hydra's compose API, validate it, and name what is wrong.

Hydra's own grammar drives every override (``key=value``, ``group=option``, ``+key=value``). One
extension: a sweep expression given for a ``search.<param>`` key on the command line (for example
``search.lr='tag(log, interval(1e-5, 0.1))'``) is kept as the text of that search entry instead of
being treated as a Hydra multirun sweep, so the search space reads the same on the command line
as in YAML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeps.config.sections import DIRECTIONS, PRUNERS, SAMPLERS, Sections
from sweeps.config.validation import check_settings, check_train, config_keys, did_you_mean
from sweeps.errors import ConfigError
from sweeps.errors import first_line as _first_line
from sweeps.run.launcher import check_packing
from sweeps.track.redact import redact
from sweeps.train.optimizers import OPTIMIZERS
from sweeps.train.precision import check_precision


def builtin_config_dir() -> Path:
    """The ``conf/`` folder shipped with the package (``sweeps.conf``)."""
    return Path(str(resources.files("sweeps.conf")))


def compose_config(overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """Compose ``config.yaml`` with ``overrides``; ``config_dir`` adds a user folder of config groups."""
    overrides = [_keep_search_expression(o) for o in overrides]
    if config_dir is not None:
        folder = Path(config_dir).resolve()
        if not folder.is_dir():
            raise ConfigError("--config-dir", str(config_dir), "no such folder")
        overrides.append(f"hydra.searchpath=[file://{folder}]")
    try:
        with initialize_config_dir(config_dir=str(builtin_config_dir()), version_base=None):
            cfg = compose(config_name="config", overrides=overrides)
    except MissingConfigException as err:
        raise _missing_option(err) from None
    except (HydraException, OmegaConfBaseException) as err:
        raise _composition_error(err, overrides) from None
    validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Check the keys the service itself reads; objectives validate their own."""
    check_settings(cfg)  # sweeps.config.validation: types and ranges of sweep.*, storage.*, tracking.*
    _positive_int(cfg, "train.epochs")
    _positive_int(cfg, "sweep.n_trials")
    _positive_int(cfg, "train.batch_size")
    _positive_number(cfg, "train.lr")
    _one_of(cfg, "sweep.sampler", SAMPLERS)
    _one_of(cfg, "sweep.pruner", PRUNERS)
    _one_of(cfg, "sweep.direction", DIRECTIONS)
    _one_of(cfg, "train.optimizer", OPTIMIZERS)
    _positive_int(cfg, "sweep.hyperband.min_resource")
    if cfg.sweep.hyperband.reduction_factor < 2:
        raise ConfigError("sweep.hyperband.reduction_factor", cfg.sweep.hyperband.reduction_factor, "must be >= 2")
    if cfg.sweep.hyperband.min_resource > cfg.train.epochs:
        raise ConfigError("sweep.hyperband.min_resource", cfg.sweep.hyperband.min_resource, f"must be <= train.epochs={cfg.train.epochs}")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", str(cfg.sweep.study_name)):
        raise ConfigError("sweep.study_name", cfg.sweep.study_name, "use letters, digits, '.', '_' and '-'")
    if not str(cfg.sweep.metric):
        raise ConfigError("sweep.metric", cfg.sweep.metric, "must name a reported metric, e.g. val_acc")
    grad_clip = cfg.train.get("grad_clip")
    if grad_clip is not None and (not isinstance(grad_clip, (int, float)) or grad_clip <= 0):
        raise ConfigError("train.grad_clip", grad_clip, "must be a positive max norm or null")
    device = str(cfg.train.device)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        raise ConfigError("train.device", device, "unknown device", "auto, cpu, cuda, cuda:N")
    check_train(OmegaConf.to_container(cfg.train, resolve=True))  # the trainer's own ranges, schedule included
    check_precision(cfg.train)  # train.precision, compile, deterministic (fp16 needs CUDA)
    check_packing(cfg.sweep)  # sweep.workers, sweep.trials_per_gpu
    Sections.of(cfg)  # the typed sections modules receive: sweep.timeout, lr_find's names, diagnosis.*


def load_exported(path: str | Path, overrides: Sequence[str], local: DictConfig) -> DictConfig:
    """An exported config (``sweeps best --export``) with this machine's stores and ``overrides``.

    Overrides follow Hydra's rules on the file's keys: ``key=value`` must name an existing key (a
    typo is refused, with the nearest key), ``+key=value`` adds or sets one; storage and tracking
    come from ``local``. The result is validated, its objective imported: a bad file is one line.
    """
    from omegaconf import open_dict

    from sweeps.train.objective import load_objective

    if not Path(path).is_file():
        raise ConfigError("--config", str(path), "no such file")
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # YAML syntax, or a file that is not a mapping
        raise ConfigError("--config", str(path), f"not a YAML config ({_first_line(err)})") from None
    cfg = OmegaConf.merge(loaded, {"storage": local.storage, "tracking": local.tracking})
    OmegaConf.set_struct(cfg, True)
    for override in overrides:
        key, _, text = override.partition("=")
        name = key.lstrip("+~")
        if name.startswith(("storage", "tracking")):
            continue
        try:
            value = OmegaConf.from_dotlist([f"value={text}"]).value
        except OmegaConfBaseException as err:
            raise ConfigError(name, text, f"cannot parse value ({_first_line(err)})") from None
        if not key.startswith("+") and OmegaConf.select(cfg, name, default=_ABSENT) is _ABSENT:
            near = did_you_mean(name, config_keys(cfg))
            problem = f"no such key in {path}" + (f"; did you mean {near}?" if near else "")
            raise ConfigError(name, text, problem, f"an existing key, or +{name}=<value> to add one")
        with open_dict(cfg):
            OmegaConf.update(cfg, name, value, merge=False, force_add=True)
    validate(cfg)
    load_objective(cfg)  # an unimportable target is refused before a run is created
    return cfg


def training_config(overrides: Sequence[str], exported: str | Path | None, config_dir: str | Path | None = None) -> DictConfig:
    """``sweeps train``'s config: composed from ``overrides``; with an exported file, that file with this
    machine's stores (the ``storage*``/``tracking*`` overrides, composed) and the other overrides."""
    if not exported:
        return compose_config(overrides, config_dir)
    stores = [o for o in overrides if o.split("=")[0].lstrip("+").startswith(("storage", "tracking"))]
    return load_exported(exported, overrides, compose_config(stores, config_dir))


_ABSENT = object()


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML, with any URL's password hidden (it is written to artifacts)."""
    return redact(OmegaConf.to_yaml(cfg, resolve=True))


def _keep_search_expression(override: str) -> str:
    """``search.lr=interval(0, 1)`` → ``search.lr='interval(0, 1)'`` (a search entry, not a multirun)."""
    try:
        parsed = OverridesParser.create().parse_override(override)
    except HydraException as err:
        raise ConfigError(override.split("=", 1)[0], override.partition("=")[2], f"cannot parse override ({_first_line(err)})") from None
    if not parsed.is_sweep_override():
        return override
    key = parsed.key_or_group
    prefix, _, text = override.partition("=")
    if not key.startswith("search."):
        raise ConfigError(key, text, "sweep expressions belong under search.<param>", f"search.{key.split('.')[-1]}=...")
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"{prefix}='{escaped}'"


def _missing_option(err: MissingConfigException) -> ConfigError:
    message = str(err)
    match = re.search(r"Could not find '([^'/]+)/([^']+)'", message)
    if match:
        group, option = match.groups()
        options = re.findall(r"^\t(\S+)$", message.split("Available options", 1)[-1], flags=re.M)
        return ConfigError(group, option, f"unknown {group} option", ", ".join(options) or None)
    return ConfigError("config", "", _first_line(err))


def _composition_error(err: Exception, overrides: Sequence[str]) -> ConfigError:
    message = f"{err}\n{err.__cause__ or ''}"
    match = re.search(r"Could not (?:override|append to config)\W+'([^']+)'", message) or re.search(r"at '([^']+)'", message)
    key = match.group(1) if match else "override"
    value = next((o.partition("=")[2] for o in overrides if o.lstrip("+~").partition("=")[0] == key), "")
    if "is not in struct" in message or "No match in config" in message:
        near = did_you_mean(key, _shipped_keys())
        problem = f"no such config key; did you mean {near}?" if near else "no such config key"
        return ConfigError(key, value, problem, f"an existing key, or +{key}=<value> to add one")
    if "An item is already at" in message:
        return ConfigError(key, value, "key exists already", f"{key}=<value> (no +) to change it")
    return ConfigError(key, value, _first_line(err))


def _shipped_keys() -> list[str]:
    """Every key of the shipped default config (for "did you mean" on a misspelt key)."""
    try:
        with initialize_config_dir(config_dir=str(builtin_config_dir()), version_base=None):
            return config_keys(compose(config_name="config"))
    except (HydraException, OmegaConfBaseException):
        return []


def _positive_int(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(key, value, "must be a positive integer")


def _positive_number(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(key, value, "must be a positive number")


def _one_of(cfg: DictConfig, key: str, allowed: Sequence[str]) -> None:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(key, value, "unknown value", ", ".join(allowed))
