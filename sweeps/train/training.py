"""The shared training loop of the built-in objectives.

An objective describes its problem as a ``Task`` (model factory, tensors, loss); this module owns
everything else, in one fixed order per step: LR from the schedule, forward, backward, clip, step.
Because the pieces are separate, the LR range test and curve diagnosis can drive any built-in
objective without a second training loop.

Data is small and lives on the device for the whole run (no DataLoader, no host→device copies per
step); batches are index slices of a seeded permutation.

What the pruner judges at a rung is ``train.rung_eval`` (``sweeps/train/rung_eval.py``): the live model
(``raw``), a cooled-down copy (``cooldown``) or an average of the weights (``averaged``). The trainer
only calls the chosen evaluator after each step and at each epoch's end; the trial's own trajectory
is the same under all three.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sweeps.results.curve_diagnosis import loss_exploded
from sweeps.train.accelerator import compile_model, prepare_device, to_device
from sweeps.train.optimizers import build_optimizer, set_train_mode
from sweeps.train.precision import MixedPrecision, clip_gradients, plain
from sweeps.train.reporter import Diverged, Reporter, TrialRecorder
from sweeps.train.rung_eval import Batch, TrainerHooks, make_rung_evaluator
from sweeps.train.schedules import apply_lr, build_schedule


@dataclass
class Task:
    """What the trainer needs from an objective: a model factory, data and a loss.

    ``loss_fn(outputs, targets)`` returns the mean loss; ``count_correct(outputs, targets)`` the
    number of correct predictions (classification), or ``None`` when accuracy does not apply.
    """

    build_model: Callable[[], nn.Module]
    train_data: Batch
    val_data: Batch
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
    count_correct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = (
        lambda outputs, targets: (outputs.argmax(dim=-1) == targets).sum()
    )


@dataclass
class TrainResult:
    """The final epoch's metrics and the per-step trace (train loss and LR of every step)."""

    metrics: dict[str, float]
    step_losses: list[float] = field(default_factory=list)
    step_lrs: list[float] = field(default_factory=list)
    model: nn.Module | None = None  # the trained model, for checkpoints of production runs


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present (the worker's pinned GPU), else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_threads(setting: Any, workers: int = 1) -> int:
    """Torch intra-op threads for one worker: a number, or ``auto`` = the cores shared by the workers.

    Small models gain nothing from intra-op threads and lose a lot when two OpenMP runtimes are
    loaded in one process (scikit-learn's and torch's): measured on 2 cores, a digits-MLP step took
    0.4 ms on 1 thread and 30-100 ms on 2 threads once scikit-learn or MLflow was imported first.
    """
    if setting in (None, "auto"):
        return max(1, (os.cpu_count() or 1) // max(1, workers))
    return max(1, int(setting))


def batches(data: Batch, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
    """One epoch of shuffled mini-batches, as slices of tensors already on the device."""
    inputs, targets = data
    order = torch.randperm(len(inputs), generator=generator).to(inputs.device)
    for start in range(0, len(inputs), batch_size):
        index = order[start : start + batch_size]
        yield inputs[index], targets[index]


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, data: Batch, batch_size: int = 1024, precision: MixedPrecision | None = None) -> dict[str, float]:
    """Mean loss (``val_loss``) and accuracy (``val_acc``, classification only) over ``data``."""
    model.eval()
    inputs, targets = data
    loss_sum = torch.zeros((), device=inputs.device)
    correct = torch.zeros((), device=inputs.device)
    for start in range(0, len(inputs), batch_size):
        x, y = inputs[start : start + batch_size], targets[start : start + batch_size]
        with precision.autocast() if precision else nullcontext():
            outputs = model(x)
            loss = task.loss_fn(outputs, y)
        loss_sum += loss.float() * len(x)
        if task.count_correct is not None:
            correct += task.count_correct(outputs, y)
    metrics = {"val_loss": (loss_sum / len(inputs)).item()}
    if task.count_correct is not None:
        metrics["val_acc"] = (correct / len(inputs)).item()
    return metrics


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    batch: Batch,
    lr: float,
    grad_clip: float | None,
    precision: MixedPrecision | None = None,
) -> torch.Tensor:
    """One optimizer step at ``lr``: write the LR, forward, backward, clip, step. Returns the loss.

    ``precision`` (``sweeps/train/precision.py``): forward and loss under autocast, fp16's loss scaling;
    ``None`` is plain float32.
    """
    inputs, targets = batch
    apply_lr(optimizer, lr)
    precision = precision or plain(inputs.device.type)
    with precision.autocast():
        loss = task.loss_fn(model(inputs), targets)
    optimizer.zero_grad(set_to_none=True)
    precision.scale(loss).backward()
    if grad_clip:
        clip_gradients(precision, optimizer, model.parameters(), float(grad_clip))
    precision.step(optimizer)  # fp16: skipped when the gradients overflowed, then the scale adapts
    return loss


def _record_steps(recorder: TrialRecorder | None, result: TrainResult, start: int) -> None:
    """Hand the epoch's per-step losses and LRs to a reporter that keeps them (for the diagnosis)."""
    if recorder is not None:
        recorder.record_steps(result.step_losses[start:], result.step_lrs[start:])


class RunSetup(NamedTuple):
    device: torch.device
    model: nn.Module
    train_data: Batch
    seed: int


def set_up(task: Task, train_cfg: Mapping[str, Any]) -> RunSetup:
    """The one setup of the trainer and the LR range test: the device, its CPU threads and CUDA
    determinism, the seed (``train.seed``), the model built under it, the training data on the device."""
    device = resolve_device(str(train_cfg.get("device", "auto")))
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(train_cfg.get("threads", "auto")))
    prepare_device(device, bool(train_cfg.get("deterministic", True)))
    seed = int(train_cfg.get("seed", 0))
    torch.manual_seed(seed)
    model = task.build_model().to(device)
    return RunSetup(device, model, tuple(to_device(t, device) for t in task.train_data), seed)


