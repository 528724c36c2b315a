"""The sweep report on the parent MLflow run: the study's plots and the sweep-level diagnosis, as
files the MLflow UI opens (PNG, HTML, markdown).

Written at the end of every sweep and on demand (``sweeps report``, ``sweeps diagnose``),
overwriting the same artifact paths, so the parent run always shows the latest picture.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweeps.config.sections import Sections, SweepSection
from sweeps.errors import ConfigError
from sweeps.results.curve_diagnosis import Thresholds
from sweeps.results.plots import PlotSet, write_study_plots
from sweeps.results.sweep_diagnosis import SweepDiagnosis, TrialRow, diagnose_sweep, plot_sweep_diagnosis
from sweeps.search.space import SearchSpace
from sweeps.track.tracker import SweepTracker

PLOTS_FOLDER = "plots"
DIAGNOSIS_FOLDER = "diagnosis"


@dataclass
class Report:
    plots: PlotSet
    diagnosis: SweepDiagnosis | None


def diagnosis_rows(study: optuna.Study, still_falling: float = Thresholds.still_falling) -> list[TrialRow]:
    """One row per diagnosed trial with an ``lr``: its verdict and the curve evidence the sweep rereads."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "lr" not in t.params or "diagnosis" not in t.user_attrs:
            continue
        evidence = (t.user_attrs.get("diagnosis_detail") or {}).get("evidence") or {}
        falling = evidence["tail_drop"] >= still_falling if "tail_drop" in evidence else None
        value = t.value if t.state == TrialState.COMPLETE else None
        rows.append(TrialRow(t.number, t.params["lr"], value, t.user_attrs["diagnosis"], evidence.get("near_chance", 0) >= 1, falling))
    return rows


def publish_report(study: optuna.Study, tracker: SweepTracker, parent_run_id: str, *, sweep: SweepSection, thresholds: Thresholds,
                   space: SearchSpace) -> Report:
    """Draw the figures and the diagnosis, log them on the parent run (``plots/``, ``diagnosis/``)."""
    folder = Path(tempfile.mkdtemp(prefix="sweeps-report-"))
    plots = write_study_plots(study, folder, metric_name=sweep.metric)
    for path in plots.paths():
        tracker.log_artifact(parent_run_id, path, PLOTS_FOLDER)
    if plots.skipped:
        tracker.log_text(parent_run_id, "\n".join(f"{name}: {why}" for name, why in plots.skipped.items()), f"{PLOTS_FOLDER}/skipped.txt")
    rows = diagnosis_rows(study, thresholds.still_falling)
    found = diagnose_sweep(rows, sweep.direction, lr_bounds=_searched_lr(study, space)) if rows else None
    if found is not None:
        tracker.log_text(parent_run_id, found.to_markdown(), f"{DIAGNOSIS_FOLDER}/report.md")
        figure = plot_sweep_diagnosis(rows, found, folder / "lr_diagnosis.png")
        tracker.log_artifact(parent_run_id, figure, DIAGNOSIS_FOLDER)
        tags = {f"sweeps.diagnosis.{verdict}": str(n) for verdict, n in found.counts.items() if n}
        if found.divergence_boundary:
            tags["sweeps.diagnosis.divergence_boundary"] = f"{found.divergence_boundary:.3g}"
        if found.stable_window:
            tags["sweeps.diagnosis.stable_window"] = f"{found.stable_window[0]:.3g}-{found.stable_window[1]:.3g}"
        if found.recommendations:
            tags["sweeps.diagnosis.recommendation"] = " ".join(found.recommendations)[:5000]
        tracker.set_tags(parent_run_id, tags)
        _tag_rereads(study, tracker, found)
    return Report(plots, found)


def publish_study_report(study: optuna.Study, *, sections: Sections, space: SearchSpace) -> tuple[Report, str]:
    """``sweeps report`` / ``sweeps diagnose``: ``publish_report`` on the study's parent run, which
    must exist in the tracking store of ``sections.tracking``; returns the report and the parent run id."""
    tracker = SweepTracker.from_section(sections.tracking, study.study_name)
    parent = tracker.find_parent()
    if parent is None:
        raise ConfigError("sweep.study_name", study.study_name, "has no parent run in this tracking store")
    return publish_report(study, tracker, parent, sweep=sections.sweep, thresholds=sections.diagnosis, space=space), parent


def _tag_rereads(study: optuna.Study, tracker: SweepTracker, found: SweepDiagnosis) -> None:
    """A trial whose verdict the sweep changed says so on its run (``diagnosis.sweep``), next to
    the verdict its own curve gave (``diagnosis``)."""
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if trial.number in found.reread_verdicts and run_id:
            note = found.reread_notes.get(trial.number, "")[:500]
            tracker.set_tags(run_id, {"diagnosis.sweep": found.reread_verdicts[trial.number], "diagnosis.sweep_note": note})


def _searched_lr(study: optuna.Study, space: SearchSpace) -> tuple[float, float] | None:
    found = study.user_attrs.get("lr_find")
    if found:
        return float(found["search_low"]), float(found["search_high"])
    for param in space.params:
        if param.name == "lr" and hasattr(param.distribution, "low"):
            return float(param.distribution.low), float(param.distribution.high)
    return None
