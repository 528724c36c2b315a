"""The tracker owns MLflow: built from the config's tracking section, it logs metrics (finite ones, in
batches), artifacts and end statuses; no other module of the service touches its client."""

from __future__ import annotations

import math
import re
from pathlib import Path

from sweeps.config.sections import TrackingSection
from sweeps.track.tracker import SweepTracker

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"


def test_metrics_artifacts_and_end_status_through_the_tracker(tmp_path: Path) -> None:
    section = TrackingSection(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "artifacts"))
    tracker = SweepTracker.from_section(section, "study-a")
    assert tracker.client.get_experiment(tracker.experiment_id).name == "study-a"
    run_id = tracker.start_run("train", {})
    many = {f"m{i}": float(i) for i in range(1500)}  # more than one log_batch call holds
    tracker.log_metrics(run_id, 3, {**many, "val_loss": math.nan, "grad_norm": math.inf, "val_acc": 0.75})
    (tmp_path / "note.txt").write_text("hello")
    tracker.log_artifact(run_id, tmp_path / "note.txt", "notes")
    tracker.end_run(run_id, "KILLED")
    run = tracker.client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert len(run.data.metrics) == 1501 and run.data.metrics["val_acc"] == 0.75 and run.data.metrics["m1499"] == 1499.0
    assert "val_loss" not in run.data.metrics and "grad_norm" not in run.data.metrics
    assert [m.step for m in tracker.client.get_metric_history(run_id, "val_acc")] == [3]
    assert [a.path for a in tracker.client.list_artifacts(run_id, "notes")] == ["notes/note.txt"]
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path / "artifacts")


def test_no_module_but_tracking_touches_the_mlflow_client() -> None:
    modules = {path.relative_to(SWEEPS).as_posix() for path in SWEEPS.rglob("*.py")}
    assert "track/tracker.py" in modules and len(modules) > 40
    outside = {name for name in modules if name != "track/tracker.py" and re.search(r"\.client\b|MlflowClient\(", (SWEEPS / name).read_text())}
    assert outside == set()
