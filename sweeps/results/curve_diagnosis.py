"""Training-curve diagnosis: name what a run's curves say about its learning rate, and the first fix.

The rules encode the "Reading curves" table of the LR notes (symptom → likely cause → first fix) and
its collapse trap: with Adam-family optimizers a far-too-high LR often never produces NaN but drives
the network to chance level (loss near ln(classes), accuracy near 1/classes), which looks like the
plateau of a far-too-low LR. The two are told apart by the loss *rising above its starting value*
(or falling and then returning to chance), which a low LR never does.

Pure functions of the recorded curves: no I/O, no torch, optuna or mlflow. The trainer's divergence
guard (``loss_exploded``) lives here too, so the guard and the diagnosis share one threshold.
Sweep-level reports (verdicts against LR) are in ``sweeps.results.sweep_diagnosis``.

Checks, in order; the first that fires names the verdict:

1. diverged    -- the trainer stopped at a NaN/inf, a loss is non-finite, a step loss exceeded
                  ``explode_factor`` × the first, the loss trend ended above its start, or the
                  chance-level collapse (trend rose above its start or fell and came back, ends
                  within ``chance_band`` of ln(classes), accuracy at most ``chance_acc_multiple``/classes).
2. overfitting -- validation loss rose ``overfit_margin`` above its minimum while the training loss
                  fell by the same share after that epoch.
3. oscillating -- the step-to-step spread around the trend is large both against the starting loss
                  and against the trend's drop; or the trend rose above its start and never recovered.
4. plateau / slow / healthy -- by the trend's relative drop from the first loss; ``slow`` only while
                  the trend still falls over the run's second half (``still_falling``), else plateau.

Every verdict read from a curve carries ``tail_drop`` (the trend's fall over the second half, over
the first loss) and, when the classes are known, ``near_chance`` (1: the run ends at ln(classes)
with accuracy at chance). One curve cannot tell a too-low LR at chance from a collapse that never
rose above its start; the sweep report can, by the trial's LR against the best trial's
(``sweeps.results.sweep_diagnosis.reread``), and it also decides "slow" against the best trial's value.

The trend is a rolling median (robust to a single spike, which therefore does not count as
oscillation); the spread is the median absolute deviation of the residuals, scaled to a std. The
first loss is the reference level (it is the loss at initialisation, before any LR acts), so a rise
or a fall below it must beat twice that spread as well as ``rise_margin``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from sweeps.errors import ConfigError

VERDICTS = ("diverged", "oscillating", "plateau", "slow", "overfitting", "healthy")
MAD_TO_STD = 1.4826  # median absolute deviation → standard deviation for Gaussian noise


@dataclass(frozen=True)
class Thresholds:
    """Cut-offs of ``diagnose``, measured on real curves of the two built-in objectives.

    Measured on ``digits_mlp`` and ``tiny_transformer`` (AdamW, batch 64, warmup + cosine, 6 epochs,
    LRs 1e-6 … 100); "progress" is 1 - (final trend / first loss).

    - ``explode_factor`` 10: healthy runs never exceed 1.01× the first loss; AdamW on digits at lr
      0.1 peaks at 2.1× and still finishes within 1 % of the best accuracy; tiny_transformer at lr 1 peaks at
      59× and collapses. fastai's range test stops at 4× the best smoothed loss; a trainer sees raw
      single-batch losses and the warmup spike, so it allows more. (Digits at lr 0.3–3 blows up
      22–2300× and is still rescued by the cosine anneal: those count as diverged.)
    - ``min_steps`` 8: fewer points cannot give a trend (3-point median) and separate head and tail.
    - ``trend_window_frac`` 0.05: rolling-median window as a share of the run (odd, 3–101 steps),
      equal to the default warmup share: 7–9 steps here, a third of an epoch, which averages the
      batch noise yet keeps a warmup-time rise visible.
    - ``rise_margin`` 0.05: the trend's rise above the first loss that counts as "rose above its
      start": low-LR runs rise at most 0.0075 (noise of one batch); tiny_transformer at lr 0.1 rises
      0.075, at 0.3 0.41. Also the drop below zero progress that counts as "ended above its start".
      Either must also beat twice the batch noise (the first loss is a single batch).
    - ``chance_band`` 0.1: collapsed runs end at 0.92–0.98 × ln(classes) (tiny_transformer 0.1–1,
      digits 100: 1.05); good runs end below 0.5 ×.
    - ``chance_acc_multiple`` 3: collapsed tiny_transformer runs predict the unigram distribution,
      accuracy 0.10–0.15 = 1.6–2.4 × chance (1/16), while even a bigram model reaches 5 ×.
    - ``plateau_progress`` 0.03: too-low runs at lr 1e-6/1e-5 progress 0.004–0.014 (digits) and
      0.009 (tiny); tiny at 1e-5 progresses 0.053 (slow). The first loss is one batch: ~1 % noise.
    - ``slow_progress`` 0.25: too-low runs progress 0.05–0.20 (tiny 1e-5/1e-4, digits 1e-4, SGD
      1e-3); good runs 0.54–1.0. tiny_transformer at lr 3e-2 (3 × too high) progresses 0.29 and is
      left out of "slow", whose advice would point the wrong way; with a constant LR over 4 epochs
      it progresses 0.19 and does read as slow -- one curve cannot tell that case from a low LR,
      the sweep report (``sweeps.results.sweep_diagnosis``) can.
    - ``oscillation_noise`` 0.1 and ``oscillation_to_drop`` 0.15: spread over the first loss and
      over the trend's drop. Oscillating runs (constant LR: digits AdamW 0.1, loss bouncing between
      0 and 2; digits SGD 0.5): 0.30 / 0.53 and 0.19 / 0.27. Every other run stays below one of the
      two: healthy ≤ 0.03 of the drop (digits AdamW lr 0.1 under cosine: 0.11 of the start, 0.11 of
      the drop), slow runs 0.04–0.07 of the drop; plateaus have a large ratio to their tiny drop but
      a spread ≤ 0.01 of the start -- hence both conditions.
    - ``overfit_margin`` 0.1: digits on 100 examples (no weight decay) rises 33 % above its val-loss
      minimum, tiny_transformer on 64 sequences 20 %, tiny on 100 sequences 11–13 %; healthy runs'
      validation loss does not rise (digits measured with zero-variance pixels left unscaled).
    - ``still_falling`` 0.01: the trend's fall over the second half of the run, over the first loss,
      under warmup + cosine, 9 epochs: too-low LRs 0.013 (tiny 1e-5), 0.039 (tiny 1e-4), 0.048
      (digits 1.8e-4); a finished good run 0.0018 (digits 1e-2). A "slow" run must still be falling.
    """

    explode_factor: float = 10.0
    min_steps: int = 8
    trend_window_frac: float = 0.05
    rise_margin: float = 0.05
    chance_band: float = 0.1
    chance_acc_multiple: float = 3.0
    plateau_progress: float = 0.03
    slow_progress: float = 0.25
    oscillation_noise: float = 0.1
    oscillation_to_drop: float = 0.15
    overfit_margin: float = 0.1
    still_falling: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 3):
                raise ConfigError(f"diagnosis.{f.name}", value, "must be an integer >= 3")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ConfigError(f"diagnosis.{f.name}", value, "must be a finite number > 0")
        if self.plateau_progress >= self.slow_progress:
            raise ConfigError("diagnosis.plateau_progress", self.plateau_progress, f"must be < diagnosis.slow_progress={self.slow_progress}")
        if self.explode_factor <= 1:
            raise ConfigError("diagnosis.explode_factor", self.explode_factor, "must be > 1 (a multiple of the first loss)")

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> Thresholds:
        """Defaults overridden by ``section`` (the ``diagnosis`` config group); unknown keys are errors."""
        names = [f.name for f in fields(cls)]
        for key, value in section.items():
            if key not in names:
                raise ConfigError(f"diagnosis.{key}", value, "unknown diagnosis threshold", ", ".join(names))
        values = dict(section.items())
        if values.get("explode_factor", 0) is None:  # ${train.diverge_factor} with the guard off: the curve still reads at 10x
            del values["explode_factor"]
        return cls(**values)


@dataclass(frozen=True)
class Curves:
    """What one run recorded: per-step train loss and LR, per-epoch metrics, where it stopped.

    ``epochs`` are the reporter's dicts (``train_loss``, ``val_loss``, ``val_acc``, ``lr`` when
    reported). Without step losses the epochs' ``train_loss`` stands in. ``n_classes`` enables the
    chance-level checks (ln(n_classes) is the loss of a uniform prediction).
    """

    step_losses: Sequence[float] = ()
    step_lrs: Sequence[float] = ()
    epochs: Sequence[Mapping[str, float]] = ()
    diverged_at_step: int | None = None
    n_classes: int | None = None


@dataclass(frozen=True)
class Diagnosis:
    """A verdict (one of ``VERDICTS``), the numbers that decided it, and the first fix to try."""

    verdict: str
    evidence: dict[str, float] = field(default_factory=dict)
    advice: str = "none"

    def evidence_text(self, limit: int = 499) -> str:
        """``k=v`` pairs on one line, short enough for an MLflow tag."""
        text = " ".join(f"{key}={value:.4g}" for key, value in self.evidence.items())
        return text if len(text) <= limit else text[: limit - 3] + "..."


def loss_exploded(loss: float, first_loss: float, factor: float = Thresholds.explode_factor) -> bool:
    """True for a NaN/inf ``loss`` or one above ``factor`` × ``first_loss`` (when that is positive)."""
    if not math.isfinite(loss):
        return True
    return math.isfinite(first_loss) and first_loss > 0 and loss > factor * first_loss


def diagnose(curves: Curves, thresholds: Thresholds = Thresholds()) -> Diagnosis:
    """Name what ``curves`` say (see the module docstring for the rules, in order)."""
    t = thresholds
    losses = [float(x) for x in curves.step_losses] or [float(e["train_loss"]) for e in curves.epochs if "train_loss" in e]
    peak_lr = _peak_lr(curves)
    unit = "epochs" if not curves.step_losses and curves.epochs else "steps"
    base = {unit: float(len(losses)), **({"peak_lr": peak_lr} if peak_lr else {})}

    def verdict(name: str, **evidence: float) -> Diagnosis:
        return Diagnosis(name, {**base, **{k: float(v) for k, v in evidence.items()}}, _advice(name, peak_lr))

    if curves.diverged_at_step is not None:
        return verdict("diverged", diverged_at_step=curves.diverged_at_step)
    step = next((i for i, x in enumerate(losses) if loss_exploded(x, losses[0], t.explode_factor)), None)
    if step is not None:
        if not math.isfinite(losses[step]):
            return verdict("diverged", diverged_at_step=step)
        return verdict("diverged", explode_step=step, peak_to_start=max(x for x in losses if math.isfinite(x)) / losses[0])
    if len(losses) < t.min_steps:
        return Diagnosis("healthy", base, f"too few points ({len(losses)} < {t.min_steps}) to read a curve; nothing to fix from it")

    shape = _shape(losses, t)
    if -shape["progress"] >= shape["rise_needed"]:  # the loss ended above where it started
        return verdict("diverged", start_loss=shape["start_loss"], end_loss=shape["end_loss"], progress=shape["progress"])
    if (collapse := _chance_collapse(curves, shape, t)) is not None:
        return verdict("diverged", **collapse)
    if (overfit := _overfitting(curves.epochs, t)) is not None:
        return verdict("overfitting", **overfit)
    noisy = shape["noise_to_start"] >= t.oscillation_noise and shape["noise_to_drop"] >= t.oscillation_to_drop
    if noisy or (shape["rise"] >= shape["rise_needed"] and shape["progress"] < t.slow_progress):
        return verdict("oscillating", **{k: shape[k] for k in ("noise_to_start", "noise_to_drop", "rise", "progress")})
    summary = {k: shape[k] for k in ("progress", "start_loss", "end_loss", "noise_to_start", "tail_drop")}
    if shape["progress"] < t.plateau_progress or (shape["progress"] < t.slow_progress and shape["tail_drop"] < t.still_falling):
        found = verdict("plateau", **summary)
    else:
        found = verdict("slow" if shape["progress"] < t.slow_progress else "healthy", **summary)
    if _near_chance(curves, shape, t):  # a too-low LR or a collapse that never rose: the sweep decides
        advice = found.advice if found.verdict == "healthy" else f"{found.advice}; but it ends at chance level: above the sweep's best LR that is a collapse (lower the LR ~10x)"
        found = Diagnosis(found.verdict, {**found.evidence, "near_chance": 1.0}, advice)
    return found


def _shape(losses: list[float], t: Thresholds) -> dict[str, float]:
    """Trend (rolling median), its drop and rise relative to the first loss, and the spread around it."""
    values = np.asarray(losses, dtype=float)
    n = len(values)
    window = min(101, max(3, round(n * t.trend_window_frac))) | 1  # odd, so the median is centred
    window = min(window, n if n % 2 else n - 1)
    trend = np.median(sliding_window_view(values, window), axis=1)
    residuals = values[window // 2 : n - window // 2] - trend
    noise = MAD_TO_STD * float(np.median(np.abs(residuals - np.median(residuals))))
    start, end = float(values[0]), float(trend[-1])
    scale = start if start > 0 else (float(np.max(np.abs(values))) or 1.0)  # relative measures need a positive start
    drop = start - end
    middle = float(trend[len(trend) // 2])
    return {
        "start_loss": start,
        "end_loss": end,
        "min_loss": float(trend.min()),
        "progress": drop / scale,
        "rise": float(trend.max()) / scale - 1.0,
        "noise_to_start": noise / scale,
        "noise_to_drop": noise / drop if drop > 0 else math.inf,
        "tail_drop": (middle - end) / scale,  # still falling over the second half?
        # The first loss is one batch: a rise (or a fall below zero progress) counts once it beats
        # both the margin and two standard deviations of the batch noise.
        "rise_needed": max(t.rise_margin, 2 * noise / scale),
    }


def _chance_collapse(curves: Curves, shape: dict[str, float], t: Thresholds) -> dict[str, float] | None:
    """The Adam-family high-LR trap: the loss sits at ln(classes) after rising or falling back to it."""
    if not curves.n_classes or curves.n_classes < 2:
        return None
    chance_loss = math.log(curves.n_classes)
    end_to_chance, min_to_chance = shape["end_loss"] / chance_loss, shape["min_loss"] / chance_loss
    if abs(end_to_chance - 1.0) > t.chance_band:
        return None
    # A low LR starts at chance and never leaves it; a collapse first rises or first learns.
    if shape["rise"] < shape["rise_needed"] and min_to_chance > 1.0 - 2 * t.chance_band:
        return None
    evidence = {"end_to_chance": end_to_chance, "min_to_chance": min_to_chance, "rise": shape["rise"]}
    accuracy = next((e["val_acc"] for e in reversed(curves.epochs) if "val_acc" in e), None)
    if accuracy is not None:
        if accuracy > t.chance_acc_multiple / curves.n_classes:
            return None
        evidence |= {"val_acc": accuracy, "chance_acc": 1.0 / curves.n_classes}
    return evidence


def _near_chance(curves: Curves, shape: dict[str, float], t: Thresholds) -> bool:
    """Ends at ln(classes) (within ``chance_band``) with accuracy, when known, at chance."""
    if not curves.n_classes or curves.n_classes < 2:
        return False
    if abs(shape["end_loss"] / math.log(curves.n_classes) - 1.0) > t.chance_band:
        return False
    accuracy = next((e["val_acc"] for e in reversed(curves.epochs) if "val_acc" in e), None)
    return accuracy is None or accuracy <= t.chance_acc_multiple / curves.n_classes


def _overfitting(epochs: Sequence[Mapping[str, float]], t: Thresholds) -> dict[str, float] | None:
    """Validation loss up by ``overfit_margin`` from its minimum while train loss fell by as much."""
    rows = [(e["val_loss"], e["train_loss"]) for e in epochs if "val_loss" in e and "train_loss" in e]
    if len(rows) < 3 or not all(math.isfinite(v) and math.isfinite(tr) for v, tr in rows):
        return None
    best = min(range(len(rows)), key=lambda i: rows[i][0])
    (val_min, train_at_min), (val_end, train_end) = rows[best], rows[-1]
    if best == len(rows) - 1 or val_min <= 0 or train_at_min <= 0:
        return None
    val_rise, train_fall = val_end / val_min - 1.0, 1.0 - train_end / train_at_min
    if val_rise < t.overfit_margin or train_fall < t.overfit_margin:
        return None
    return {"val_loss_min": val_min, "val_loss_min_epoch": best + 1, "val_loss_final": val_end, "val_rise": val_rise, "train_fall": train_fall}


def _peak_lr(curves: Curves) -> float | None:
    lrs = [float(x) for x in curves.step_lrs] or [float(e["lr"]) for e in curves.epochs if "lr" in e]
    finite = [x for x in lrs if math.isfinite(x)]
    return max(finite) if finite else None


def _advice(verdict: str, peak_lr: float | None) -> str:
    """The first fix from the LR notes' table, with the LR it implies when the run's LR is known."""

    def towards(factor: float) -> str:
        return f" (peak lr {peak_lr:.3g} -> ~{peak_lr * factor:.2g})" if peak_lr else ""

    return {
        "diverged": f"lower the LR ~10x{towards(0.1)}; add warmup (train.warmup_frac) or gradient clipping (train.grad_clip=1.0)",
        "oscillating": f"lower the LR 2-5x{towards(1 / 3)} or the momentum (train.momentum, train.betas); clip gradients (train.grad_clip=1.0)",
        "plateau": f"raise the LR 3-10x{towards(10)}; if it stays flat, check the model (dead units, the loss) "
        "and that the schedule does not decay the LR to nothing",
        "slow": f"raise the LR 3-10x{towards(3)}, or check that the schedule does not decay it too early",
        "overfitting": "regularise: raise train.weight_decay (or add dropout or data), and stop earlier (fewer train.epochs)",
        "healthy": "none",
    }[verdict]
