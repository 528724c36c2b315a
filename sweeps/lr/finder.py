"""The learning-rate range test (Smith's method): data, a pure suggestion, and a plot.

Smith, "Cyclical Learning Rates for Training Neural Networks" (arXiv:1506.01186, 2015; WACV 2017)
trains for a short while with the LR rising every step and reads good LRs off the loss curve; Smith &
Topin, "Super-Convergence" (arXiv:1708.07120, 2017) use the LR where the loss diverges as the peak of a
one-cycle schedule. fastai's ``lr_find`` made the usual recipe: exponential ramp from 1e-7 to 10 over
100 steps, EMA-smoothed loss (beta=0.98, bias-corrected), stop once it exceeds 4x its best or is NaN.

As in Lightning's ``lr_find`` and torch-lr-finder the three jobs are separate: ``range_test`` only
collects ``(lr, loss)`` data and puts the model back; ``suggest`` is a pure function of that data;
``plot_range_test`` only draws. torch is never imported here: ``range_test`` only calls methods on the
model, optimizer and loss it is handed, so the pure functions import without it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.config.sections import HIGH_FROM, RAMP_MODES
from sweeps.errors import ConfigError
from sweeps.train.schedules import apply_lr

# Smoothed losses from the first few steps rest on very few raw losses, so one unlucky batch could
# pass for divergence; neither range_test nor suggest calls a step "diverged" by the ratio test
# before this one. NaN/inf always counts.
MIN_STEPS_BEFORE_STOP = 5


def lr_ramp(lr_min: float, lr_max: float, steps: int, mode: str = "exp") -> list[float]:
    """The LR for each of ``steps`` steps, from ``lr_min`` to ``lr_max`` inclusive.

    ``exp``: ``lr_min * (lr_max / lr_min) ** (i / (steps - 1))`` -- equal spacing in log LR, so each
    decade gets the same number of steps (Smith 2015 used linear; fastai/Lightning default to exp).
    ``linear``: ``lr_min + (lr_max - lr_min) * i / (steps - 1)``.
    """
    if mode not in RAMP_MODES:
        raise ConfigError("lr_find.mode", mode, "unknown ramp", "exp, linear")
    if not (isinstance(lr_min, (int, float)) and math.isfinite(lr_min) and lr_min > 0):
        raise ConfigError("lr_find.lr_min", lr_min, "must be a finite number > 0", "e.g. 1e-7")
    if not (isinstance(lr_max, (int, float)) and math.isfinite(lr_max) and lr_max > lr_min):
        raise ConfigError("lr_find.lr_max", lr_max, f"must be finite and > lr_min={lr_min!r}", "e.g. 10.0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 10:
        raise ConfigError("lr_find.steps", steps, "too few points to read a curve from", "an integer >= 10")
    fractions = [i / (steps - 1) for i in range(steps)]
    if mode == "exp":
        return [lr_min * (lr_max / lr_min) ** f for f in fractions]
    return [lr_min + (lr_max - lr_min) * f for f in fractions]


def smooth_losses(losses: Iterable[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average with bias correction (fastai's ``SmoothenValue``; Adam's correction).

    ``avg_i = beta * avg_{i-1} + (1 - beta) * loss_i`` with ``avg_{-1} = 0``, reported as
    ``avg_i / (1 - beta ** (i + 1))`` so the early values are not pulled towards zero. A NaN or inf
    loss poisons every later value, which is what marks the divergence.
    """
    if not (isinstance(beta, (int, float)) and 0.0 <= beta < 1.0):
        raise ConfigError("lr_find.beta", beta, "EMA factor out of range", "0 <= beta < 1")
    smoothed, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1.0 - beta) * float(loss)
        smoothed.append(avg / (1.0 - beta ** (i + 1)))
    return smoothed


def _exceeds(value: float, best: float, diverge_factor: float) -> bool:
    # The ratio test only means something for positive losses (MSE, cross-entropy); with best <= 0
    # only NaN/inf stops the test.
    return best > 0 and value > diverge_factor * best


@dataclass(frozen=True)
class Suggestion:
    """Three readings of one range-test curve; see ``suggest`` for the definitions."""

    steepest: float | None
    min_loss: float | None
    edge: float
    diverged: bool


