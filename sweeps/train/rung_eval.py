"""Schedule-aware rung evaluation: judge a trial by where it would finish, not where it stands.

Mid-schedule, a high-LR trial has not annealed yet and scores worse than it will end, so a pruner
that reads the raw metric at an early rung throws good LRs away (LR-NOTES, "two traps"). Chosen by
``train.rung_eval``, the trainer adds ``rung_val_acc`` / ``rung_val_loss`` to the epoch's metrics and
the reporter judges those instead of ``val_acc`` / ``val_loss``; the raw values are still reported.

* ``raw``: nothing added; the pruner reads the live model (the behaviour before this module).
* ``cooldown`` (``CooldownRungs``): at each rung epoch but the last, branch a short LR decay from a
  COPY of the model and optimizer, evaluate the cooled copy, throw it away. The decay runs from the
  LR of the last step to ``train.lr_min`` over ``train.rung_cooldown_frac`` of the steps so far (at
  least one), shaped by ``train.decay_shape``, on batches from its own seeded generator; the global
  RNG is forked around it. The trial's own trajectory is bit-identical with and without it. Hägele
  et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"
  (arXiv:2405.18392): a WSD run's stable phase can be cooled down from any checkpoint, and a cooldown
  of 10-20 % of the steps matches a cosine run of that length. Designed for ``train.schedule=wsd``,
  whose main trajectory holds its LR until the final decay; with other decaying schedules the branch
  starts from whatever LR the schedule has reached (see ``make_rung_evaluator``). The extra steps are
  paid: reported as ``rung_extra_steps`` (cumulative) and, at the last epoch, in ``cost_epochs``.
* ``averaged`` (``AveragedRungs``): evaluate an exponential moving average of the weights every epoch,
  an estimate of the annealed model at no extra training (iterate averaging, Polyak & Juditsky
  1992; LAWA, Sanyal et al. 2023, arXiv:2306.03241). The average is a power-function EMA (Karras et
  al. 2024, arXiv:2312.02696) whose horizon is a share of the steps so far, so it means the same at
  every rung, batch size and run length. With ``train.schedule=schedule_free`` the optimizer's eval
  point already is an averaged iterate (Defazio et al. 2024, "The Road Less Scheduled",
  arXiv:2405.15682) and the raw metrics are the averaged ones: nothing is added.

The trainer passes its own step, evaluation and batch functions in (``TrainerHooks``), so this module
does not import ``sweeps.train.training`` and the cooled-down copy trains with exactly the trainer's step.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from sweeps.errors import ConfigError
from sweeps.search.hyperband import pruning_epochs
from sweeps.train.optimizers import SCHEDULE_FREE
from sweeps.train.schedules import DECAY_SHAPES, Schedule, warmup_stable_decay

Batch = tuple[torch.Tensor, torch.Tensor]
RUNG_EVALS = ("raw", "cooldown", "averaged")


# ----------------------------------------------------------------------------------------------
# Pure pieces.


rung_epochs_for = pruning_epochs  # where a rung value is worth computing: where the pruner reads


def cooldown_steps(steps_so_far: int, cooldown_frac: float) -> int:
    """Length of a rung's cooldown branch: ``round(cooldown_frac · steps_so_far)``, at least 1."""
    return max(1, int(round(cooldown_frac * steps_so_far)))


def cooldown_schedule(start_lr: float, lr_min: float, steps: int, decay_shape: str = "linear") -> Schedule:
    """The branch's LR for its steps ``k = 0 … steps − 1``: the WSD decay anchored at ``start_lr``.

    ``lr(k) = lr_min + (start_lr − lr_min) · f((k + 1) / C)`` with ``C = steps`` and ``f`` the WSD
    ``decay_shape`` (``1 − p``, ``½(1 + cos πp)``, ``1 − √p``): exactly the last ``C`` steps of
    ``schedules.warmup_stable_decay``. Progress is counted from the main run's last step, which ran
    at ``start_lr`` (``lr(−1) == start_lr``), so the branch continues the curve without repeating a
    step at ``start_lr``, and its last step is at ``lr_min``, as the real cooldown's is.
    """
    if steps < 1:
        raise ValueError(f"a cooldown needs at least 1 step, got {steps}")
    return warmup_stable_decay(start_lr, steps, 0, steps, lr_min, decay_shape)


