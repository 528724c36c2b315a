"""Learning-rate schedules as pure functions of the optimizer step.

A schedule is ``lr(step) -> float`` for ``step`` in ``[0, total_steps)``: the LR used by the
optimizer step with that index. No hidden state, so a schedule can be plotted, tested against a
closed form, or replayed from any step. Each schedule is a factory returning such a function (optax
style); composites are made with ``join_schedules``. ``apply_lr`` is the one adapter that writes a
value into a torch optimizer's param groups. Where torch has the same schedule, ours equals
``torch.optim.lr_scheduler`` at every step of a run (tests/test_schedules.py).

``build_schedule`` reads flat ``train.*`` keys (T = total steps, E = steps per epoch):

=============  ==============================================================  =================
schedule       keys read besides ``lr`` and ``warmup_frac`` (default)          torch reference
=============  ==============================================================  =================
constant       none                                                            ConstantLR
step           step_epochs (3), gamma (0.1): ×γ every round(step_epochs·E)     StepLR
exponential    gamma (0.9) per *epoch*, i.e. γ^(1/E) per step                  ExponentialLR
cosine         lr_min (0)                                                      CosineAnnealingLR
warmup_cosine  lr_min (0); same curve as ``cosine``, kept as the default name  CosineAnnealingLR
wsd            lr_min (0), cooldown_frac (0.2), decay_shape (1-sqrt)           none
onecycle       pct_start (0.3), div_factor (25), final_div_factor (1e4),       OneCycleLR
               anneal_strategy (cos), three_phase (false); no warmup_frac
cyclic         cyclic_mode (triangular), cyclic_base_lr (lr / cyclic_div),     CyclicLR
               cyclic_div (4), cycle_epochs (4): up and down, each
               round(cycle_epochs·E/2) steps
schedule_free  none: flat ``lr``; the schedule-free optimizer does its own      none
               warmup (``warmup_frac``) and iterate averaging
=============  ==============================================================  =================

``lr`` (required) is the peak LR. Every schedule but ``onecycle`` starts with the same linear
warmup over ``W = round(warmup_frac · T)`` steps (``warmup_frac`` default 0): ``lr(t) = peak ·
(t + 1) / (W + 1)``, where peak is where the main schedule starts (``lr``; the cycle's base for
``cyclic``). The main schedule then runs over the remaining ``T − W`` steps as a run of its own,
exactly torch's ``SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W), main],
milestones=[W])``. ``onecycle`` ignores ``warmup_frac`` and ``lr_min``: its ``pct_start`` rise is its
warmup and ``final_div_factor`` sets its floor.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sweeps.errors import ConfigError

Schedule = Callable[[int], float]

DECAY_SHAPES = ("linear", "cosine", "1-sqrt")
ANNEAL_STRATEGIES = ("cos", "linear")
CYCLIC_MODES = ("triangular", "triangular2")


# ----------------------------------------------------------------------------------------------
# Factories: pure math, no config.


def constant(value: float) -> Schedule:
    """``lr(t) = value``."""
    return lambda step: float(value)


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` on ``[boundaries[i-1], boundaries[i])``, its step counted from its own start.

    Same contract as ``optax.join_schedules``: ``len(schedules) == len(boundaries) + 1``.
    """
    if len(schedules) != len(boundaries) + 1:
        raise ValueError(f"{len(schedules)} schedules need {len(schedules) - 1} boundaries, got {len(boundaries)}")
    starts = (0, *boundaries)

    def lr(step: int) -> float:
        i = bisect.bisect_right(boundaries, step)
        return schedules[i](step - starts[i])

    return lr


def linear_warmup(peak_lr: float, warmup_steps: int) -> Schedule:
    """``lr(t) = peak_lr · (t + 1) / (W + 1)`` for ``t < W``; reaches ``peak_lr`` at ``t = W``.

    Equals torch's ``LinearLR(start_factor=1/(W+1), end_factor=1, total_iters=W)``: no step is
    wasted at LR 0, and the first step after warmup is the first at the peak (Goyal et al. 2017,
    arXiv:1706.02677, gradual warmup).
    """
    return lambda step: peak_lr * (step + 1) / (warmup_steps + 1)


