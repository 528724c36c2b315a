"""Figures of an Optuna study, written as files for the MLflow UI.

Five figures, each a PNG drawn with matplotlib's object API on the Agg canvas (no pyplot global state,
so safe in worker threads) and, when plotly is installed, an interactive HTML twin:

    optimization_history   value per completed trial and the best so far
    param_importances      fANOVA importances, ``optuna.importance.get_param_importances``
    parallel_coordinates   params and value, one line per completed trial; log axes for log params
    intermediate_values    learning curves by epoch coloured by outcome: the pruning picture
    lr_vs_metric           final value against the LR on a log axis; pruned trials at their last
                           reported value, diverged trials marked along the bottom

A figure with nothing to show (no completed trial, one parameter, ...) is skipped and its reason kept
in ``PlotSet.skipped``: plotting a running study never raises over its data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import optuna
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.distributions import CategoricalDistribution
from optuna.importance import FanovaImportanceEvaluator
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweeps.results.figures import new_figure, save_figure
from sweeps.run.outcome import Outcome, outcome_of

if TYPE_CHECKING:
    import plotly.graph_objects

FIGURES = ("optimization_history", "param_importances", "parallel_coordinates", "intermediate_values", "lr_vs_metric")


class NothingToPlot(Exception):
    """The study holds nothing this figure can show; the message says why."""


@dataclass
class PlotSet:
    files: dict[str, Path] = field(default_factory=dict)  # figure name -> PNG
    html: dict[str, Path] = field(default_factory=dict)  # figure name -> interactive HTML (needs plotly)
    skipped: dict[str, str] = field(default_factory=dict)  # figure name (or "html") -> why not written

    def paths(self) -> list[Path]:
        """Every file written, e.g. for ``MlflowClient.log_artifact``."""
        return [*self.files.values(), *self.html.values()]


@dataclass(frozen=True)
class LrPoint:
    trial: int
    lr: float
    value: float | None  # final value (complete), last reported value (pruned), None (diverged)
    outcome: str


def write_study_plots(study: optuna.Study, folder: str | Path, metric_name: str = "val_acc", lr_param: str = "lr") -> PlotSet:
    """Write every figure of ``study`` as ``folder/<name>.png`` (and ``.html`` with plotly)."""
    if len(study.directions) != 1:
        raise ValueError(f"study {study.study_name!r} has {len(study.directions)} objectives; plots need exactly one")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    direction = study.direction
    draw = {
        "optimization_history": lambda: history_figure(trials, direction, metric_name),
        "param_importances": lambda: importances_figure(param_importances(study), metric_name),
        "parallel_coordinates": lambda: parallel_coordinates_figure(trials, direction, metric_name),
        "intermediate_values": lambda: intermediate_values_figure(trials, metric_name),
        "lr_vs_metric": lambda: lr_figure(lr_points(trials, lr_param), direction, metric_name, lr_param),
    }
    result = PlotSet()
    for name, make in draw.items():
        try:
            result.files[name] = save_figure(make(), out / f"{name}.png")
        except NothingToPlot as why:
            result.skipped[name] = str(why)
    _write_html(study, trials, out, metric_name, lr_param, result)
    return result


def curve(trial: FrozenTrial) -> tuple[list[int], list[float]]:
    """The trial's finite intermediate values in step order (a diverged epoch may have reported NaN)."""
    steps = sorted(s for s, v in trial.intermediate_values.items() if math.isfinite(v))
    return steps, [trial.intermediate_values[s] for s in steps]


def completed(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]


def _label(metric_name: str, direction: StudyDirection) -> str:
    return f"{metric_name} ({'max' if direction == StudyDirection.MAXIMIZE else 'min'}imize)"


