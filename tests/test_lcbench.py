"""objective=lcbench: the YAHPO Gym surrogate's own answers, epoch by epoch, through the whole service.

The data lie outside the repository (``SWEEPS_YAHPO_DATA``, ``../shared/data/yahpo`` in CI). Without
them these tests skip and say how to get them; with ``SWEEPS_REQUIRE_DATA=1`` (CI) they fail instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.errors import ConfigError
from sweeps.train.reporter import recording_reporter
from tests.conftest import REPO_ROOT, run_cli, store_overrides

pytestmark = pytest.mark.integration

DATA = os.environ.get("SWEEPS_YAHPO_DATA") or str(REPO_ROOT.parent / "shared" / "data" / "yahpo")
HAVE_DATA = (Path(DATA) / "lcbench" / "model.onnx").is_file()
if not HAVE_DATA and os.environ.get("SWEEPS_REQUIRE_DATA"):
    raise RuntimeError(f"SWEEPS_REQUIRE_DATA is set but {DATA}/lcbench/model.onnx is missing")
needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason="LCBench surrogate data missing: set SWEEPS_YAHPO_DATA to a checkout of github.com/slds-lmu/yahpo_data"
)
FIXED = [  # (train.lr, batch_size, momentum, weight_decay, num_layers, max_units, max_dropout)
    (1e-3, 64, 0.9, 1e-3, 3, 256, 0.5),
    (0.05, 16, 0.5, 0.05, 1, 1024, 0.0),
    (2e-4, 512, 0.99, 1e-5, 5, 64, 0.9),
]


def lcbench_overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [*store_overrides(tmp_path), "objective=lcbench", f"objective.data_dir={DATA}", *extra]


@needs_data
@pytest.mark.parametrize("instance", ["189906", "3945"])
def test_curves_are_the_surrogates_own_answers(compose, instance: str) -> None:
    from objectives import lcbench

    lcbench._import_yahpo()
    from yahpo_gym import benchmark_set

    bench = benchmark_set.BenchmarkSet("lcbench", instance=instance, multithread=False)
    for lr, batch, momentum, decay, layers, units, dropout in FIXED:
        cfg = compose(
            "objective=lcbench", f"objective.data_dir={DATA}", f"objective.instance={instance}", "train.epochs=52",
            f"train.lr={lr}", f"train.batch_size={batch}", f"train.momentum={momentum}", f"train.weight_decay={decay}",
            f"objective.num_layers={layers}", f"objective.max_units={units}", f"objective.max_dropout={dropout}",
        )  # fmt: skip
        reporter = recording_reporter("val_acc")
        value = lcbench.train(cfg, reporter)
        config = {"OpenML_task_id": instance, "batch_size": batch, "learning_rate": lr, "momentum": momentum, "weight_decay": decay,
                  "num_layers": layers, "max_units": units, "max_dropout": dropout}  # fmt: skip
        rows = bench.objective_function([{**config, "epoch": e} for e in range(1, 53)])
        # one row at a time, the float32 network answers within 1e-3 of the same rows batched
        single = [bench.objective_function({**config, "epoch": e})[0]["val_accuracy"] for e in (1, 2, 26, 52)]
        np.testing.assert_allclose(single, [rows[e - 1]["val_accuracy"] for e in (1, 2, 26, 52)], rtol=1e-3)
        assert [h["epoch"] for h in reporter.history] == list(range(1, 53))
        np.testing.assert_allclose([h["val_acc"] for h in reporter.history], [r["val_accuracy"] / 100 for r in rows], rtol=1e-5)
        np.testing.assert_allclose([h["val_loss"] for h in reporter.history], [r["val_cross_entropy"] for r in rows], rtol=1e-5)
        times = [h["sim_time"] for h in reporter.history]
        np.testing.assert_allclose(times, np.maximum.accumulate([r["time"] for r in rows]), rtol=1e-5)
        assert value == pytest.approx(rows[-1]["val_accuracy"] / 100, rel=1e-5)
        assert 0.0 < value <= 1.0


@needs_data
def test_selecting_lcbench_brings_its_space_budget_and_rungs(compose) -> None:
    cfg = compose("objective=lcbench", f"objective.data_dir={DATA}", "train.epochs=52")
    assert set(cfg.search) == {"lr", "batch_size", "momentum", "weight_decay", "num_layers", "max_units", "max_dropout"}
    assert cfg.sweep.hyperband.min_resource == 2  # epoch 1 is the untrained network
    assert compose("objective=lcbench", "search=default", f"objective.data_dir={DATA}").search.lr  # still overridable
    from sweeps.search.space import parse_search_space

    space = {p.name: (p.target, p.distribution) for p in parse_search_space(cfg).params}
    assert space["lr"][0] == "train.lr" and space["lr"][1].log and space["lr"][1].low == pytest.approx(1e-4)
    assert space["batch_size"][1] == optuna.distributions.IntDistribution(16, 512, log=True)
    assert space["max_units"][0] == "objective.max_units" and space["max_units"][1].log
    assert space["weight_decay"][1] == optuna.distributions.FloatDistribution(1e-5, 0.1)


@needs_data
def test_out_of_range_values_and_unknown_tasks_are_refused(compose) -> None:
    from objectives.lcbench import check_config

    with pytest.raises(ConfigError, match=r"objective.instance='12345'.*not an LCBench task.*189906"):
        check_config(compose("objective=lcbench", f"objective.data_dir={DATA}", "objective.instance=12345"))
    with pytest.raises(ConfigError, match=r"train.epochs=60: LCBench curves have 52 epochs"):
        check_config(compose("objective=lcbench", f"objective.data_dir={DATA}", "train.epochs=60"))
    with pytest.raises(ConfigError, match=r"train.lr=0.5: outside LCBench's range for learning_rate"):
        check_config(compose("objective=lcbench", f"objective.data_dir={DATA}", "train.lr=0.5"))


@needs_data
def test_a_sweep_on_lcbench_fills_both_stores(tmp_path: Path) -> None:
    done = run_cli("run", *lcbench_overrides(tmp_path, "sweep.n_trials=16", "sweep.study_name=lc"), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best trial" in done.stdout
    trials = optuna.load_study(study_name="lc", storage=f"sqlite:///{tmp_path}/optuna.db").get_trials()
    assert len(trials) == 16
    states = {t.state for t in trials}
    assert TrialState.COMPLETE in states and TrialState.PRUNED in states  # Hyperband from epoch 2 stopped some
    assert all(min(t.intermediate_values, default=2) >= 2 for t in trials)  # no rung at the untrained epoch 1
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("lc")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`sweeps.role` = 'trial'", max_results=100)
    assert len(runs) == 16
    complete = [r for r in runs if r.data.tags["sweeps.outcome"] == "complete"]
    for run in complete[:3]:
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert sorted(m.step for m in history) == list(range(1, 53))
        times = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "sim_time"), key=lambda m: m.step)]
        assert times == sorted(times) and times[0] > 0
        assert run.data.tags.get("diagnosis")


def test_missing_data_is_one_line_and_exit_2_with_no_store(tmp_path: Path) -> None:
    env = {"SWEEPS_YAHPO_DATA": ""}
    done = run_cli("run", *store_overrides(tmp_path), "objective=lcbench", cwd=tmp_path, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SWEEPS_YAHPO_DATA" in lines[0] and "yahpo_data" in lines[0], done.stderr
    done = run_cli("run", *store_overrides(tmp_path), "objective=lcbench", f"objective.data_dir={tmp_path}", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "objective.data_dir" in done.stderr and "no lcbench/model.onnx" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_package_names_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['yahpo_gym'] = None\n"  # what an environment without the package looks like to import
        "from objectives.lcbench import _import_yahpo\n"
        "from sweeps.errors import ConfigError\n"
        "try:\n    _import_yahpo()\nexcept ConfigError as err:\n    print(err)\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert "pip install 'sweeps[lcbench]'" in done.stdout, done.stdout + done.stderr
