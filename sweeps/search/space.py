"""Search spaces: ``search:`` config entries → Optuna distributions → a trial's config.

Two spellings, one result:

* Hydra's sweep grammar, as hydra-optuna-sweeper users write it, parsed with Hydra's own override
  parser: ``tag(log, interval(1e-5, 1.0))``, ``interval(0, 0.2)``, ``int(interval(1, 5))``,
  ``choice(16, 32, 64)``, ``range(1, 4)`` (stop exclusive, like Python's ``range``; float bounds or
  step give a stepped float, ``range(-5.5, 5.5, step=0.5)``).
* A mapping for what the grammar cannot say::

      weight_decay: {type: float, low: 1e-6, high: 0.1, log: true, zero_prob: 0.2}
      cooldown_frac: {expr: "interval(0.1, 0.3)", when: {schedule: wsd}}

  ``zero_prob`` gives "0 or log-uniform": the log range is extended below ``low`` so that, under
  uniform sampling, a draw falls below ``low`` with probability ``zero_prob``; such a draw means 0.
  One continuous parameter keeps TPE's model of it smooth. Optuna records the raw draw; the trial
  config (and MLflow's ``train.*`` params) carry the applied 0.
  ``when`` makes a parameter conditional: it is sampled only when the named (earlier) parameters
  took one of the listed values, e.g. a schedule's knobs only for that schedule.

Every parameter sets one config key: ``key:`` when given, else ``train.<name>`` when the trainer has
that key, else ``objective.<name>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeps.errors import ConfigError
from sweeps.errors import first_line as _first_line

PARAM_TYPES = ("float", "int", "categorical")
MAPPING_KEYS = ("type", "low", "high", "log", "step", "choices", "zero_prob", "expr", "key", "when")
GRAMMAR_FORMS = "tag(log, interval(a, b)), interval(a, b), int(interval(a, b)), choice(...), range(a, b)"


@dataclass(frozen=True)
class SearchParam:
    """One searched parameter: its Optuna name and distribution, and the config key it sets."""

    name: str
    target: str
    distribution: BaseDistribution
    zero_below: float | None = None  # draws below this value mean 0 (``zero_prob``)
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def applied_value(self, raw: Any) -> Any:
        """The value the trial trains with, given Optuna's raw draw."""
        if self.zero_below is not None and raw < self.zero_below:
            return 0.0
        return raw

    def is_active(self, sampled: Mapping[str, Any]) -> bool:
        return all(sampled.get(other) in allowed for other, allowed in self.when.items())


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[SearchParam, ...]

    def sample(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Ask ``trial`` for every active parameter; returns ``{config key: applied value}``."""
        raw: dict[str, Any] = {}
        for param in self.params:
            if param.is_active(raw):
                raw[param.name] = _suggest(trial, param.name, param.distribution)
        return self.applied(raw)

    def applied(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``{config key: applied value}`` for Optuna's recorded params (e.g. a finished trial's)."""
        return {p.target: p.applied_value(raw[p.name]) for p in self.params if p.name in raw}

    def with_bounds(self, name: str, low: float, high: float) -> SearchSpace:
        """The same space with parameter ``name`` searched over ``[low, high]`` (same scale)."""
        params = []
        for param in self.params:
            if param.name == name:
                log = getattr(param.distribution, "log", True)
                param = SearchParam(param.name, param.target, FloatDistribution(low, high, log=log), when=param.when)
            params.append(param)
        return SearchSpace(tuple(params))

    def grid(self) -> dict[str, list[Any]]:
        """Finite value lists for Optuna's GridSampler; continuous or conditional params are refused."""
        grid: dict[str, list[Any]] = {}
        for param in self.params:
            dist = param.distribution
            if param.when:
                raise ConfigError(f"search.{param.name}.when", dict(param.when), "grid search cannot sample conditional parameters")
            if isinstance(dist, CategoricalDistribution):
                grid[param.name] = list(dist.choices)
            elif isinstance(dist, IntDistribution) and not dist.log:
                grid[param.name] = list(range(dist.low, dist.high + 1, dist.step))
            elif isinstance(dist, FloatDistribution) and dist.step is not None and not dist.log:
                count = round((dist.high - dist.low) / dist.step) + 1  # a float range(), stop excluded already
                grid[param.name] = [round(dist.low + i * dist.step, 12) for i in range(count)]
            else:
                raise ConfigError(
                    f"search.{param.name}", _as_expression(dist), "sweep.sampler=grid needs finite values", "choice(...) or range(a, b)"
                )
        return grid


def parse_search_space(cfg: DictConfig) -> SearchSpace:
    """Validate ``cfg.search`` against the composed config and build the search space."""
    return _parse_space(cfg.get("search") or {}, "search", lambda name, key: _target(name, key, cfg))


def parse_key_space(search: Mapping[str, Any], where: str) -> SearchSpace:
    """A search space whose parameters set the config keys they are named after (``key:`` renames):
    a Hydra app's ``hydra.sweeper.params`` / ``search``, where the app's own keys are the targets."""
    return _parse_space(search, where, lambda name, key: str(key) if key is not None else name)


def _parse_space(search: Mapping[str, Any], where: str, target: Callable[[str, Any], str]) -> SearchSpace:
    params: list[SearchParam] = []
    for name, spec in search.items():
        name = str(name)
        param = _parse_param(name, spec, target, f"{where}.{name}")
        for other in param.when:
            if other not in {p.name for p in params}:
                raise ConfigError(f"{where}.{name}.when", other, "must name a search parameter defined above it")
        params.append(param)
    return SearchSpace(tuple(params))


def apply_params(cfg: DictConfig, values: Mapping[str, Any]) -> DictConfig:
    """A copy of ``cfg`` with each ``{dotted key: value}`` set: the config one trial runs with."""
    trial_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key, value in values.items():
        OmegaConf.update(trial_cfg, key, value, merge=False)
    OmegaConf.set_struct(trial_cfg, True)
    return trial_cfg


def _parse_param(name: str, spec: Any, target_of: Callable[[str, Any], str], where: str) -> SearchParam:
    if isinstance(spec, str):
        return SearchParam(name, target_of(name, None), _parse_grammar(where, spec))
    if not isinstance(spec, Mapping):
        raise ConfigError(where, spec, "expected a sweep expression or a mapping", f"{GRAMMAR_FORMS}, or {{type, low, high, ...}}")
    spec = OmegaConf.to_container(spec, resolve=True) if isinstance(spec, DictConfig) else dict(spec)
    unknown = sorted(set(spec) - set(MAPPING_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", spec[unknown[0]], "unknown field", ", ".join(MAPPING_KEYS))
    target = target_of(name, spec.get("key"))
    when = _parse_when(where, spec.get("when"))
    if "expr" in spec:
        return SearchParam(name, target, _parse_grammar(f"{where}.expr", str(spec["expr"])), when=when)
    distribution, zero_below = _parse_mapping(where, spec)
    return SearchParam(name, target, distribution, zero_below, when)


def _parse_grammar(where: str, text: str) -> BaseDistribution:
    try:
        override = OverridesParser.create().parse_override(f"x={text}")
    except HydraException as err:
        raise ConfigError(where, text, f"not a sweep expression ({_first_line(err)})", GRAMMAR_FORMS) from None
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution(list(value.list))
    if isinstance(value, RangeSweep):
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            # a float range is a stepped float (hydra-optuna-sweeper's example: range(-5.5, 5.5, step=0.5))
            start, stop, step = float(value.start), float(value.stop), float(value.step)
            _check_bounds(where, start, stop - step, log=False)
            return FloatDistribution(start, stop - step, step=step)
        start, stop, step = int(value.start), int(value.stop), int(value.step)
        _check_bounds(where, start, stop - step, log=False)
        return IntDistribution(start, stop - step, step=step)
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        _check_bounds(where, value.start, value.end, log)
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(where, text, "not a sweep expression", GRAMMAR_FORMS)


def _parse_mapping(where: str, spec: dict[str, Any]) -> tuple[BaseDistribution, float | None]:
    kind = spec.get("type", "categorical" if "choices" in spec else "float")
    if kind not in PARAM_TYPES:
        raise ConfigError(f"{where}.type", kind, "unknown search parameter type", ", ".join(PARAM_TYPES))
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices:
            raise ConfigError(f"{where}.choices", choices, "categorical needs a non-empty list of choices")
        return CategoricalDistribution(list(choices)), None
    for bound in ("low", "high"):
        if not isinstance(spec.get(bound), (int, float)) or isinstance(spec.get(bound), bool):
            raise ConfigError(f"{where}.{bound}", spec.get(bound), f"{kind} needs a numeric {bound}")
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    _check_bounds(where, low, high, log)
    if log and step is not None:
        raise ConfigError(f"{where}.step", step, "log scale and step cannot be combined")
    zero_prob = spec.get("zero_prob")
    if kind == "int":
        if zero_prob is not None:
            raise ConfigError(f"{where}.zero_prob", zero_prob, "only float parameters take zero_prob")
        return IntDistribution(int(low), int(high), log=log, step=int(step or 1)), None
    if zero_prob is None or zero_prob == 0:
        return FloatDistribution(float(low), float(high), log=log, step=step), None
    if not log:
        raise ConfigError(f"{where}.zero_prob", zero_prob, "zero_prob needs log: true (0 or log-uniform)")
    if not 0 < zero_prob < 1:
        raise ConfigError(f"{where}.zero_prob", zero_prob, "must lie in (0, 1)")
    # Extend the log range below `low` by the share that makes P(draw < low) = zero_prob.
    extended_low = low * (low / high) ** (zero_prob / (1 - zero_prob))
    return FloatDistribution(float(extended_low), float(high), log=True), float(low)


def _check_bounds(where: str, low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ConfigError(f"{where}.low", low, f"must be < high={high}")
    if log and low <= 0:
        raise ConfigError(f"{where}.low", low, "a log scale needs low > 0", "use zero_prob for '0 or log-uniform'")


def _parse_when(where: str, when: Any) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, Mapping):
        raise ConfigError(f"{where}.when", when, "expected {param: value or [values]}")
    return {str(k): tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in when.items()}


def _target(name: str, key: str | None, cfg: DictConfig) -> str:
    if key is not None:
        if OmegaConf.select(cfg, str(key), default=_MISSING) is _MISSING:
            raise ConfigError(f"search.{name}.key", key, "no such config key")
        return str(key)
    for section in ("train", "objective"):
        if name in (cfg.get(section) or {}):
            return f"{section}.{name}"
    raise ConfigError(
        f"search.{name}", name, "sets neither train.<name> nor objective.<name>", "name the key it sets with {expr: ..., key: <dotted.key>}"
    )


def _suggest(trial: optuna.trial.BaseTrial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"unsupported distribution {dist!r}")


def _as_expression(dist: BaseDistribution) -> str:
    """The distribution in the sweep-expression grammar, as an error names the value (``preview.describe_param`` says it in words)."""
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        return f"{'log-' if dist.log else ''}interval({dist.low}, {dist.high})"
    return repr(dist)


_MISSING = object()
