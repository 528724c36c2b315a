"""``sweeps.api``: ``report`` and the trial context in and out of a sweep, and ``optimize`` on a plain
Python function with real stores in tmp_path."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.api import current, optimize, report
from sweeps.errors import ConfigError
from sweeps.train.reporter import MetricMissing

pytestmark = pytest.mark.integration


def curve(cfg) -> float:
    """A loss that falls each epoch towards (lr - 0.1)^2 + width/100: bad trials look bad early."""
    context = current()
    assert context.in_sweep and context.trial_number is not None and context.run_id
    floor = (cfg.lr - 0.1) ** 2 + cfg.model.width / 100
    for epoch in range(1, cfg.epochs + 1):
        report(epoch, val_loss=floor + 1.0 / epoch)
    return floor + 1.0 / cfg.epochs


def stores(folder: Path) -> dict[str, str]:
    return {"storage": f"sqlite:///{folder}/optuna.db", "tracking_uri": f"sqlite:///{folder}/mlflow.db"}


def test_report_outside_a_sweep_is_a_no_op() -> None:
    assert not current().in_sweep
    report(1, val_loss=0.5)  # nothing to report to, nothing raised


def test_report_outside_a_sweep_logs_to_the_scripts_own_mlflow_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    # mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI for the process: undo both afterwards
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/own.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/own.db")
    try:
        with mlflow.start_run() as run:
            report(1, val_loss=0.5)
            report(2, val_loss=0.25)
    finally:
        mlflow.set_tracking_uri(None)
    history = MlflowClient(f"sqlite:///{tmp_path}/own.db").get_metric_history(run.info.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.25)]


def test_optimize_a_function_prunes_tracks_and_returns_the_best_config(tmp_path: Path) -> None:
    space = {"lr": "tag(log, interval(1e-3, 1.0))", "model.width": "choice(1, 2, 4)"}
    result = optimize(curve, space, config={"lr": 0.01, "epochs": 9, "model": {"width": 2}}, n_trials=10, metric="val_loss",
                      epochs=9, study_name="fn", **stores(tmp_path))
    trials = result.study.get_trials()
    assert len(trials) == 10 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert any(t.state == TrialState.PRUNED for t in trials)
    best = result.study.best_trial
    assert result.best_value == pytest.approx(best.value)
    assert result.best_params == {"lr": best.params["lr"], "model.width": best.params["model.width"]}
    assert result.best_config.lr == best.params["lr"] and result.best_config.model.width == best.params["model.width"]
    assert result.best_config.epochs == 9  # the rest of the config as given
    assert result.counts["complete"] + result.counts.get("pruned", 0) == 10

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("fn")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'trial'")
    assert len(runs) == 10 and all(r.data.params["epochs"] == "9" and "model.width" in r.data.params for r in runs)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweeps.best_trial"] == str(best.number)

    again = optimize(curve, space, config={"lr": 0.01, "epochs": 9, "model": {"width": 2}}, n_trials=10, metric="val_loss",
                     epochs=9, study_name="fn", **stores(tmp_path))
    assert len(again.study.get_trials()) == 10  # n_trials is the study's total: nothing left to do


def test_a_metric_the_function_never_reports_stops_the_sweep(tmp_path: Path) -> None:
    with pytest.raises(MetricMissing, match="loss"):
        optimize(curve, {"lr": "interval(0.01, 0.2)"}, config={"lr": 0.1, "epochs": 3, "model": {"width": 1}}, n_trials=5,
                 metric="loss", epochs=3, study_name="typo", **stores(tmp_path))
    study = optuna.load_study(study_name="typo", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len(study.get_trials()) == 1 and study.get_trials()[0].state == TrialState.FAIL


def test_bad_settings_raise_before_any_store_exists(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="n_trials=0"):
        optimize(curve, {"lr": "interval(0.01, 0.2)"}, n_trials=0, **stores(tmp_path))
    with pytest.raises(ConfigError, match=r"space.lr.low=0.0: a log scale needs low > 0"):
        optimize(curve, {"lr": "tag(log, interval(0, 0.2))"}, **stores(tmp_path))
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_study_deleted_and_created_again_in_one_process_gets_its_trials(tmp_path: Path, postgres_database: str) -> None:
    # PostgreSQL gives the new study another id (SQLite may reuse the old one)
    settings = dict(config={"lr": 0.1, "epochs": 2, "model": {"width": 1}}, n_trials=2, metric="val_loss", study_name="again",
                    storage=postgres_database, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    optimize(curve, {"lr": "interval(0.01, 0.2)"}, **settings)
    optuna.delete_study(study_name="again", storage=settings["storage"])
    result = optimize(curve, {"lr": "interval(0.01, 0.2)"}, **settings)
    assert [t.state for t in result.study.get_trials()] == [TrialState.COMPLETE] * 2