def with_warmup(main: Schedule, warmup_steps: int) -> Schedule:
    """Linear warmup to ``main(0)`` over ``warmup_steps``, then ``main`` counted from the end of warmup.

    Warming up to where ``main`` starts (the peak for every decay, the base of a cyclic schedule)
    keeps the curve continuous. Equals ``SequentialLR([LinearLR, main], milestones=[W])``.
    """
    if warmup_steps == 0:
        return main
    return join_schedules([linear_warmup(main(0), warmup_steps), main], [warmup_steps])


def step_decay(base_lr: float, step_size: int, gamma: float) -> Schedule:
    """``lr(t) = base_lr · γ^⌊t / step_size⌋`` (torch ``StepLR``)."""
    return lambda step: base_lr * gamma ** (step // step_size)


def exponential_decay(base_lr: float, gamma: float) -> Schedule:
    """``lr(t) = base_lr · γ^t`` with ``γ`` per step (torch ``ExponentialLR``)."""
    return lambda step: base_lr * gamma**step


def cosine_decay(base_lr: float, decay_steps: int, lr_min: float = 0.0) -> Schedule:
    """``lr(t) = lr_min + ½(base_lr − lr_min)(1 + cos(π t / decay_steps))`` (torch ``CosineAnnealingLR``).

    Loshchilov & Hutter 2017, SGDR (arXiv:1608.03983). As in torch, ``lr_min`` is reached at
    ``t = decay_steps``, one step after the last one of the run: the last step's LR is slightly above it.
    """
    return lambda step: lr_min + 0.5 * (base_lr - lr_min) * (1.0 + math.cos(math.pi * step / decay_steps))


def warmup_cosine(base_lr: float, total_steps: int, warmup_steps: int = 0, lr_min: float = 0.0) -> Schedule:
    """``linear_warmup`` over ``warmup_steps``, then ``cosine_decay`` over ``total_steps − warmup_steps``."""
    return with_warmup(cosine_decay(base_lr, total_steps - warmup_steps, lr_min), warmup_steps)


_DECAY_SHAPE_FNS: dict[str, Callable[[float], float]] = {
    "linear": lambda p: 1.0 - p,
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * p)),
    "1-sqrt": lambda p: 1.0 - math.sqrt(p),
}


def warmup_stable_decay(
    base_lr: float, total_steps: int, warmup_steps: int, cooldown_steps: int, lr_min: float = 0.0,
    decay_shape: str = "1-sqrt",
) -> Schedule:
    """Warmup, hold ``base_lr``, then decay over the last ``C = cooldown_steps`` steps to ``lr_min``.

    Decay step ``k`` in ``[0, C)`` has progress ``p = (k + 1) / C`` and
    ``lr = lr_min + (base_lr − lr_min) · f(p)`` with ``f`` = ``1 − p`` (linear), ``½(1 + cos πp)``
    (cosine) or ``1 − √p`` (1-sqrt). Unlike ``cosine_decay``, the last step of the run *is* at
    ``lr_min`` (``p = 1``): the cooldown is the point of WSD. Hu et al. 2024, MiniCPM
    (arXiv:2404.06395); 1-sqrt from Hägele et al. 2024 (arXiv:2405.18392).
    """
    shape = _DECAY_SHAPE_FNS[decay_shape]
    stable_steps = total_steps - warmup_steps - cooldown_steps

    def decay(k: int) -> float:
        return lr_min + (base_lr - lr_min) * shape((k + 1) / cooldown_steps)

    return with_warmup(join_schedules([constant(base_lr), decay], [stable_steps]), warmup_steps)


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


def one_cycle(
    max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
    final_div_factor: float = 1e4, anneal_strategy: str = "cos", three_phase: bool = False,
) -> Schedule:
    """1cycle (Smith & Topin 2018, arXiv:1708.07120), exactly torch's ``OneCycleLR`` without momentum.

    Rise from ``max_lr / div_factor`` to ``max_lr`` until step ``pct_start·T − 1``, then anneal to
    ``max_lr / (div_factor · final_div_factor)`` at step ``T − 1``. With ``three_phase`` the rise is
    mirrored back down to the start LR by step ``2·pct_start·T − 2`` before the final anneal. Each
    phase interpolates ``start → end`` with ``pct = (t − phase start) / (phase end − phase start)``
    (float phase ends, as torch), cosine ``end + ½(start − end)(1 + cos π·pct)`` or linear.
    """
    initial_lr = max_lr / div_factor
    min_lr = initial_lr / final_div_factor
    rise_end = float(pct_start * total_steps) - 1
    if three_phase:
        phases = [(rise_end, initial_lr, max_lr), (float(2 * pct_start * total_steps) - 2, max_lr, initial_lr),
                  (total_steps - 1, initial_lr, min_lr)]
    else:
        phases = [(rise_end, initial_lr, max_lr), (total_steps - 1, max_lr, min_lr)]
    anneal = _anneal_cos if anneal_strategy == "cos" else _anneal_linear

    def lr(step: int) -> float:
        # The first phase whose (float) end is not passed; the last phase takes all later steps.
        i = next((i for i, phase in enumerate(phases[:-1]) if step <= phase[0]), len(phases) - 1)
        phase_start = phases[i - 1][0] if i else 0.0
        phase_end, start_lr, end_lr = phases[i]
        return anneal(start_lr, end_lr, (step - phase_start) / (phase_end - phase_start))

    return lr


