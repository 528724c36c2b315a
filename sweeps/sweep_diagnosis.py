"""Sweep-level diagnosis: per-trial verdicts against the LR, and what to change in ``search.lr``.

Input is one row per trial, ``(number, lr, final value or None, verdict)`` with the verdict from
``sweeps.diagnosis.diagnose``. The report says where training breaks (the divergence boundary),
which LRs came close to the best (the stable window), and turns both into edits of the search
range. ``diagnose_sweep`` and ``SweepDiagnosis.to_markdown`` are pure; ``plot_sweep_diagnosis``
only draws what they computed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from sweeps.diagnosis import VERDICTS
from sweeps.errors import ConfigError

EDGE_SHARE = 0.1  # the best trial within this share of the log-LR range from an end "sits at the edge"
WASTED_FACTOR = 3.0  # a stretch of the range below the window is worth cutting from ~half a decade up
VERDICT_COLORS = {"diverged": "tab:red", "oscillating": "tab:orange", "plateau": "tab:gray",
                  "slow": "tab:olive", "overfitting": "tab:purple", "healthy": "tab:green"}


class TrialRow(NamedTuple):
    number: int
    lr: float
    value: float | None  # the final metric; None when the trial has none (diverged, failed)
    verdict: str


@dataclass
class SweepDiagnosis:
    """Counts and LR ranges per verdict, the divergence boundary, the stable window, what to change."""

    direction: str
    n_trials: int
    counts: dict[str, int]
    lr_ranges: dict[str, tuple[float, float]]
    searched: tuple[float, float] | None
    best: TrialRow | None
    divergence_boundary: float | None
    stable_window: tuple[float, float] | None
    stable_tolerance: float
    recommendations: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = [f"## LR sweep diagnosis ({self.n_trials} trials, {self.direction})", "",
                 "| verdict | trials | lr min | lr max |", "|---|---:|---:|---:|"]
        for verdict, count in self.counts.items():
            if count:
                low, high = self.lr_ranges[verdict]
                lines.append(f"| {verdict} | {count} | {_fmt(low)} | {_fmt(high)} |")
        lines.append("")
        if self.best is not None:
            lines.append(f"- best: trial #{self.best.number}, lr {_fmt(self.best.lr)}, value {self.best.value:.4g}")
        boundary = f"lr ≈ {_fmt(self.divergence_boundary)}" if self.divergence_boundary else "none found"
        lines.append(f"- divergence boundary: {boundary}")
        window = f"lr {_fmt(self.stable_window[0])} – {_fmt(self.stable_window[1])}" if self.stable_window else "none"
        lines.append(f"- stable window (final value within {self.stable_tolerance:.0%} of the best): {window}")
        lines += ["", "### Recommendations", *(f"- {r}" for r in self.recommendations)]
        return "\n".join(lines) + "\n"


def diagnose_sweep(
    rows: Iterable[Sequence], direction: str, stable_tolerance: float = 0.02, lr_bounds: tuple[float, float] | None = None
) -> SweepDiagnosis:
    """Summarise ``rows`` = ``(number, lr, value or None, verdict)``; ``lr_bounds`` = search.lr's range
    (default: the range the trials covered)."""
    if direction not in ("maximize", "minimize"):
        raise ConfigError("sweep.direction", direction, "unknown value", "maximize, minimize")
    trials = [TrialRow(int(n), float(lr), None if v is None or not math.isfinite(v) else float(v), str(verdict)) for n, lr, v, verdict in rows]
    for trial in trials:
        if not (math.isfinite(trial.lr) and trial.lr > 0):
            raise ValueError(f"trial #{trial.number}: lr={trial.lr!r} must be a finite number > 0")
    verdicts = [*VERDICTS, *sorted({t.verdict for t in trials} - set(VERDICTS))]
    counts = {v: sum(t.verdict == v for t in trials) for v in verdicts}
    lr_ranges = {v: (min(lrs), max(lrs)) for v in verdicts if (lrs := [t.lr for t in trials if t.verdict == v])}
    searched = lr_bounds or ((min(t.lr for t in trials), max(t.lr for t in trials)) if trials else None)
    finished = [t for t in trials if t.value is not None]
    best = (max if direction == "maximize" else min)(finished, key=lambda t: t.value) if finished else None
    window = None
    if best is not None:
        slack = stable_tolerance * abs(best.value)
        close = [t.lr for t in finished if (t.value >= best.value - slack if direction == "maximize" else t.value <= best.value + slack)]
        window = (min(close), max(close))
    report = SweepDiagnosis(direction, len(trials), counts, lr_ranges, searched, best, divergence_boundary(trials), window, stable_tolerance)
    report.recommendations = _recommend(trials, report)
    return report


def divergence_boundary(trials: Sequence[TrialRow]) -> float | None:
    """The LR cut that best separates diverged trials (above) from the rest (below), or None.

    Candidates are geometric means of neighbouring tried LRs with a diverged majority above and a
    non-diverged trial below; the one
    misplacing fewest trials wins, ties going to the highest. With a clean split this is the
    geometric mean of the highest non-diverged LR and the lowest diverged LR above it.
    """
    lrs = sorted({t.lr for t in trials})
    best: tuple[int, float] | None = None
    for low, high in zip(lrs, lrs[1:]):
        cut = math.sqrt(low * high)
        above = [t for t in trials if t.lr > cut]
        diverged_above = sum(t.verdict == "diverged" for t in above)
        if diverged_above * 2 <= len(above) or all(t.verdict == "diverged" for t in trials if t.lr < cut):
            continue  # a boundary needs mostly diverged trials above it and a trial that trained below it
        misplaced = len(above) - diverged_above + sum(t.verdict == "diverged" and t.lr < cut for t in trials)
        if best is None or misplaced <= best[0]:
            best = (misplaced, cut)
    return best[1] if best else None


def _recommend(trials: list[TrialRow], report: SweepDiagnosis) -> list[str]:
    """Plain-language edits of the search range (``search.lr.low`` / ``search.lr.high``)."""
    if not trials:
        return ["no trials to diagnose"]
    if all(t.verdict == "diverged" for t in trials):
        low, high = report.lr_ranges["diverged"]
        return [f"all {len(trials)} trials diverged (lr {_fmt(low)} – {_fmt(high)}): lower search.lr.low and search.lr.high ~10x"]
    out = []
    boundary, window, best, (low, high) = report.divergence_boundary, report.stable_window, report.best, report.searched
    if boundary is not None:
        above = [t for t in trials if t.lr > boundary]
        diverged = sum(t.verdict == "diverged" for t in above)
        if diverged == len(above):
            last_good = max(t.lr for t in trials if t.lr < boundary)
            out.append(f"all {diverged} trials with lr > {_fmt(last_good)} diverged: lower search.lr.high to {_fmt(last_good)}")
        else:
            out.append(f"{diverged} of {len(above)} trials with lr > {_fmt(boundary)} diverged: lower search.lr.high to about {_fmt(boundary)}")
    if window is not None:
        tol = f"{report.stable_tolerance:.0%}"
        below = [t for t in trials if t.lr < window[0]]
        if len(below) >= 2 and window[0] >= WASTED_FACTOR * low:
            out.append(f"no trial with lr < {_fmt(window[0])} came within {tol} of the best ({len(below)} tried): raise search.lr.low to {_fmt(window[0])}")
        above = [t for t in trials if t.lr > window[1]]
        if boundary is None and len(above) >= 2 and high >= WASTED_FACTOR * window[1]:
            out.append(f"no trial with lr > {_fmt(window[1])} came within {tol} of the best ({len(above)} tried): lower search.lr.high to {_fmt(window[1])}")
    if best is not None and high > low:
        position = math.log(best.lr / low) / math.log(high / low)
        if position >= 1 - EDGE_SHARE and not any(t.verdict == "diverged" and t.lr > best.lr for t in trials):
            out.append(f"the best trial (#{best.number}, lr {_fmt(best.lr)}) sits at the top edge of the searched range: raise search.lr.high")
        elif position <= EDGE_SHARE:
            out.append(f"the best trial (#{best.number}, lr {_fmt(best.lr)}) sits at the bottom edge of the searched range: lower search.lr.low")
    if overfit := report.counts.get("overfitting"):
        out.append(f"{overfit} trials overfit (validation loss rose while training loss fell): search train.weight_decay or lower train.epochs")
    return out or ["no change needed: the best trial sits inside the searched range and no trial diverged"]


def plot_sweep_diagnosis(rows: Iterable[Sequence], report: SweepDiagnosis, path: str | Path) -> Path:
    """Final value against LR (log x), coloured by verdict; trials without a value as markers along
    the bottom; the stable window shaded and the divergence boundary as a vertical line. A PNG.

    matplotlib's object API on the Agg canvas: no display and no pyplot global state.
    """
    from sweeps.figures import new_figure, save_figure

    trials = [TrialRow(int(n), float(lr), v, str(verdict)) for n, lr, v, verdict in rows]
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    for verdict in report.counts:
        color = VERDICT_COLORS.get(verdict, "black")
        points = [t for t in trials if t.verdict == verdict]
        valued = [t for t in points if t.value is not None and math.isfinite(t.value)]
        if valued:
            ax.scatter([t.lr for t in valued], [t.value for t in valued], color=color, label=f"{verdict} ({len(points)})", zorder=3)
        if missing := [t.lr for t in points if t.value is None or not math.isfinite(t.value)]:
            # x in data units, y in axes units: pinned to the bottom whatever the value range
            ax.scatter(missing, [0.03] * len(missing), transform=ax.get_xaxis_transform(), color=color, marker="x",
                       label=f"{verdict}, no value ({len(missing)})", zorder=3)
    if report.stable_window:
        low, high = report.stable_window
        ax.axvspan(low / 1.15, high * 1.15, color="tab:green", alpha=0.12, label=f"within {report.stable_tolerance:.0%} of best")
    if report.divergence_boundary:
        ax.axvline(report.divergence_boundary, color="tab:red", linestyle="--", label=f"divergence ≈ {_fmt(report.divergence_boundary)}")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(f"final value ({report.direction})")
    ax.set_title(f"LR sweep: {report.n_trials} trials by verdict")
    ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def _fmt(lr: float) -> str:
    """``0.3``, ``0.003``, ``1e-4``, ``3.2e-5``: two significant digits, short exponents."""
    text = f"{lr:.2g}" if lr >= 1e-3 else f"{lr:.1e}".replace(".0e", "e")
    return text.replace("e-0", "e-").replace("e+0", "e+")