def history_figure(trials: Sequence[FrozenTrial], direction: StudyDirection, metric_name: str) -> Figure:
    """Value of each completed trial by trial number, with the best so far as a step line."""
    done = completed(trials)
    if not done:
        raise NothingToPlot(f"no completed trials (of {len(trials)})")
    numbers = [t.number for t in done]
    values = np.array([t.value for t in done])
    best = (np.maximum if direction == StudyDirection.MAXIMIZE else np.minimum).accumulate(values)
    fig = new_figure()
    ax = fig.add_subplot()
    ax.scatter(numbers, values, color="tab:blue", s=22, label=f"completed trial ({len(done)})")
    ax.step(numbers, best, where="post", color="tab:red", linewidth=1.8, label=f"best so far: {best[-1]:.4g}")
    ax.set_xlabel("trial number")
    ax.set_ylabel(_label(metric_name, direction))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Optimization history: {len(done)} completed of {len(trials)} trials")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def param_importances(study: optuna.Study) -> dict[str, float]:
    """fANOVA importances of the params every completed trial has (seeded, so reruns draw the same bars)."""
    done = completed(study.get_trials(deepcopy=False))
    if len(done) < 2:
        raise NothingToPlot(f"needs at least 2 completed trials, got {len(done)}")
    if len({t.value for t in done}) < 2:
        raise NothingToPlot(f"all {len(done)} completed trials have the same value; nothing to explain")
    shared = intersection_search_space(done)  # conditional params drop out, as in Optuna itself
    if len(shared) < 2:
        raise NothingToPlot(f"needs at least 2 params present in every completed trial, got {sorted(shared)}")
    try:
        return optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except RuntimeError as err:  # fANOVA: "zero total variance in all trees" when no param explains anything
        raise NothingToPlot(f"fANOVA could not attribute the variance ({err})") from None


def importances_figure(importances: Mapping[str, float], metric_name: str) -> Figure:
    """Horizontal bars, most important on top."""
    names = list(importances)[::-1]
    values = [importances[n] for n in names]
    fig = new_figure(7.0, 1.2 + 0.45 * len(names))
    ax = fig.add_subplot()
    bars = ax.barh(names, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize="small")
    ax.set_xlim(0, max(1.0, max(values) * 1.15))
    ax.set_xlabel(f"importance for {metric_name} (fANOVA, sums to 1)")
    ax.set_title("Parameter importances")
    return fig


def _axis_positions(trials: Sequence[FrozenTrial], name: str) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """One parallel-coordinates axis: each trial's position in [0, 1] (NaN where the param is absent), ticks."""
    distribution = next(t.distributions[name] for t in trials if name in t.distributions)
    if isinstance(distribution, CategoricalDistribution):
        # the declared choices, then any a trial with another declaration of the same name used
        choices = list(dict.fromkeys([*distribution.choices, *(t.params[name] for t in trials if name in t.params)]))
        span = max(len(choices) - 1, 1)
        raw = np.array([choices.index(t.params[name]) / span if name in t.params else np.nan for t in trials])
        return raw, [(i / span, str(c)) for i, c in enumerate(choices)]
    log = bool(getattr(distribution, "log", False))
    raw = np.array([float(t.params[name]) if name in t.params else np.nan for t in trials])
    scaled = np.log10(raw) if log else raw
    low, high = np.nanmin(scaled), np.nanmax(scaled)
    width = (high - low) or 1.0
    ticks = np.linspace(low, high, 3) if high > low else np.array([low])
    return (scaled - low) / width, [((v - low) / width, f"{10 ** v if log else v:.3g}") for v in ticks]