def power_ema_weight(step: int, horizon: float) -> float:
    """Weight of the newest iterate in a power-function EMA after ``step`` iterates (``step >= 1``).

    ``β_t = (1 − 1/t)^(1/h)``, weight ``1 − β_t`` (Karras et al. 2024, with ``γ + 1 = 1/h``): the
    average weights iterate ``τ`` by ``τ^(1/h − 1)``, so about two thirds of the weight
    (``1 − (1 − h)^(1/h)``) lies on the last ``h`` share of the steps, whatever their number.
    ``h = 1`` is the uniform average of all iterates (Polyak; torch's ``AveragedModel`` default);
    ``t = 1`` copies the first iterate.
    """
    return 1.0 - (1.0 - 1.0 / step) ** (1.0 / horizon)


# ----------------------------------------------------------------------------------------------
# Branch and average.


@dataclass(frozen=True)
class TrainerHooks:
    """What rung evaluation borrows from the trainer, passed in rather than imported.

    ``train_step(model, optimizer, batch, lr)`` is the trainer's own optimizer step (LR written into
    the param groups, forward, backward, clip, step); ``evaluate(model)`` returns ``val_loss`` and
    ``val_acc``; ``epoch_batches(generator)`` yields one shuffled epoch drawn from ``generator``.
    """

    train_step: Callable[[nn.Module, torch.optim.Optimizer, Batch, float], Any]
    evaluate: Callable[[nn.Module], dict[str, float]]
    epoch_batches: Callable[[torch.Generator], Iterator[Batch]]


def _endless(hooks: TrainerHooks, generator: torch.Generator) -> Iterator[Batch]:
    while True:
        yield from hooks.epoch_batches(generator)


def branch_and_evaluate(
    model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, steps: int, hooks: TrainerHooks,
    generator: torch.Generator,
) -> dict[str, float]:
    """Train a deep copy of ``(model, optimizer)`` for ``steps`` steps at ``schedule(k)``; evaluate it.

    The pair is copied together, so the copied optimizer's state and param groups point at the
    copied parameters. Batches come from ``generator`` and the global RNG (dropout) is forked and
    restored: the originals, the main batch order and every RNG are as they were before the call.
    """
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        branch_model, branch_optimizer = copy.deepcopy((model, optimizer))
        branch_model.train()
        for k, batch in zip(range(steps), _endless(hooks, generator)):
            hooks.train_step(branch_model, branch_optimizer, batch, schedule(k))
        return hooks.evaluate(branch_model)


class EmaEvaluator:
    """A power-function EMA of a model's parameters and floating-point buffers (see ``power_ema_weight``).

    Equivalent to ``torch.optim.swa_utils.AveragedModel(model, use_buffers=True)`` with a
    step-dependent EMA; written out because torch's EMA helper takes a fixed decay, and a fixed
    decay means a different horizon at every rung and batch size. Integer buffers are copied.
    """

    def __init__(self, model: nn.Module, horizon: float) -> None:
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.horizon = horizon
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold in the live model's current weights (call once after every optimizer step)."""
        self.steps += 1
        weight = power_ema_weight(self.steps, self.horizon)
        pairs = zip([*self.module.parameters(), *self.module.buffers()], [*model.parameters(), *model.buffers()])
        for averaged, live in pairs:
            if averaged.is_floating_point():
                averaged.lerp_(live, weight)
            else:
                averaged.copy_(live)


# ----------------------------------------------------------------------------------------------
# The strategies, behind one interface the trainer calls.


class RungEvaluator(Protocol):
    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step of the main trajectory."""

    def epoch_metrics(self, epoch: int, steps_done: int, lr: float) -> dict[str, float]:
        """Metrics to add to epoch ``epoch``'s report (``lr``: the LR of the epoch's last step)."""


class RawRungs:
    """``raw``: the pruner reads the live model's metrics; nothing is added."""

    def after_step(self, model: nn.Module) -> None:
        pass

    def epoch_metrics(self, epoch: int, steps_done: int, lr: float) -> dict[str, float]:
        return {}


def _as_rung(metrics: Mapping[str, float]) -> dict[str, float]:
    return {f"rung_{name}": value for name, value in metrics.items()}