def suggest(
    lrs: list[float], smoothed: list[float], skip_start: int = 10, skip_end: int = 5,
    diverge_factor: float = 4.0,
) -> Suggestion:
    """Read the LR suggestions off a (smoothed) range-test curve. Pure: data in, numbers out.

    Only the finite prefix of ``smoothed`` is used (everything up to the first NaN/inf).

    - ``steepest``: the LR where ``d smoothed / d log10(lr)`` (``np.gradient``) is most negative, on
      the points left after dropping the first ``skip_start`` (flat, EMA still warming up) and last
      ``skip_end`` (divergence) -- Lightning's ``suggestion()`` and torch-lr-finder's rule, taken
      against log10(lr) so it also holds for a linear ramp. The loss falls fastest per decade there:
      the LR makes the most progress while still well inside the stable range. If fewer than 3 points
      are left after skipping, the whole finite prefix is used instead (noisier, but an answer); with
      fewer than 2 finite points no slope exists and it is ``None``.
    - ``min_loss``: the LR at the lowest smoothed loss (``None`` without a finite point). This is
      already close to the stability edge, and the EMA lags the raw loss, so fastai suggests
      ``min_loss / 10``; use it as an upper reference, not as the training LR.
    - ``edge``: the divergence edge, the first LR after the minimum (and at step
      >= ``MIN_STEPS_BEFORE_STOP``) where the smoothed loss exceeds ``diverge_factor`` x its minimum,
      or the first non-finite point; ``diverged=True``. This is exactly the rule ``range_test`` stops
      by, so for a run that stopped early it is the LR where it stopped. If the curve never diverges
      the edge is the last LR tested and ``diverged=False``: the true edge lies above the range, so
      read it as a lower bound. One-cycle peaks are usually set at 0.3-1x the edge (Smith 2017),
      and for good reason: on a quadratic with plain SGD the edge lands above the stability bound
      2/L (1.6-2.5x with gradient noise, 6-12x full-batch noiseless; EMA lag and GD wiping out the
      top-curvature mode near 1/L), as measured in tests/test_lr_finder.py.
    """
    if len(lrs) != len(smoothed) or not lrs:
        raise ValueError(f"need equally long, non-empty lrs and losses; got {len(lrs)} and {len(smoothed)}")
    values = np.asarray(smoothed, dtype=float)
    non_finite = np.flatnonzero(~np.isfinite(values))
    finite_end = int(non_finite[0]) if non_finite.size else len(values)
    if finite_end == 0:
        return Suggestion(steepest=None, min_loss=None, edge=float(lrs[0]), diverged=True)

    best_index = int(np.argmin(values[:finite_end]))
    best = float(values[best_index])
    edge_index = next(
        (i for i in range(max(best_index + 1, MIN_STEPS_BEFORE_STOP), finite_end)
         if _exceeds(float(values[i]), best, diverge_factor)),
        finite_end if finite_end < len(values) else None,
    )

    start, stop = skip_start, finite_end - skip_end
    if stop - start < 3:  # too few points left after skipping: use every finite point
        start, stop = 0, finite_end
    steepest = None
    if stop - start >= 2:
        log_lrs = np.log10(np.asarray(lrs[start:stop], dtype=float))
        slopes = np.gradient(values[start:stop], log_lrs)
        steepest = float(lrs[start + int(np.nanargmin(slopes))])

    edge = lrs[edge_index] if edge_index is not None else lrs[-1]
    return Suggestion(steepest, float(lrs[best_index]), float(edge), diverged=edge_index is not None)


