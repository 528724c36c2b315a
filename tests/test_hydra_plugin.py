"""The ``sweeps`` Hydra sweeper on a real app (examples/hydra_app, copied to tmp_path), run as users run
it: ``python app.py -m hydra/sweeper=sweeps ...``, with both stores read back through their own APIs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.track.tracker import OUTCOME_STATUS
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

EXAMPLE_APP = REPO_ROOT / "examples" / "hydra_app"
SEARCH = ["optimizer.lr=tag(log, interval(1e-3, 1.0))", "model.hidden=choice(8, 16, 32)"]

# hydra-optuna-sweeper's documented example (Hydra docs, "Optuna Sweeper plugin"), sweeper name changed
SPHERE_APP = '''
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def sphere(cfg: DictConfig) -> float:
    x: float = cfg.x
    y: float = cfg.y
    return x**2 + y**2


if __name__ == "__main__":
    sphere()
'''
SPHERE_CONFIG = '''
defaults:
  - override hydra/sweeper: sweeps

hydra:
  sweeper:
    sampler:
      seed: 123
    direction: minimize
    study_name: sphere
    storage: null
    n_trials: 20
    n_jobs: 1
    params:
      x: range(-5.5, 5.5, step=0.5)
      y: choice(-5 ,0 ,5)

x: 1
y: 1
z: 1
'''


def run_app(folder: Path, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python app.py ARGS`` in ``folder``. PYTHONPATH holds the repository so that Hydra's plugin scan
    (pkgutil over the ``hydra_plugins`` namespace) sees hydra_plugins/ of an editable install."""
    environment = {k: v for k, v in os.environ.items() if k not in ("SWEEPS_STORAGE_URL", "MLFLOW_TRACKING_URI")}
    environment.update({"PYTHONPATH": str(REPO_ROOT), "PYTHONWARNINGS": "ignore", **(env or {})})
    return subprocess.run([sys.executable, "app.py", *args], cwd=folder, capture_output=True, text=True, timeout=timeout, env=environment)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    shutil.copytree(EXAMPLE_APP, folder)
    return folder


def final_value(output: str) -> float:
    return float(re.findall(r"final val_loss=([0-9.eE+-]+)", output)[-1])


def trial_runs(folder: Path, study_name: str) -> dict[int, object]:
    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name(study_name)
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'trial'", max_results=100)
    return {int(r.data.tags["sweeps.trial_number"]): r for r in runs}


def test_sweep_an_existing_app_prunes_tracks_and_exports_a_best_config_the_app_runs(app: Path) -> None:
    done = run_app(app, "-m", "hydra/sweeper=sweeps", "hydra.sweeper.n_trials=8", "hydra.sweeper.epochs=9",
                   "hydra.sweeper.metric=val_loss", "hydra.sweep.dir=multirun", *SEARCH)
    assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name="app", storage=f"sqlite:///{app}/optuna.db")
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 8 and TrialState.RUNNING not in states
    assert states.count(TrialState.PRUNED) >= 1 and states.count(TrialState.COMPLETE) >= 1
    for trial in trials:  # each job ran the params its trial was asked with
        assert trial.user_attrs["sweeps.overrides"] == [f"optimizer.lr={trial.params['optimizer.lr']!r}", f"model.hidden={trial.params['model.hidden']}"]

    client = MlflowClient(tracking_uri=f"sqlite:///{app}/mlflow.db")
    runs = trial_runs(app, "app")
    assert sorted(runs) == list(range(8))
    for trial in trials:
        run = runs[trial.number]
        outcome = run.data.tags["sweeps.outcome"]
        assert outcome == {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}[trial.state]
        assert run.info.status == OUTCOME_STATUS[outcome]
        assert run.data.tags["diagnosis"] and trial.user_attrs["diagnosis"] == run.data.tags["diagnosis"]
        assert run.data.params["model.hidden"] == str(trial.params["model.hidden"]) and run.data.params["epochs"] == "9"
        curve = client.get_metric_history(run.info.run_id, "val_loss")
        epochs = [m.step for m in curve]
        assert epochs == list(range(1, len(epochs) + 1))
        if trial.state == TrialState.COMPLETE:
            assert len(epochs) == 9 and curve[-1].value == pytest.approx(trial.value)
        else:
            assert len(epochs) < 9 and trial.user_attrs["epochs"] == len(epochs)

    parent = client.search_runs([runs[0].info.experiment_id], filter_string="tags.`sweeps.role` = 'parent'")[0]
    best = study.best_trial
    assert parent.info.status == "FINISHED" and parent.data.tags["sweeps.best_trial"] == str(best.number)
    assert parent.data.metrics["n_complete"] + parent.data.metrics.get("n_pruned", 0) == 8
    assert "best_config.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    exported = app / "multirun" / "best"
    text = (exported / "experiment" / "best.yaml").read_text()
    assert text.startswith("# @package _global_") and f"# trial: {best.number}" in text
    rerun = run_app(app, "--config-dir", str(exported), "+experiment=best")  # production: no sweep, report() a no-op
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert final_value(rerun.stdout) == pytest.approx(best.value, rel=1e-6)


