"""Results and reuse: status, best --export with provenance, production train reproducing the trial,
batch-size transfer, reproduce on seeds, plots on the parent run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from sweeps.config.compose import compose_config
from sweeps.results.export import transfer_batch_size
from sweeps.run.sweep import plan_sweep, run_sweep
from tests.conftest import copy_stores, run_cli, store_overrides

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("results")]  # one worker runs the module's shared sweep once


# sweep.seed=1: three of the six trials complete with distinct values (fANOVA needs two that differ)
FINISHED = ["sweep.n_trials=6", "train.epochs=3", "sweep.study_name=res", "sweep.seed=1"]


@pytest.fixture(scope="module")
def finished_template(tmp_path_factory: pytest.TempPathFactory):
    """One real sweep for the whole module; each test gets its own copy of the stores."""
    folder = tmp_path_factory.mktemp("finished")
    return folder, run_sweep(plan_sweep(compose_config([*store_overrides(folder), *FINISHED])))


@pytest.fixture
def finished_study(finished_template, tmp_path: Path):
    """(cfg, result) of the finished sweep, its stores copied into tmp_path: what a test adds stays its own."""
    folder, result = finished_template
    copy_stores(folder, tmp_path)
    return compose_config([*store_overrides(tmp_path), *FINISHED]), result


def test_status_lists_every_trial_and_the_best(finished_study, tmp_path: Path) -> None:
    cfg, result = finished_study
    shown = run_cli("status", "res", *store_overrides(tmp_path), "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [t["number"] for t in data["trials"]] == list(range(6))
    assert data["best"]["number"] == result.best.number and data["best"]["value"] == pytest.approx(result.best.value)
    assert {t["state"] for t in data["trials"]} <= {"COMPLETE", "PRUNED"}
    table = run_cli("status", "res", *store_overrides(tmp_path), cwd=tmp_path)
    assert "study res" in table.stdout and "6/6 finished" in table.stdout


def test_exported_best_config_trains_to_the_same_metric_and_links_back(finished_study, tmp_path: Path) -> None:
    cfg, result = finished_study
    best = result.best
    exported = run_cli("best", "res", *store_overrides(tmp_path), "--export", "best.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    data = yaml.safe_load((tmp_path / "best.yaml").read_text())
    origin = data["provenance"]
    assert (origin["study"], origin["trial"], origin["metric"]) == ("res", best.number, "val_acc")
    assert origin["value"] == pytest.approx(best.value) and origin["mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
    assert origin["seed"] == 0 and "exported_at" in origin and "git_commit" in origin
    assert data["train"]["lr"] == pytest.approx(best.params["lr"]) and data["train"]["epochs"] == 3
    assert "storage" not in data and "tracking" not in data

    trained = run_cli("train", "--config", "best.yaml", "--checkpoint", *store_overrides(tmp_path)[1:], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    client = MlflowClient(cfg.tracking.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("res").experiment_id], filter_string="tags.`sweeps.role` = 'train'")
    # same seed, same device (CPU): the same number, to float precision
    assert run.data.metrics["final_val_acc"] == pytest.approx(best.value, abs=1e-6)
    assert run.data.tags["sweeps.source_trial"] == str(best.number)
    assert run.data.tags["sweeps.source_run_id"] == best.user_attrs["mlflow_run_id"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"checkpoint", "config.yaml"}


def test_batch_size_transfer_follows_the_rule_and_says_so(finished_study, tmp_path: Path) -> None:
    _, result = finished_study
    best = result.best
    done = run_cli("best", "res", *store_overrides(tmp_path), "--batch-size", "512", "--export", "big.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load((tmp_path / "big.yaml").read_text())
    k = 512 / best.params["batch_size"]
    change = data["provenance"]["batch_size_transfer"]
    assert change["rule"] == "sqrt" and change["lr_factor"] == pytest.approx(math.sqrt(k))  # AdamW: square-root rule
    assert data["train"]["batch_size"] == 512
    assert data["train"]["lr"] == pytest.approx(best.params["lr"] * math.sqrt(k))
    assert data["train"]["warmup_frac"] == pytest.approx(min(0.3, best.params["warmup_frac"] * math.sqrt(k)))
    assert "sqrt rule" in done.stdout


@pytest.mark.parametrize(
    "optimizer, rule, factor",
    [("sgd", None, 4.0), ("adamw", None, 2.0), ("adam", None, 2.0), ("sgd", "sqrt", 2.0), ("adamw", "none", 1.0)],
)
def test_transfer_rules(optimizer: str, rule: str | None, factor: float) -> None:
    new, change = transfer_batch_size({"optimizer": optimizer, "lr": 0.1, "batch_size": 32, "warmup_frac": 0.05}, 128, rule)
    assert new["lr"] == pytest.approx(0.1 * factor) and change["lr_factor"] == pytest.approx(factor)
    assert new["warmup_frac"] == pytest.approx(min(0.3, 0.05 * max(1.0, factor)))
    down, _ = transfer_batch_size({"optimizer": optimizer, "lr": 0.1, "batch_size": 128, "warmup_frac": 0.05}, 32, rule)
    assert down["warmup_frac"] == 0.05 and down["lr"] == pytest.approx(0.1 / factor)


def test_reproduce_top_configs_on_seeds(finished_study, tmp_path: Path) -> None:
    cfg, result = finished_study
    done = run_cli("reproduce", "res", *store_overrides(tmp_path), "--top", "3", "--seeds", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "most robust: trial" in done.stdout and "±" in done.stdout
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name("res").experiment_id
    (parent,) = client.search_runs([experiment], filter_string="tags.`sweeps.role` = 'reproduce'")
    complete = sorted((t for t in result.study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value, reverse=True)[:3]
    assert {k for k in parent.data.metrics if k.endswith("_mean")} == {f"trial_{t.number}_mean" for t in complete}
    seeds = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(seeds) == 2 * len(complete)
    first_seed = {r.data.tags["sweeps.source_trial"]: r.data.metrics["final_val_acc"] for r in seeds if r.info.run_name.endswith("seed-0")}
    assert all(first_seed[str(t.number)] == pytest.approx(t.value, abs=1e-6) for t in complete)  # seed 0 is the trial's own


def test_plots_on_the_parent_run(finished_study) -> None:
    cfg, result = finished_study
    client = MlflowClient(cfg.tracking.uri)
    files = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    for name in ("optimization_history", "param_importances", "parallel_coordinates", "intermediate_values", "lr_vs_metric"):
        assert f"plots/{name}.png" in files and f"plots/{name}.html" in files


def test_ui_serves_the_local_store_on_localhost(finished_study, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import requests

    from tests.conftest import REPO_ROOT, free_port, wait_for_health

    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", "ui", "--port", str(port), *store_overrides(tmp_path)[1:]], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        assert f"MLflow UI: http://127.0.0.1:{port}" in ui.stdout.readline()
        if not wait_for_health(f"http://127.0.0.1:{port}", 90):
            pytest.fail("the MLflow UI did not come up")
        experiments = requests.get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "res"}, timeout=5)
        assert experiments.ok and experiments.json()["experiment"]["name"] == "res"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


def test_ui_points_at_a_tracking_server(tmp_path: Path) -> None:
    done = run_cli("ui", "tracking.uri=http://10.0.0.7:5000", cwd=tmp_path)
    assert done.returncode == 0 and "MLflow UI: http://10.0.0.7:5000" in done.stdout
