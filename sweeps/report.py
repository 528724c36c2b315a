"""The sweep report on the parent MLflow run: plots (PNG + HTML) as files the MLflow UI opens.

Written at the end of every sweep and on demand by ``sweeps report``; overwriting the same
artifact paths, so the parent run always shows the latest picture of the study.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna

from sweeps.plots import PlotSet, write_study_plots
from sweeps.tracking import SweepTracker

PLOTS_FOLDER = "plots"


def publish_report(study: optuna.Study, tracker: SweepTracker, parent_run_id: str, metric: str) -> PlotSet:
    """Draw the study's figures and log them under ``plots/`` on the parent run."""
    folder = Path(tempfile.mkdtemp(prefix="sweeps-report-"))
    plots = write_study_plots(study, folder, metric_name=metric)
    for path in plots.paths():
        tracker.client.log_artifact(parent_run_id, str(path), PLOTS_FOLDER)
    if plots.skipped:
        tracker.log_text(parent_run_id, "\n".join(f"{name}: {why}" for name, why in plots.skipped.items()), f"{PLOTS_FOLDER}/skipped.txt")
    return plots
