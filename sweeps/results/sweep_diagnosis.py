"""Sweep-level diagnosis: per-trial verdicts against the LR, and what to change in ``search.lr``.

Input is one row per trial, ``(number, lr, final value or None, verdict)`` with the verdict from
``sweeps.results.curve_diagnosis.diagnose``. The report says where training breaks (the divergence boundary),
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

from sweeps.errors import ConfigError
from sweeps.results.curve_diagnosis import VERDICTS

EDGE_SHARE = 0.1  # the best trial within this share of the log-LR range from an end "sits at the edge"
WASTED_FACTOR = 3.0  # a stretch of the range below the window is worth cutting from ~half a decade up;
                     # also the narrowest range the advice ever proposes (never an empty one)
MIN_TRIALS = 2  # a claim about a stretch of LRs needs at least this many trials there (one may be noise)
FAR_BELOW = 0.1  # a final value this share worse than the best is "far below" it (slow, not healthy)
VERDICT_COLORS = {"diverged": "tab:red", "oscillating": "tab:orange", "plateau": "tab:gray",
                  "slow": "tab:olive", "overfitting": "tab:purple", "healthy": "tab:green"}


class TrialRow(NamedTuple):
    number: int
    lr: float
    value: float | None  # the final metric; None when the trial has none (diverged, failed)
    verdict: str
    near_chance: bool = False  # its curve ended at chance level (sweeps.results.curve_diagnosis evidence)
    still_falling: bool | None = None  # its loss still fell over the second half; None: unknown


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
    rereads: list[str] = field(default_factory=list)  # verdicts changed against the sweep, and why
    reread_verdicts: dict[int, str] = field(default_factory=dict)  # trial number -> verdict against the sweep
    reread_notes: dict[int, str] = field(default_factory=dict)  # trial number -> its line of ``rereads``

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
        if self.rereads:
            lines += ["", "### Verdicts read against the sweep", *(f"- {r}" for r in self.rereads)]
        lines += ["", "### Recommendations", *(f"- {r}" for r in self.recommendations)]
        return "\n".join(lines) + "\n"


def diagnose_sweep(
    rows: Iterable[Sequence], direction: str, stable_tolerance: float = 0.02, lr_bounds: tuple[float, float] | None = None
) -> SweepDiagnosis:
    """Summarise ``rows`` = ``(number, lr, value or None, verdict)``; ``lr_bounds`` = search.lr's range
    (default: the range the trials covered)."""
    if direction not in ("maximize", "minimize"):
        raise ConfigError("sweep.direction", direction, "unknown value", "maximize, minimize")
    trials = [TrialRow(int(n), float(lr), None if v is None or not math.isfinite(v) else float(v), str(verdict), *extra) for n, lr, v, verdict, *extra in rows]
    for trial in trials:
        if not (math.isfinite(trial.lr) and trial.lr > 0):
            raise ValueError(f"trial #{trial.number}: lr={trial.lr!r} must be a finite number > 0")
    finished = [t for t in trials if t.value is not None]
    best = (max if direction == "maximize" else min)(finished, key=lambda t: t.value) if finished else None
    before = {t.number: t.verdict for t in trials}
    trials, rereads = reread(trials, best, direction)
    verdicts = [*VERDICTS, *sorted({t.verdict for t in trials} - set(VERDICTS))]
    counts = {v: sum(t.verdict == v for t in trials) for v in verdicts}
    lr_ranges = {v: (min(lrs), max(lrs)) for v in verdicts if (lrs := [t.lr for t in trials if t.verdict == v])}
    searched = lr_bounds or ((min(t.lr for t in trials), max(t.lr for t in trials)) if trials else None)
    finished = [t for t in trials if t.value is not None]
    window = None
    if best is not None:
        slack = stable_tolerance * abs(best.value)
        close = [t.lr for t in finished if (t.value >= best.value - slack if direction == "maximize" else t.value <= best.value + slack)]
        window = (min(close), max(close))
    report = SweepDiagnosis(direction, len(trials), counts, lr_ranges, searched, best, divergence_boundary(trials), window, stable_tolerance)
    report.recommendations = _recommend(trials, report)
    report.rereads = rereads
    report.reread_verdicts = {t.number: t.verdict for t in trials if t.verdict != before[t.number]}
    report.reread_notes = dict(zip(report.reread_verdicts, rereads))  # both in trial order
    return report


def reread(trials: Sequence[TrialRow], best: TrialRow | None, direction: str) -> tuple[list[TrialRow], list[str]]:
    """Decide what one curve cannot, against the sweep's best trial; returns the rows and why each changed.

    - At chance level with an LR above the best trial's: collapsed (diverged), not a too-low LR
      (the Adam-family trap of the LR notes; at chance below the best's LR it stays plateau/slow).
    - ``slow`` needs a final value far below the best (``FAR_BELOW``) and a loss still falling;
      close to the best it is healthy, no longer falling it is a plateau.
    - ``healthy`` far below the best, at a lower LR, with its loss still falling: slow.
    """
    if best is None:
        return list(trials), []
    out, notes = [], []
    for t in trials:
        new, why = t.verdict, ""
        far = t.value is not None and _worse_by(t.value, best.value, direction) > FAR_BELOW
        if t.near_chance and t.verdict in ("plateau", "slow", "oscillating", "healthy") and t.lr > best.lr:
            new, why = "diverged", f"ends at chance level at lr {_fmt(t.lr)}, above the best trial's {_fmt(best.lr)}: a collapse, not a too-low LR"
        elif t.verdict == "slow" and t.value is not None and not far:
            new, why = "healthy", f"final {t.value:.4g} within {FAR_BELOW:.0%} of the best {best.value:.4g}"
        elif t.verdict == "slow" and t.still_falling is False:
            new, why = "plateau", "its loss no longer falls"
        elif t.verdict == "healthy" and far and t.still_falling and t.lr < best.lr:
            new, why = "slow", f"final {t.value:.4g} far below the best {best.value:.4g} (lr {_fmt(best.lr)}) with its loss still falling"
        if new != t.verdict:
            notes.append(f"trial #{t.number} (lr {_fmt(t.lr)}): {t.verdict} → {new}: {why}")
            t = t._replace(verdict=new)
        out.append(t)
    return out, notes


def _worse_by(value: float, best: float, direction: str) -> float:
    """How much worse ``value`` is than ``best``, as a share of ``|best|``."""
    gap = best - value if direction == "maximize" else value - best
    return gap / abs(best) if best else gap


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
    """One consistent edit of ``search.lr`` (both bounds in one line, never an empty range), with
    the evidence and its trial counts; claims about a stretch of LRs need ``MIN_TRIALS`` there."""
    if not trials:
        return ["no trials to diagnose"]
    if all(t.verdict == "diverged" for t in trials):
        low, high = report.lr_ranges["diverged"]
        return [f"all {len(trials)} trials diverged (lr {_fmt(low)} – {_fmt(high)}): lower search.lr.low and search.lr.high ~10x"]
    boundary, window, best, (low, high) = report.divergence_boundary, report.stable_window, report.best, report.searched
    new_low, new_high, capped = low, high, False
    reasons: list[str] = []
    notes: list[str] = []
    if boundary is not None:
        above = [t for t in trials if t.lr > boundary]
        diverged = sum(t.verdict == "diverged" for t in above)
        trained = [t.lr for t in trials if t.lr < boundary and t.verdict != "diverged"]
        if len(above) < MIN_TRIALS:
            notes.append(f"{diverged} of {len(above)} trial with lr > {_fmt(boundary)} diverged: too few to move search.lr.high "
                         f"(needs {MIN_TRIALS}); run more trials near the boundary")
        elif diverged == len(above) and trained:
            new_high, capped = min(new_high, max(trained)), True
            reasons.append(f"all {diverged} trials above the divergence boundary (lr ≈ {_fmt(boundary)}) diverged (the highest LR that trained: {_fmt(max(trained))})")
        else:
            new_high, capped = min(new_high, boundary), True
            reasons.append(f"{diverged} of {len(above)} trials with lr > {_fmt(boundary)} diverged")
    if window is not None:
        tol = f"{report.stable_tolerance:.0%}"
        below = [t for t in trials if t.lr < window[0]]
        if len(below) >= MIN_TRIALS and window[0] >= WASTED_FACTOR * low:
            new_low = window[0]
            reasons.append(f"none of the {len(below)} trials with lr < {_fmt(window[0])} came within {tol} of the best")
        above = [t for t in trials if t.lr > window[1]]
        if boundary is None and len(above) >= MIN_TRIALS and high >= WASTED_FACTOR * window[1]:
            new_high, capped = window[1], True
            reasons.append(f"none of the {len(above)} trials with lr > {_fmt(window[1])} came within {tol} of the best")
    if best is not None and high > low:
        position = math.log(best.lr / low) / math.log(high / low)
        if position >= 1 - EDGE_SHARE and not any(t.verdict == "diverged" and t.lr > best.lr for t in trials):
            new_high = high * WASTED_FACTOR
            reasons.append(f"the best trial (#{best.number}, lr {_fmt(best.lr)}) sits at the top edge of the searched range")
        elif position <= EDGE_SHARE:
            new_low = min(new_low, low / WASTED_FACTOR)
            reasons.append(f"the best trial (#{best.number}, lr {_fmt(best.lr)}) sits at the bottom edge of the searched range")
    if new_high < WASTED_FACTOR * new_low:  # never an empty or a needle range: keep half a decade
        if capped:  # the upper bound is evidence of divergence: widen downwards only
            new_low = new_high / WASTED_FACTOR
        else:
            centre = math.sqrt(new_low * new_high)
            new_low, new_high = centre / math.sqrt(WASTED_FACTOR), centre * math.sqrt(WASTED_FACTOR)
    out = []
    if reasons and (new_low, new_high) != (low, high):
        changes = [f"search.lr.{name} {_fmt(old)} → {_fmt(new)}" for name, old, new in (("low", low, new_low), ("high", high, new_high)) if _fmt(old) != _fmt(new)]
        out.append(f"change {' and '.join(changes)} (search.lr='tag(log, interval({_fmt(new_low)}, {_fmt(new_high)}))'): {'; '.join(reasons)}")
    out += notes
    if overfit := report.counts.get("overfitting"):
        out.append(f"{overfit} trials overfit (validation loss rose while training loss fell): search train.weight_decay or lower train.epochs")
    return out or ["no change needed: the best trial sits inside the searched range and no trial diverged"]


def plot_sweep_diagnosis(rows: Iterable[Sequence], report: SweepDiagnosis, path: str | Path) -> Path:
    """Final value against LR (log x), coloured by verdict; trials without a value as markers along
    the bottom; the stable window shaded and the divergence boundary as a vertical line. A PNG.

    matplotlib's object API on the Agg canvas: no display and no pyplot global state.
    """
    from sweeps.results.figures import new_figure, save_figure

    trials, _ = reread([TrialRow(int(n), float(lr), v, str(verdict), *extra) for n, lr, v, verdict, *extra in rows], report.best, report.direction)
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