def train(task: Task, train_cfg: Mapping[str, Any], reporter: Reporter) -> TrainResult:
    """Train ``task`` for ``train_cfg.epochs``, reporting every epoch; returns the final metrics.

    Raises ``Diverged`` at the first training loss that is NaN/inf or above ``train.diverge_factor``
    times the first step's loss, and whatever the reporter raises (``Pruned``) when the study stops
    the trial. With ``train.rung_eval`` other than ``raw`` the reports also carry ``rung_val_acc`` /
    ``rung_val_loss`` (what the pruner judges) and, for ``cooldown``, its extra steps and
    ``cost_epochs`` (``sweeps/train/rung_eval.py``); ``ConfigError`` for a bad ``rung_eval`` setting.
    """
    device, model, train_data, seed = set_up(task, train_cfg)
    precision = MixedPrecision(str(train_cfg.get("precision", "fp32")), device.type)
    forward_model = compile_model(model, bool(train_cfg.get("compile", False)))  # compiled at its first call, in this trial's time
    val_data = tuple(to_device(t, device) for t in task.val_data)
    batch_size = int(train_cfg["batch_size"])
    epochs = int(train_cfg["epochs"])
    steps_per_epoch = math.ceil(len(train_data[0]) / batch_size)
    total_steps = epochs * steps_per_epoch
    schedule = build_schedule(train_cfg, total_steps, steps_per_epoch)
    optimizer = build_optimizer(model, train_cfg, total_steps)
    grad_clip = train_cfg.get("grad_clip")
    generator = torch.Generator().manual_seed(seed)
    result = TrainResult(metrics={}, model=model)
    branch_precision = precision.fresh()  # a cooldown branch must not move the trial's fp16 loss scale
    hooks = TrainerHooks(
        train_step=lambda m, opt, batch, lr: train_step(m, opt, task, batch, lr, grad_clip, branch_precision),
        evaluate=lambda m: evaluate(m, task, val_data, precision=precision),
        epoch_batches=lambda gen: batches(train_data, batch_size, gen),
    )
    # A sweep's reporter keeps step losses and knows where its pruner reads; None = every epoch but the last.
    recorder = reporter if isinstance(reporter, TrialRecorder) else None
    rungs = make_rung_evaluator(train_cfg, model, optimizer, hooks, recorder.rung_epochs if recorder else None, epochs, steps_per_epoch)

    diverge_factor = float(train_cfg.get("diverge_factor") or math.inf)
    step = epoch_start = 0
    for epoch in range(1, epochs + 1):
        model.train()
        set_train_mode(optimizer, True)
        epoch_loss = 0.0
        for batch in batches(train_data, batch_size, generator):
            lr = schedule(step)
            loss = train_step(forward_model, optimizer, task, batch, lr, grad_clip, precision)
            rungs.after_step(model)
            loss_value = loss.item()  # a CPU-GPU sync point, paid once per step for the divergence guard
            result.step_losses.append(loss_value)
            result.step_lrs.append(lr)
            if loss_exploded(loss_value, result.step_losses[0], diverge_factor):
                _record_steps(recorder, result, epoch_start)
                raise Diverged(step=step, lr=lr, loss=loss_value, epoch=epoch)
            epoch_loss += loss_value
            step += 1
        set_train_mode(optimizer, False)  # schedule-free: evaluate at the averaged point
        metrics = {"train_loss": epoch_loss / steps_per_epoch, **evaluate(forward_model, task, val_data, precision=precision), "lr": lr}
        metrics.update(rungs.epoch_metrics(epoch, step, lr))  # after the live evaluation; never changes the live model
        result.metrics = metrics
        _record_steps(recorder, result, epoch_start)
        epoch_start = step
        reporter.report(epoch, **metrics)
    return result
