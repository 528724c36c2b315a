"""A trial's run is closed in one pass: its buffered metrics, final metric and outcome tags all land,
whatever their number, and the status is set last."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.entities import Metric

from sweeps.tracking import MetricBuffer, SweepTracker


@pytest.mark.parametrize("n_pending", [0, 9, 995, 2500])  # 995 + final + tags crosses MLflow's 1000-entity batch cap
def test_end_trial_writes_pending_metrics_tags_and_status(tmp_path: Path, n_pending: int) -> None:
    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s")
    tracker.open_parent({})
    run_id = tracker.start_trial(0, {"lr": 0.01}, {})
    buffer = MetricBuffer(tracker.client, run_id, flush_seconds=1e9)
    for step in range(n_pending):
        buffer.add(step, {"train_loss_step": 1.0 / (step + 1)})
    tracker.end_trial(run_id, "complete", {"diagnosis": "healthy"}, {"final_val_acc": 0.97}, pending=buffer.take())
    assert buffer.pending == []
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["sweeps.outcome"] == "complete" and run.data.tags["diagnosis"] == "healthy"
    assert run.data.metrics["final_val_acc"] == pytest.approx(0.97)
    history = tracker.client.get_metric_history(run_id, "train_loss_step")
    assert sorted(m.step for m in history) == list(range(n_pending))


def test_metric_buffer_flushes_on_its_interval(tmp_path: Path) -> None:
    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s")
    run_id = tracker.start_run("r", {})
    buffer = MetricBuffer(tracker.client, run_id, flush_seconds=1.0)  # far above any scheduler stall
    buffer.add(1, {"val_acc": 0.5})
    assert tracker.client.get_metric_history(run_id, "val_acc") == []  # buffered, not yet written
    time.sleep(1.05)
    buffer.add(2, {"val_acc": 0.6})
    assert [m.value for m in tracker.client.get_metric_history(run_id, "val_acc")] == [0.5, 0.6]
    assert isinstance(buffer.take(), list) and buffer.pending == []


def test_non_finite_metrics_are_dropped_not_sent(tmp_path: Path) -> None:
    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s")
    run_id = tracker.start_run("r", {})
    buffer = MetricBuffer(tracker.client, run_id, flush_seconds=1e9)
    buffer.add(1, {"val_loss": float("nan"), "val_acc": 0.5})
    assert [m.key for m in buffer.pending] == ["val_acc"] and all(isinstance(m, Metric) for m in buffer.pending)