def test_hydra_optuna_sweeper_documented_example_runs_with_only_the_sweeper_renamed(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "app.py").write_text(SPHERE_APP)
    (tmp_path / "conf" / "config.yaml").write_text(SPHERE_CONFIG)
    done = run_app(tmp_path, "-m")
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="sphere", storage=f"sqlite:///{tmp_path}/optuna.db")
    trials = study.get_trials()
    assert len(trials) == 20 and all(t.state == TrialState.COMPLETE for t in trials)
    for trial in trials:
        assert trial.params["y"] in (-5, 0, 5) and -5.5 <= trial.params["x"] <= 5.0
        assert (trial.params["x"] * 2).is_integer()  # range(..., step=0.5)
        assert trial.value == pytest.approx(trial.params["x"] ** 2 + trial.params["y"] ** 2)
    assert study.best_value <= min(t.value for t in trials)
    again = run_app(tmp_path, "-m")  # n_trials is the study's total: a re-run resumes, and here finds nothing to do
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(optuna.load_study(study_name="sphere", storage=f"sqlite:///{tmp_path}/optuna.db").get_trials()) == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0: must be a positive integer"),
        (["nosuch.key=choice(1, 2)"], "hydra.sweeper.params.nosuch.key='choice(1, 2)': no such key in the app's config"),
        (["hydra.sweeper.pruner=hyperband"], "hydra.sweeper.epochs=None: the hyperband pruner needs the epochs each trial trains"),
        (["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"], "hydra.sweeper.storage='sqlite:///"),
    ],
)
def test_bad_settings_are_one_line_exit_2_and_create_no_store(app: Path, args: list[str], message: str) -> None:
    done = run_app(app, "-m", "hydra/sweeper=sweeps", *SEARCH, *args)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("sweeps: error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert not (app / "optuna.db").exists() and not (app / "mlflow.db").exists()


@pytest.fixture
def mlflow_database(postgres_database: str):
    """A second fresh PostgreSQL database for MLflow's SQL store (Optuna and MLflow both keep an
    ``alembic_version`` table, so they cannot share one)."""
    import sqlalchemy

    from tests.conftest import POSTGRES_URL

    url = sqlalchemy.engine.make_url(postgres_database)
    name = f"{url.database}_mlflow"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_joblib_launcher_runs_two_job_slots_on_postgresql(app: Path, postgres_database: str, mlflow_database: str) -> None:
    done = run_app(app, "-m", "hydra/sweeper=sweeps", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
                   "hydra.sweeper.n_trials=4", "hydra.sweeper.epochs=9", "hydra.sweeper.metric=val_loss", "hydra.sweep.dir=multirun",
                   *SEARCH, env={"SWEEPS_STORAGE_URL": postgres_database, "MLFLOW_TRACKING_URI": mlflow_database})
    assert done.returncode == 0, done.stderr[-3000:]
    saved = (app / "multirun" / "0" / ".hydra" / "hydra.yaml").read_text()
    assert "psycopg://" not in saved and "psycopg://" not in done.stdout + done.stderr  # the URLs stay in the environment
    study = optuna.load_study(study_name="app", storage=postgres_database)
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    overlapping = [(a.number, b.number) for a in trials for b in trials
                   if a.number < b.number and b.datetime_start < a.datetime_complete and a.datetime_start < b.datetime_complete]
    assert overlapping, "two job slots never ran trials at the same time"
    client = MlflowClient(tracking_uri=mlflow_database)
    experiment = client.get_experiment_by_name("app")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'trial'")
    assert sorted(int(r.data.tags["sweeps.trial_number"]) for r in runs) == list(range(4))
    assert all(r.info.status != "RUNNING" and client.get_metric_history(r.info.run_id, "val_loss") for r in runs)


def test_submitit_local_jobs_in_their_own_processes_are_pruned(app: Path) -> None:
    # Hyperband puts a trial in a bracket by a hash of the study name and trial number: with this name
    # (and the seeded sampler) trials 1 and 3 meet a better trial at a rung, so 4 trials suffice
    done = run_app(app, "-m", "hydra/sweeper=sweeps", "hydra/launcher=submitit_local", "hydra.sweeper.n_trials=4", "hydra.sweeper.epochs=9",
                   "hydra.sweeper.metric=val_loss", "hydra.sweeper.study_name=a3", "hydra.sweep.dir=multirun", *SEARCH)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="a3", storage=f"sqlite:///{app}/optuna.db")
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert any(t.state == TrialState.PRUNED for t in trials)
    runs = trial_runs(app, "a3")
    assert {r.data.tags["sweeps.outcome"] for r in runs.values()} == {"complete", "pruned"}
    jobs = [d for d in (app / "multirun" / ".submitit").iterdir() if d.name.isdigit()]
    assert len(jobs) == 4  # one submitit job (a process of its own) per trial


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (None, "null"), (3, "3"), (1e-05, "1e-05"), (0.1, "0.1"), ("adamw", "adamw"), ("resnet-18", "resnet-18"),
     ("true", "'true'"), ("a b", "'a b'"), ("it's", "'it\\'s'"), ("[1,2]", "'[1,2]'")],
)
def test_sampled_values_become_override_text_hydra_parses_back(value: object, text: str) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.sweeps_sweeper._impl import format_value

    assert format_value(value) == text
    assert OverridesParser.create().parse_override(f"key={text}").value() == value