def cyclic(base_lr: float, max_lr: float, half_cycle_steps: int, mode: str = "triangular") -> Schedule:
    """Triangular waves ``base_lr → max_lr → base_lr``, each half ``half_cycle_steps`` long (torch ``CyclicLR``).

    Cycle ``c = ⌊t / 2h⌋``, offset ``o = t mod 2h``: ``lr = base + (max − base)·(1 − |o − h| / h)·a``
    with amplitude ``a = 1`` (triangular) or ``2^−c`` (triangular2, halved every cycle).
    Smith 2017, Cyclical Learning Rates (arXiv:1506.01186).
    """

    def lr(step: int) -> float:
        cycle, offset = divmod(step, 2 * half_cycle_steps)
        amplitude = 1.0 if mode == "triangular" else 0.5**cycle
        return base_lr + (max_lr - base_lr) * (1.0 - abs(offset - half_cycle_steps) / half_cycle_steps) * amplitude

    return lr


# ----------------------------------------------------------------------------------------------
# Config: read and validate the flat ``train.*`` keys, then call a factory.

_WARMUP_KNOBS = ("lr", "warmup_frac")
_KNOBS: dict[str, tuple[str, ...]] = {
    "constant": _WARMUP_KNOBS,
    "step": (*_WARMUP_KNOBS, "step_epochs", "gamma"),
    "exponential": (*_WARMUP_KNOBS, "gamma"),
    "cosine": (*_WARMUP_KNOBS, "lr_min"),
    "warmup_cosine": (*_WARMUP_KNOBS, "lr_min"),
    "wsd": (*_WARMUP_KNOBS, "lr_min", "cooldown_frac", "decay_shape"),
    "onecycle": ("lr", "pct_start", "div_factor", "final_div_factor", "anneal_strategy", "three_phase"),
    "cyclic": (*_WARMUP_KNOBS, "cyclic_mode", "cyclic_base_lr", "cyclic_div", "cycle_epochs"),
    "schedule_free": ("lr",),
}
SCHEDULES: tuple[str, ...] = tuple(_KNOBS)


def _check_name(name: Any) -> str:
    if name not in _KNOBS:
        raise ConfigError("train.schedule", name, "unknown schedule", ", ".join(SCHEDULES))
    return name


def schedule_knobs(name: str) -> tuple[str, ...]:
    """The ``train`` keys that schedule ``name`` reads (besides ``schedule`` itself)."""
    return _KNOBS[_check_name(name)]


def _number(train: Mapping[str, Any], key: str, default: float | None, interval: str) -> float:
    """``train[key]`` as a float inside ``interval``, written like ``"(0, 1]"`` (``inf`` allowed).

    A key set to null takes the schedule's default (``gamma`` differs between ``step`` and ``exponential``).
    """
    value = train.get(key)
    value = default if value is None else value
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    if value is None:
        raise ConfigError(f"train.{key}", value, "required", interval)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"train.{key}", value, "not a number", interval)
    x = float(value)
    above = low < x if interval[0] == "(" else low <= x
    below = x < high if interval[-1] == ")" else x <= high
    if not (above and below):  # also catches NaN
        raise ConfigError(f"train.{key}", value, "out of range", interval)
    return x


def _choice(train: Mapping[str, Any], key: str, default: Any, allowed: Sequence[Any]) -> Any:
    value = train.get(key)
    value = default if value is None else value
    if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
        raise ConfigError(f"train.{key}", value, "not an allowed value", ", ".join(map(str, allowed)))
    return value


def _steps(fraction: float, total_steps: int) -> int:
    return int(round(fraction * total_steps))