@dataclass
class RangeTestResult:
    """What one range test measured: one entry per step run, in step order.

    ``losses[i]`` is the raw loss of the batch at step ``i``, computed *before* the update with
    ``lrs[i]`` (the usual one-step lag of fastai/Lightning). ``stop_reason`` is ``"completed"``,
    ``"diverged"`` (smoothed loss > diverge_factor x best) or ``"non_finite"`` (NaN/inf loss).
    """

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: Suggestion
    stopped_early: bool
    stop_reason: str
    steps_run: int

    def to_rows(self) -> list[dict[str, float]]:
        """One dict per step, for tables and CSV: ``step, lr, loss, smoothed_loss``."""
        return [
            {"step": step, "lr": lr, "loss": loss, "smoothed_loss": smooth}
            for step, (lr, loss, smooth) in enumerate(zip(self.lrs, self.losses, self.smoothed))
        ]

    def as_metrics(self) -> list[tuple[int, dict[str, float]]]:
        """``(step, {"lr", "loss", "smoothed_loss"})`` pairs, ready for a metrics logger."""
        return [(row.pop("step"), row) for row in self.to_rows()]


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    # Re-iterate instead of itertools.cycle: cycle keeps every batch alive (GPU memory), and a
    # DataLoader reshuffles on each pass. A one-shot iterator cannot be re-read, so say so.
    while True:
        seen = 0
        for batch in batches:
            seen += 1
            yield batch
        if seen == 0:
            raise ConfigError("lr_find.batches", type(batches).__name__, "ran out of batches",
                              "a non-empty re-iterable (list, DataLoader), or one with >= steps batches")


def range_test(
    model: Any, optimizer: Any, batches: Iterable[Any], loss_fn: Callable[[Any, Any], Any], *,
    lr_min: float = 1e-7, lr_max: float = 10.0, steps: int = 100, mode: str = "exp",
    beta: float = 0.98, diverge_factor: float = 4.0,
) -> RangeTestResult:
    """Train for up to ``steps`` steps on ``lr_ramp(lr_min, lr_max, steps, mode)`` and record the loss.

    Each step: ``apply_lr``, forward, loss, backward, ``optimizer.step``, ``zero_grad`` (nanoGPT
    order). ``batches`` yields ``(inputs, targets)`` already on the model's device and is re-iterated
    if shorter than ``steps``. Stops at the first NaN/inf loss, or when the smoothed loss exceeds
    ``diverge_factor`` x its best so far (from step ``MIN_STEPS_BEFORE_STOP`` on; fastai uses 4).

    The test is a probe, not training: model and optimizer ``state_dict``s, parameter gradients and
    module train/eval flags are put back exactly afterwards, also when a step raises. A schedule-free
    optimizer (``train()``/``eval()`` methods, e.g. ``schedulefree.AdamWScheduleFree``) is switched to
    train mode for the test; its mode is restored with its state -- not by calling ``eval()``, which
    would interpolate the already restored weights a second time. RNG state is not restored, and a
    full copy of the weights and optimizer state is held in memory for the duration.
    """
    planned = lr_ramp(lr_min, lr_max, steps, mode)
    if not (isinstance(diverge_factor, (int, float)) and diverge_factor > 1):
        raise ConfigError("lr_find.diverge_factor", diverge_factor, "must be > 1", "e.g. 4.0 (fastai), 5.0")
    smooth_losses([], beta)  # validates beta before anything is touched

    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in model.parameters()]
    module_modes = [(m, m.training) for m in model.modules()]
    wrapper_mode = getattr(optimizer, "train_mode", None)  # ScheduleFreeWrapper keeps it off the state

    lrs, losses, smoothed = [], [], []
    stop_reason, avg, best = "completed", 0.0, math.inf
    try:
        model.train()
        if callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None)):
            optimizer.train()
        optimizer.zero_grad(set_to_none=True)
        batch_iter = _cycle(batches)
        for step, lr in enumerate(planned):
            inputs, targets = next(batch_iter)
            apply_lr(optimizer, lr)
            loss = loss_fn(model(inputs), targets)
            value = float(loss.item())  # CPU-GPU sync point, needed for the stop test anyway
            avg = beta * avg + (1.0 - beta) * value  # same arithmetic as smooth_losses
            lrs.append(lr)
            losses.append(value)
            smoothed.append(avg / (1.0 - beta ** (step + 1)))
            if not math.isfinite(value):
                stop_reason = "non_finite"
                break
            best = min(best, smoothed[-1])
            if step >= MIN_STEPS_BEFORE_STOP and _exceeds(smoothed[-1], best, diverge_factor):
                stop_reason = "diverged"
                break
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)  # also restores schedule-free's train_mode flag
        if isinstance(wrapper_mode, bool):
            optimizer.train_mode = wrapper_mode
        for param, grad in grads:
            param.grad = grad
        for module, training in module_modes:
            module.training = training

    return RangeTestResult(
        lrs=lrs, losses=losses, smoothed=smoothed,
        suggestion=suggest(lrs, smoothed, diverge_factor=diverge_factor),
        stopped_early=stop_reason != "completed", stop_reason=stop_reason, steps_run=len(lrs),
    )


