"""``sweeps run`` as a user runs it, in an empty folder, checked with Optuna's and MLflow's own APIs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from tests.conftest import run_cli

pytestmark = pytest.mark.integration

RUN = ["run", "objective=digits_mlp", "sweep.n_trials=12", "train.epochs=9", "sweep.study_name=s1"]


def child_runs(client: MlflowClient, experiment_id: str, parent_id: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=1000)


def test_run_then_resume_keeps_one_study_one_parent_and_a_child_per_trial(tmp_path: Path) -> None:
    done = run_cli(*RUN, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "top trials of s1 by val_acc" in done.stdout and "best trial" in done.stdout

    # Optuna's own CLI lists the study's trials
    listing = subprocess.run(
        [str(Path(sys.executable).parent / "optuna"), "trials", "--study-name", "s1", "--storage", "sqlite:///optuna.db", "-f", "json"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count('"number"') == 12

    study = optuna.load_study(study_name="s1", storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 12 and TrialState.RUNNING not in states
    assert states.count(TrialState.PRUNED) >= 1 and states.count(TrialState.COMPLETE) >= 1
    assert study.best_value >= 0.95

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("s1")
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'parent'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.metrics["best_val_acc"] == pytest.approx(study.best_value)
    children = {int(r.data.tags["sweeps.trial_number"]): r for r in child_runs(client, experiment.experiment_id, parent.info.run_id)}
    assert sorted(children) == list(range(12))
    assert parent.data.params["sampler"] == "tpe" and parent.data.params["pruner"] == "hyperband"
    assert parent.data.params["n_trials"] == "12" and parent.data.params["search.lr"].startswith("tag(log")
    assert parent.data.metrics["best.lr"] == pytest.approx(study.best_params["lr"])
    expected_status = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED"}  # KILLED is for interrupts
    for trial in trials:
        run = children[trial.number]
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.info.status == expected_status[trial.state]
        assert run.data.tags["sweeps.state"] == trial.state.name
        assert {k: run.data.params[k] for k in trial.params} == {k: str(v) for k, v in trial.params.items()}
        assert run.data.params["train.epochs"] == "9"
        history = client.get_metric_history(run.info.run_id, "val_acc")
        # MLflow has every epoch the trial ran; Optuna the rungs where Hyperband compares trials
        assert [m.step for m in history] == list(range(1, trial.user_attrs["epochs"] + 1))
        by_epoch = {m.step: m.value for m in history}
        assert set(trial.intermediate_values) <= {1, 3}
        assert all(by_epoch[epoch] == pytest.approx(value) for epoch, value in trial.intermediate_values.items())
        if trial.state == TrialState.PRUNED and trial.user_attrs["sweeps.outcome"] == "pruned":
            assert run.data.tags["sweeps.pruned_at_epoch"] == str(max(trial.intermediate_values)) == str(trial.user_attrs["epochs"])
        elif trial.state == TrialState.PRUNED:  # diverged, during the epoch after its last report
            assert int(run.data.tags["sweeps.pruned_at_epoch"]) == trial.user_attrs["epochs"] + 1
            assert "sweeps.diverged_at_step" in run.data.tags
        else:
            assert run.data.metrics["final_val_acc"] == pytest.approx(trial.value)
            assert len(history) == 9
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sweep_config.yaml", "best_config.yaml"} <= artifacts

    again = run_cli(*RUN, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(study.get_trials()) == 12

    more = run_cli(*RUN[:2], "sweep.n_trials=15", *RUN[3:], cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert len(study.get_trials()) == 15
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'parent'")
    assert [p.info.run_id for p in parents] == [parent.info.run_id]
    assert len(child_runs(client, experiment.experiment_id, parent.info.run_id)) == 15


BAD_INPUT = [
    (["objective=nope"], "objective='nope': unknown objective option"),
    (["search=nope"], "search='nope': unknown search option"),
    (["train.nope=3"], "train.nope='3': no such config key"),
    (["search.weight_decay.type=floot"], "search.weight_decay.type='floot': unknown search parameter type; allowed: float, int, categorical"),
    (["search.lr=interval(0.3, 0.1)"], "search.lr.low=0.3: must be < high=0.1"),
    (["search.lr=tag(log, interval(0, 0.1))"], "search.lr.low=0.0: a log scale needs low > 0"),
    (["train.epochs=0"], "train.epochs=0: must be a positive integer"),
    (["sweep.n_trials=-2"], "sweep.n_trials=-2: must be a positive integer"),
    (["objective.target=no_such_module:train"], "objective.target='no_such_module:train': cannot import no_such_module"),
    (["storage.url=postgresql+psycopg://nobody@127.0.0.1:9/none"], "storage.url='postgresql+psycopg://nobody@127.0.0.1:9/none': cannot connect"),
    (["storage.url=sqlite:///no/such/folder/optuna.db"], "storage.url='sqlite:///no/such/folder/optuna.db': folder"),
    (["tracking.uri=http://127.0.0.1:9"], "tracking.uri='http://127.0.0.1:9': tracking server not reachable"),
]


@pytest.mark.parametrize("overrides, message", BAD_INPUT)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, overrides: list[str], message: str) -> None:
    done = run_cli("run", *overrides, cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"sweeps: error: {message}")
    assert list(tmp_path.iterdir()) == []