def build_schedule(train: Mapping[str, Any], total_steps: int, steps_per_epoch: int) -> Schedule:
    """Build the schedule named by ``train.schedule`` (default ``warmup_cosine``); see the module docstring.

    Raises ``ConfigError`` naming ``train.<key>`` for an unknown schedule or an out-of-range knob.
    """
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"need total_steps >= 1 and steps_per_epoch >= 1, got {total_steps}, {steps_per_epoch}")
    name = _check_name(train.get("schedule", "warmup_cosine"))
    peak = _number(train, "lr", None, "(0, inf)")
    if name == "onecycle":
        three_phase = _choice(train, "three_phase", False, (False, True))
        pct_start = _number(train, "pct_start", 0.3, "(0, 0.5]" if three_phase else "(0, 1)")
        if pct_start * total_steps <= 1:  # torch would divide by zero or skip the rise
            raise ConfigError("train.pct_start", pct_start, f"pct_start × {total_steps} steps must exceed 1 step")
        return one_cycle(
            peak, total_steps, pct_start,
            div_factor=_number(train, "div_factor", 25.0, "[1, inf)"),
            final_div_factor=_number(train, "final_div_factor", 1e4, "[1, inf)"),
            anneal_strategy=_choice(train, "anneal_strategy", "cos", ANNEAL_STRATEGIES),
            three_phase=three_phase,
        )

    if name == "schedule_free":
        # Schedule-free AdamW/SGD: no decay; the optimizer warms up itself (build_optimizer passes
        # warmup_steps) and averages iterates instead of annealing, so the LR we write stays flat.
        return constant(peak)

    # At least one step is left to the main schedule, whatever the rounding.
    warmup_steps = min(_steps(_number(train, "warmup_frac", 0.0, "[0, 1)"), total_steps), total_steps - 1)
    main_steps = total_steps - warmup_steps
    if name == "constant":
        return with_warmup(constant(peak), warmup_steps)
    if name == "step":
        step_size = max(1, _steps(_number(train, "step_epochs", 3.0, "(0, inf)"), steps_per_epoch))
        return with_warmup(step_decay(peak, step_size, _number(train, "gamma", 0.1, "(0, 1]")), warmup_steps)
    if name == "exponential":
        # gamma is per epoch, so the curve over epochs does not change with the batch size.
        gamma_per_step = _number(train, "gamma", 0.9, "(0, 1]") ** (1.0 / steps_per_epoch)
        return with_warmup(exponential_decay(peak, gamma_per_step), warmup_steps)
    if name in ("cosine", "warmup_cosine"):
        lr_min = _number(train, "lr_min", 0.0, f"[0, {peak!r}]")
        return warmup_cosine(peak, total_steps, warmup_steps, lr_min)
    if name == "wsd":
        lr_min = _number(train, "lr_min", 0.0, f"[0, {peak!r}]")
        cooldown_frac = _number(train, "cooldown_frac", 0.2, "(0, 1]")
        warmup_frac = float(train.get("warmup_frac", 0.0))
        if warmup_frac + cooldown_frac > 1 + 1e-12:  # slack for float sums such as 0.7 + 0.3
            raise ConfigError("train.cooldown_frac", cooldown_frac, f"warmup_frac + cooldown_frac > 1 "
                              f"(warmup_frac={warmup_frac})", f"(0, {1 - warmup_frac:g}]")
        cooldown_steps = min(max(1, _steps(cooldown_frac, total_steps)), main_steps)
        decay_shape = _choice(train, "decay_shape", "1-sqrt", DECAY_SHAPES)
        return warmup_stable_decay(peak, total_steps, warmup_steps, cooldown_steps, lr_min, decay_shape)
    # cyclic: one full cycle (up and down) lasts cycle_epochs.
    mode = _choice(train, "cyclic_mode", "triangular", CYCLIC_MODES)
    if train.get("cyclic_base_lr") is not None:
        base = _number(train, "cyclic_base_lr", None, f"(0, {peak!r})")
    else:
        base = peak / _number(train, "cyclic_div", 4.0, "(1, inf)")
    half_cycle = max(1, _steps(_number(train, "cycle_epochs", 4.0, "(0, inf)") / 2, steps_per_epoch))
    return with_warmup(cyclic(base, peak, half_cycle, mode), warmup_steps)


def apply_lr(optimizer: Any, lr: float) -> None:
    """Write ``lr`` into every param group, scaled by the group's ``lr_scale`` (per-layer decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