def parallel_coordinates_figure(trials: Sequence[FrozenTrial], direction: StudyDirection, metric_name: str) -> Figure:
    """One line per completed trial through every param axis and the value axis, coloured by value.

    Log-distributed params sit on a log axis; categorical ones at their choices; a param a trial lacks
    (conditional) leaves a gap in its line. Better trials are drawn on top.
    """
    done = completed(trials)
    if not done:
        raise NothingToPlot(f"no completed trials (of {len(trials)})")
    names = sorted({n for t in done for n in t.params})
    if not names:
        raise NothingToPlot("completed trials have no params")
    maximize = direction == StudyDirection.MAXIMIZE
    done.sort(key=lambda t: t.value if maximize else -t.value)  # the best last, so on top
    axes = [_axis_positions(done, n) for n in names]
    values = np.array([t.value for t in done])
    low, high = values.min(), values.max()
    value_pos = (values - low) / ((high - low) or 1.0)
    axes.append((value_pos, [(p, f"{v:.4g}") for p, v in zip((0.0, 0.5, 1.0), np.linspace(low, high, 3))]))

    fig = new_figure(max(8.0, 1.6 * (len(names) + 1)), 5.0)
    ax = fig.add_subplot()
    cmap = colormaps["viridis" if maximize else "viridis_r"]  # the best trial is always yellow
    norm = Normalize(low, high if high > low else low + 1)
    ys = np.column_stack([positions for positions, _ in axes])
    for row, value in zip(ys, values):
        ax.plot(range(len(axes)), row, color=cmap(norm(value)), alpha=0.7, linewidth=1.2)
    for x, (_, ticks) in enumerate(axes):
        ax.axvline(x, color="black", linewidth=0.8)
        for y, text in ticks:
            ax.text(x - 0.03, y, text, ha="right", va="center", fontsize="x-small")
    ax.set_xticks(range(len(axes)), [*names, metric_name], rotation=20 if len(axes) > 6 else 0)
    ax.set_yticks([])
    ax.set_xlim(-0.4, len(axes) - 0.8)
    ax.set_ylim(-0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=_label(metric_name, direction), pad=0.02)
    ax.set_title(f"Parallel coordinates: {len(done)} completed trials")
    return fig


def intermediate_values_figure(trials: Sequence[FrozenTrial], metric_name: str) -> Figure:
    """Per-trial learning curves by epoch, one line per trial, coloured by outcome; the last point marked.

    Pruned curves stop where the pruner stopped them, so the figure shows what each rung cut.
    """
    curves = [(t, *curve(t)) for t in trials]
    curves = [(t, steps, values) for t, steps, values in curves if steps]
    if not curves:
        raise NothingToPlot(f"no trial reported intermediate values (of {len(trials)})")
    fig = new_figure()
    ax = fig.add_subplot()
    counts = Counter(outcome_of(t) for t, _, _ in curves)
    for t, steps, values in sorted(curves, key=lambda c: outcome_of(c[0]) == Outcome.COMPLETE):  # complete on top
        kind = outcome_of(t)
        finished = kind == Outcome.COMPLETE
        ax.plot(steps, values, color=kind.colour, alpha=0.85 if finished else 0.55, linewidth=1.4 if finished else 1.0,
                marker=kind.marker, markevery=[-1], markersize=5, gid=f"trial {t.number}")
    handles = [Line2D([], [], color=o.colour, marker=o.marker, label=f"{o} ({n})") for o, n in sorted(counts.items())]
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric_name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Intermediate values: {len(curves)} trials")
    ax.grid(alpha=0.3)
    return fig


def lr_points(trials: Sequence[FrozenTrial], lr_param: str = "lr") -> list[LrPoint]:
    """The (LR, value) of each complete, pruned or diverged trial; other outcomes carry no value."""
    points = []
    for t in trials:
        kind = outcome_of(t)
        if lr_param not in t.params or kind not in (Outcome.COMPLETE, Outcome.PRUNED, Outcome.DIVERGED):
            continue
        try:
            lr = float(t.params[lr_param])
        except (TypeError, ValueError):
            raise NothingToPlot(f"{lr_param}={t.params[lr_param]!r} in trial {t.number} is not a number") from None
        if not lr > 0:
            raise NothingToPlot(f"{lr_param}={lr!r} in trial {t.number}: a log axis needs {lr_param} > 0")
        value = None  # diverged: no value worth drawing, however far it got
        if kind == Outcome.COMPLETE and t.value is not None and math.isfinite(t.value):
            value = t.value
        elif kind == Outcome.PRUNED and t.intermediate_values:
            value = (curve(t)[1] or [None])[-1]
        if value is not None or kind == Outcome.DIVERGED:
            points.append(LrPoint(t.number, lr, value, kind.value))
    if not points:
        raise NothingToPlot(f"no complete, pruned or diverged trial has a param {lr_param!r}")
    return points


