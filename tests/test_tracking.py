"""A trial's run is closed in one pass: its buffered metrics, final metric and outcome tags all land,
whatever their number, and the status is set last."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.entities import Metric

from sweeps.track.tracker import MetricBuffer, SweepTracker, best_trial_metrics, loss_until_blow_up, production_run_name, sweep_params

pytestmark = pytest.mark.integration


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
    now = [100.0]
    buffer = MetricBuffer(tracker.client, run_id, flush_seconds=1.0, clock=lambda: now[0])
    buffer.add(1, {"val_acc": 0.5})
    now[0] += 0.99
    buffer.add(2, {"val_acc": 0.55})
    assert tracker.client.get_metric_history(run_id, "val_acc") == []  # buffered, not yet written
    now[0] += 0.02  # the interval has passed
    buffer.add(3, {"val_acc": 0.6})
    assert [m.value for m in tracker.client.get_metric_history(run_id, "val_acc")] == [0.5, 0.55, 0.6]
    assert isinstance(buffer.take(), list) and buffer.pending == []


def test_non_finite_metrics_are_dropped_not_sent(tmp_path: Path) -> None:
    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s")
    run_id = tracker.start_run("r", {})
    buffer = MetricBuffer(tracker.client, run_id, flush_seconds=1e9)
    buffer.add(1, {"val_loss": float("nan"), "val_acc": 0.5})
    assert [m.key for m in buffer.pending] == ["val_acc"] and all(isinstance(m, Metric) for m in buffer.pending)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("complete", "FINISHED"), ("pruned", "FINISHED"), ("diverged", "FINISHED"), ("failed", "FAILED"), ("interrupted", "KILLED"), ("lost", "FAILED")],
)
def test_only_interrupts_end_killed(tmp_path: Path, outcome: str, status: str) -> None:
    """The MLflow UI draws KILLED as a red cross: a pruned or diverged trial is the search working."""
    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s")
    tracker.open_parent({})
    run_id = tracker.start_trial(7, {"lr": 0.01}, {})
    tracker.end_trial(run_id, outcome, {})
    run = tracker.client.get_run(run_id)
    assert (run.info.status, run.data.tags["sweeps.outcome"], run.info.run_name) == (status, outcome, "trial-0007")


def test_parent_params_show_the_space_and_keep_their_first_value_on_resume(tmp_path: Path) -> None:
    cfg = {
        "objective": {"name": "digits_mlp"},
        "train": {"epochs": 9},
        "sweep": {"sampler": "tpe", "pruner": "hyperband", "n_trials": 20, "metric": "val_acc", "direction": "maximize", "seed": 0,
                  "tpe": {"n_startup_trials": 5}, "hyperband": {"min_resource": 1}, "median": {"n_warmup_steps": 1}},
        "search": {"lr": "tag(log, interval(1e-4, 0.3))", "weight_decay": {"type": "float", "low": 1e-6, "zero_prob": 0.2}},
    }
    params = sweep_params(cfg)
    assert params["search.lr"] == "tag(log, interval(1e-4, 0.3))"
    assert params["search.weight_decay"] == "type: float, low: 1e-06, zero_prob: 0.2"
    assert params["tpe.n_startup_trials"] == 5 and params["hyperband.min_resource"] == 1 and "median.n_warmup_steps" not in params
    assert (params["n_trials"], params["epochs"], params["sampler"], params["pruner"]) == (20, 9, "tpe", "hyperband")

    tracker = SweepTracker(f"sqlite:///{tmp_path}/mlflow.db", "s")
    parent = tracker.open_parent({})
    assert tracker.log_new_params(parent, params) == {}
    cfg["sweep"]["n_trials"] = 30  # a resumed sweep raising its total: MLflow params cannot change
    assert tracker.log_new_params(parent, sweep_params(cfg)) == {"n_trials": ("20", "30")}
    assert tracker.client.get_run(parent).data.params["n_trials"] == "20"


def test_best_trial_metrics_are_its_numeric_values_by_short_name() -> None:
    values = {"train.lr": 0.008, "train.batch_size": 32, "train.schedule": "wsd", "train.nesterov": True, "objective.hidden": 64}
    assert best_trial_metrics(values) == {"best.lr": 0.008, "best.batch_size": 32.0, "best.hidden": 64.0}


def test_run_names_say_what_the_run_is() -> None:
    assert production_run_name({"study": "s1", "trial": 7}) == "train-from-trial-0007"
    assert production_run_name({}) == production_run_name(None) == "train"


@pytest.mark.parametrize("n_steps", [5, 3000])
def test_loss_until_blow_up_keeps_the_last_finite_step(n_steps: int) -> None:
    losses = [2.3 - 0.0001 * step for step in range(n_steps)] + [57.0, float("nan")]
    points = loss_until_blow_up(losses, limit=900)
    assert points[0] == (0, 2.3) and points[-1] == (n_steps, 57.0)
    assert len(points) <= 901 and [s for s, _ in points] == sorted({s for s, _ in points})