def test_params_command_line_and_search_mappings_make_one_space() -> None:
    from hydra_plugins.sweeps_sweeper._impl import split_overrides

    settings = {"params": {"x": "range(-5.5, 5.5, step=0.5)", "z": 3}, "search": {"wd": {"type": "float", "low": 1e-6, "high": 0.1, "log": True, "zero_prob": 0.2}}}
    search, adds, fixed = split_overrides(settings, ["y=1,2,3", "+extra=choice(a, b)", "epochs=5"])
    assert search == {"x": "range(-5.5, 5.5, step=0.5)", "y": "choice(1,2,3)", "extra": "choice(a, b)",
                      "wd": {"type": "float", "low": 1e-6, "high": 0.1, "log": True, "zero_prob": 0.2}}
    assert adds == {"extra": "+"} and fixed == ["z=3", "epochs=5"]


GROUP_APP = '''
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def score(cfg: DictConfig) -> float:
    value = (cfg.model.width - 48) ** 2 / 100 + (cfg.lr - 0.1) ** 2
    print(f"final val_loss={value:.8f}")
    return value


if __name__ == "__main__":
    score()
'''


def test_a_config_group_choice_is_exported_as_a_defaults_override(tmp_path: Path) -> None:
    (tmp_path / "conf" / "model").mkdir(parents=True)
    (tmp_path / "app.py").write_text(GROUP_APP)
    (tmp_path / "conf" / "config.yaml").write_text("defaults:\n  - model: small\n  - _self_\nlr: 0.01\n")
    (tmp_path / "conf" / "model" / "small.yaml").write_text("width: 16\n")
    (tmp_path / "conf" / "model" / "large.yaml").write_text("width: 64\n")
    done = run_app(tmp_path, "-m", "hydra/sweeper=sweeps", "hydra.sweeper.n_trials=4", "hydra.sweep.dir=multirun",
                   "model=choice(small, large)", "lr=interval(0.05, 0.2)")
    assert done.returncode == 0, done.stderr[-3000:]
    best = optuna.load_study(study_name="app", storage=f"sqlite:///{tmp_path}/optuna.db").best_trial
    text = (tmp_path / "multirun" / "best" / "experiment" / "best.yaml").read_text()
    assert f"override /model: {best.params['model']}" in text
    rerun = run_app(tmp_path, "--config-dir", str(tmp_path / "multirun" / "best"), "+experiment=best")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert final_value(rerun.stdout) == pytest.approx(best.value, rel=1e-6)