def plot_range_test(result: RangeTestResult, path: str | Path) -> Path:
    """Draw smoothed (and faint raw) loss against LR on a log axis, mark the suggestions, save a PNG.

    Uses matplotlib's object API with the Agg canvas: no display, and no pyplot global state, so it
    is safe in worker threads. The y range tops out at the smoothed curve's maximum, so an exploding
    raw loss does not flatten the interesting part.
    """
    from sweeps.results.figures import new_figure, save_figure

    lrs = np.asarray(result.lrs, dtype=float)
    raw, smooth = (np.where(np.isfinite(v), v, np.nan) for v in (np.asarray(result.losses, dtype=float),
                                                                np.asarray(result.smoothed, dtype=float)))

    fig = new_figure(7, 4.5)
    ax = fig.add_subplot()
    ax.plot(lrs, raw, color="tab:gray", alpha=0.3, linewidth=1, label="loss (raw)")
    ax.plot(lrs, smooth, color="tab:blue", linewidth=2, label="loss (smoothed)")
    ax.set_xscale("log")
    if np.isfinite(smooth).any():  # top from the smoothed curve, bottom from both
        low, high = np.nanmin(np.append(raw, smooth)), np.nanmax(smooth)
        pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
        ax.set_ylim(low - pad, high + pad)

    s = result.suggestion
    edge_label = "edge (diverged)" if s.diverged else "edge (last LR, no divergence)"
    for lr, color, style, name in ((s.steepest, "tab:green", "-", "steepest"),
                                   (s.min_loss, "tab:orange", "-.", "min loss"),
                                   (s.edge, "tab:red", "--", edge_label)):
        if lr is not None:
            ax.axvline(lr, color=color, linestyle=style, linewidth=1.2, label=f"{name}: {lr:.3g}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test: {result.stop_reason} after {result.steps_run} steps")
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)




def search_bounds(suggestion: Suggestion, low_div: float = 10.0, high_div: float = 1.0, high_from: str = "min_loss") -> tuple[float, float]:
    """LR search bounds from a range test: ``[steepest / low_div, <high_from> / high_div]``.

    Default ``[steepest / 10, min_loss]``, chosen by measurement (benchmarks/efficiency.py replay and
    lr_finder_fidelity.py, both objectives): the best final LRs sat between steepest/10 and the
    minimum-loss LR, while the older ``edge / 2`` upper end reached LRs that collapse (tiny_transformer
    collapses from ~0.1, edge/2 ≈ 0.9). In the replay, the [steepest/10, min_loss] window reached the
    target in 11.8 epochs on tiny_transformer vs 20.8 for [steepest/10, edge/2] and 22.5 for random
    search over the default space; on digits 26.8 vs 35.0 vs 36.9. ``high_from=edge`` restores the
    wider rule. ``high_from=steepest`` with ``low_div=3, high_div=0.333`` centres the window on the
    steepest-descent LR, ``[steepest/3, 3·steepest]``: on mnist1d it reached the target in 113 epochs
    against 183 for the default window (27 of 40 seeds sooner), about even on digits and
    tiny_transformer (README, efficiency variants). When the curve gives no steepest point, or the
    rule crosses, the window is the two decades below the upper end.
    """
    if high_from not in HIGH_FROM:
        raise ConfigError("lr_find.high_from", high_from, "unknown reading", ", ".join(HIGH_FROM))
    readings = {"min_loss": suggestion.min_loss, "steepest": suggestion.steepest}
    top = readings.get(high_from) or suggestion.edge
    high = top / high_div
    low = suggestion.steepest / low_div if suggestion.steepest else high / 100
    if not low < high:
        low = high / 100
    return low, high