def lr_figure(points: Sequence[LrPoint], direction: StudyDirection, metric_name: str, lr_param: str = "lr") -> Figure:
    """Value against LR (log x): completed dots, pruned at their last reported value, diverged along the bottom."""
    fig = new_figure()
    ax = fig.add_subplot()
    for kind, marker, label in (("complete", "o", "complete: final value"), ("pruned", "v", "pruned: last reported value")):
        group = [p for p in points if p.outcome == kind]
        if group:
            colour = Outcome(kind).colour
            face = colour if kind == "complete" else "none"
            ax.scatter([p.lr for p in group], [p.value for p in group], marker=marker, s=30, edgecolors=colour,
                       facecolors=face, label=f"{label} ({len(group)})")
    diverged = [p.lr for p in points if p.outcome == "diverged"]
    if diverged:  # no value to plot: a rug along the bottom, x in data units, y in axes units
        ax.plot(diverged, [0.03] * len(diverged), linestyle="none", marker="X", color=Outcome.DIVERGED.colour,
                transform=ax.get_xaxis_transform(), clip_on=False, label=f"diverged ({len(diverged)})")
    done = [p for p in points if p.outcome == "complete"]
    if done:
        best = (max if direction == StudyDirection.MAXIMIZE else min)(done, key=lambda p: p.value)
        ax.scatter([best.lr], [best.value], marker="*", s=180, color="gold", edgecolors="black", zorder=3,
                   label=f"best: {lr_param}={best.lr:.3g}, {best.value:.4g} (trial {best.trial})")
    ax.set_xscale("log")
    ax.set_xlabel(f"{lr_param} (log scale)")
    ax.set_ylabel(_label(metric_name, direction))
    ax.set_title(f"{metric_name} vs {lr_param}: {len(points)} trials")
    ax.legend(loc="best", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _write_html(study: optuna.Study, trials: Sequence[FrozenTrial], out: Path, metric_name: str, lr_param: str,
                result: PlotSet) -> None:
    """Interactive twins of the PNGs drawn, from ``optuna.visualization`` (plotly), if plotly is installed."""
    try:
        import plotly  # noqa: F401  (optional: only the HTML twins need it)
    except ImportError:
        result.skipped["html"] = "plotly is not installed (pip install plotly)"
        return
    import optuna.visualization as vis

    make = {
        "optimization_history": lambda: vis.plot_optimization_history(study, target_name=metric_name),
        "param_importances": lambda: vis.plot_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), target_name=metric_name),
        "parallel_coordinates": lambda: vis.plot_parallel_coordinate(study, target_name=metric_name),
        "intermediate_values": lambda: vis.plot_intermediate_values(study),
        "lr_vs_metric": lambda: _lr_plotly(lr_points(trials, lr_param), metric_name, lr_param),
    }
    for name in result.files:
        path = out / f"{name}.html"
        # The plotly.js bundle from its CDN, as mlflow.log_figure does: ~10 KB files instead of ~5 MB each.
        make[name]().write_html(path, include_plotlyjs="cdn")
        result.html[name] = path


def _lr_plotly(points: Sequence[LrPoint], metric_name: str, lr_param: str) -> plotly.graph_objects.Figure:
    """The plotly twin of ``lr_figure`` (Optuna has no such plot); diverged trials on a hidden 0..1 axis."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for kind, symbol in (("complete", "circle"), ("pruned", "triangle-down-open")):
        group = [p for p in points if p.outcome == kind]
        fig.add_scatter(x=[p.lr for p in group], y=[p.value for p in group], mode="markers", name=kind,
                        marker={"symbol": symbol, "color": Outcome(kind).colour.removeprefix("tab:")},
                        text=[f"trial {p.trial}" for p in group])
    diverged = [p for p in points if p.outcome == "diverged"]
    fig.add_scatter(x=[p.lr for p in diverged], y=[0.03] * len(diverged), yaxis="y2", mode="markers", name="diverged",
                    marker={"symbol": "x", "color": "red"}, text=[f"trial {p.trial}" for p in diverged])
    fig.update_layout(title=f"{metric_name} vs {lr_param}", xaxis={"type": "log", "title": f"{lr_param} (log scale)"},
                      yaxis={"title": metric_name}, yaxis2={"overlaying": "y", "range": [0, 1], "visible": False})
    return fig