@dataclass
class CooldownRungs:
    """``cooldown``: at rung epochs (the last excluded), the metrics of a cooled-down copy.

    Reports ``rung_val_acc``, ``rung_val_loss``, ``rung_extra_steps`` (branch steps so far) and
    ``cost_epochs = epoch + extra steps / steps per epoch`` (what the trial has cost so far, in epochs
    of training: a trial pruned here cost this) at rung epochs; at the last epoch the last two.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    hooks: TrainerHooks
    rung_epochs: Collection[int]
    epochs: int
    steps_per_epoch: int
    cooldown_frac: float
    lr_min: float
    decay_shape: str
    seed: int
    extra_steps: int = 0

    def after_step(self, model: nn.Module) -> None:
        pass

    def epoch_metrics(self, epoch: int, steps_done: int, lr: float) -> dict[str, float]:
        if epoch == self.epochs:
            return self._cost(epoch)
        if epoch not in self.rung_epochs:
            return {}
        steps = cooldown_steps(steps_done, self.cooldown_frac)
        schedule = cooldown_schedule(lr, min(self.lr_min, lr), steps, self.decay_shape)
        # Its own stream of batches, seeded by the run's seed and the branch point: reproducible, and
        # the main generator is never drawn from.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + steps_done)
        metrics = branch_and_evaluate(self.model, self.optimizer, schedule, steps, self.hooks, generator)
        self.extra_steps += steps
        return {**_as_rung(metrics), **self._cost(epoch)}

    def _cost(self, epoch: int) -> dict[str, float]:
        return {"rung_extra_steps": float(self.extra_steps), "cost_epochs": epoch + self.extra_steps / self.steps_per_epoch}


@dataclass
class AveragedRungs:
    """``averaged``: the metrics of the EMA of the weights, every epoch (the last included)."""

    ema: EmaEvaluator
    hooks: TrainerHooks

    def after_step(self, model: nn.Module) -> None:
        self.ema.update(model)

    def epoch_metrics(self, epoch: int, steps_done: int, lr: float) -> dict[str, float]:
        return _as_rung(self.hooks.evaluate(self.ema.module))


def _fraction(train_cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = train_cfg.get(key)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < float(value) <= 1:
        raise ConfigError(f"train.{key}", value, "must be a share of the steps so far", "(0, 1]")
    return float(value)


def check_rung_eval(train_cfg: Mapping[str, Any]) -> str:
    """``train.rung_eval`` if known (default ``raw``), else ``ConfigError`` naming the key."""
    name = train_cfg.get("rung_eval") or "raw"
    if name not in RUNG_EVALS:
        raise ConfigError("train.rung_eval", name, "unknown rung evaluation", ", ".join(RUNG_EVALS))
    if name == "cooldown" and train_cfg.get("schedule") == SCHEDULE_FREE:
        raise ConfigError("train.rung_eval", name, "schedule_free has no LR to cool down; its eval point is "
                          "already an averaged iterate", "raw or averaged (same thing there)")
    return name


def make_rung_evaluator(
    train_cfg: Mapping[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, hooks: TrainerHooks,
    rung_epochs: Collection[int] | None, epochs: int, steps_per_epoch: int,
) -> RungEvaluator:
    """The strategy ``train.rung_eval`` names, its knobs validated (``ConfigError`` names the key).

    ``rung_epochs``: where the pruner reads (``None``: every epoch but the last). Schedules:
    ``cooldown`` is meant for ``wsd``; with another schedule (``warmup_cosine``, ``step``, ...) it
    branches from whatever LR the schedule has reached, an estimate of "this run, annealed now".
    Not refused, because the trial's own run is untouched either way and a search over schedule
    families (``search=lr_schedule``) would otherwise fail its non-wsd trials mid-sweep; measured on
    digits with ``warmup_cosine`` it ranks like ``raw`` (benchmarks/rung_eval.py). With
    ``schedule_free`` it is refused (``ConfigError``). ``averaged`` with ``schedule_free`` adds
    nothing: the raw metrics already are those of the averaged point.
    """
    name = check_rung_eval(train_cfg)
    if name == "raw" or (name == "averaged" and train_cfg.get("schedule") == SCHEDULE_FREE):
        return RawRungs()
    if name == "averaged":
        return AveragedRungs(EmaEvaluator(model, _fraction(train_cfg, "rung_ema_horizon", 0.2)), hooks)
    decay_shape = train_cfg.get("decay_shape") or "1-sqrt"
    if decay_shape not in DECAY_SHAPES:
        raise ConfigError("train.decay_shape", decay_shape, "not an allowed value", ", ".join(DECAY_SHAPES))
    lr_min = float(train_cfg.get("lr_min") or 0.0)
    if not (math.isfinite(lr_min) and lr_min >= 0):
        raise ConfigError("train.lr_min", lr_min, "must be >= 0")
    return CooldownRungs(
        model, optimizer, hooks,
        rung_epochs=frozenset(range(1, epochs)) if rung_epochs is None else frozenset(rung_epochs),
        epochs=epochs, steps_per_epoch=steps_per_epoch,
        cooldown_frac=_fraction(train_cfg, "rung_cooldown_frac", 0.2),
        lr_min=lr_min, decay_shape=decay_shape, seed=int(train_cfg.get("seed", 0)),
    )
