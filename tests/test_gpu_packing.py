"""Several trials per GPU: how many local workers, which GPU each sees, and a trial that runs out of
GPU memory failing alone (tested on the CPU: the launcher's arithmetic and environments are the
same with or without a GPU, and torch raises its out-of-memory error type on any build)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections
from sweeps.errors import ConfigError
from sweeps.run.launcher import LocalWorkers, assign_workers, resolve_workers, worker_count
from sweeps.run.sweep import open_sweep, plan_sweep, run_sweep
from tests.conftest import REPO_ROOT, run_cli, store_overrides

pytestmark = pytest.mark.integration

SHARED = ["storage.url=postgresql+psycopg://u@h/db", "tracking.uri=http://127.0.0.1:5000"]


@pytest.mark.parametrize(
    "setting, per_gpu, gpus, shared, expected",
    [
        ("auto", 1, [], True, 1),  # no GPU: one worker
        ("auto", 4, [], True, 1),
        ("auto", 1, ["0"], True, 1),
        ("auto", 4, ["0"], True, 4),  # k per GPU
        ("auto", 2, ["0", "1", "2"], True, 6),
        ("auto", 8, ["0", "1"], False, 1),  # embedded stores cannot take several writers
        (3, 8, ["0", "1"], True, 3),  # an explicit number is kept
        (5, 1, [], False, 5),  # (and refused later by check_shared_stores)
    ],
)
def test_worker_count(setting, per_gpu: int, gpus: list[str], shared: bool, expected: int) -> None:
    count, note = worker_count(setting, per_gpu, gpus, shared)
    assert count == expected
    assert (note is not None) == (setting == "auto" and not shared and per_gpu * len(gpus) > 1)


def test_auto_on_embedded_stores_says_why_it_stays_at_one_worker() -> None:
    count, note = worker_count("auto", 4, ["0", "1"], shared_stores=False)
    assert count == 1
    assert note.startswith("sweep.workers=auto: 1 worker, not 4 x 2 GPUs = 8: several workers need shared stores")


@pytest.mark.parametrize("per_gpu, gpus", [(1, ["0"]), (2, ["0"]), (4, ["0", "1"]), (8, ["1", "3"]), (3, ["0", "1", "2"])])
def test_k_workers_per_gpu_id_each_with_its_own_environment(per_gpu: int, gpus: list[str]) -> None:
    workers, _ = worker_count("auto", per_gpu, gpus, shared_stores=True)
    assignments = assign_workers(workers, gpus, threads_setting=1)
    pinned = Counter(a.env["CUDA_VISIBLE_DEVICES"] for a in assignments)
    assert pinned == {gpu: per_gpu for gpu in gpus}  # exactly k workers see each GPU id
    assert [a.env["SWEEPS_WORKER_INDEX"] for a in assignments] == [str(i) for i in range(workers)]
    assert all(a.env["SWEEPS_WORKERS_PER_GPU"] == str(per_gpu) for a in assignments)
    # consecutive workers land on different GPUs: a smaller explicit count still spreads over all of them
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in assignments[: len(gpus)]] == gpus


def test_explicit_worker_count_spreads_round_robin_and_counts_sharers() -> None:
    assignments = assign_workers(5, ["0", "1"], threads_setting=1)
    assert [(a.env["CUDA_VISIBLE_DEVICES"], a.env["SWEEPS_WORKERS_PER_GPU"]) for a in assignments] == [
        ("0", "3"), ("1", "2"), ("0", "3"), ("1", "2"), ("0", "3"),
    ]


def _workers_of(overrides: list[str]) -> tuple[int, str | None]:
    cfg = compose_config(overrides)
    return resolve_workers(Sections.of(cfg), device=str(cfg.train.device))


def test_resolve_workers_from_the_composed_config() -> None:
    assert _workers_of(([*SHARED, "sweep.gpus=[0,1]", "sweep.trials_per_gpu=4"])) == (8, None)
    assert _workers_of(([*SHARED, "sweep.gpus=[]", "sweep.trials_per_gpu=4"])) == (1, None)
    assert _workers_of(([*SHARED, "sweep.gpus=[0,1]", "sweep.trials_per_gpu=4", "train.device=cpu"])) == (1, None)
    assert _workers_of(([*SHARED, "sweep.gpus=[0,1]", "sweep.workers=3"])) == (3, None)
    count, note = _workers_of((["sweep.gpus=[0]", "sweep.trials_per_gpu=2"]))  # SQLite defaults
    assert count == 1 and "storage=postgres" in note


@pytest.mark.parametrize(
    "override, message",
    [
        ("sweep.trials_per_gpu=0", "sweep.trials_per_gpu=0: must be a positive integer"),
        ("sweep.trials_per_gpu=two", "sweep.trials_per_gpu='two': must be a positive integer"),
        ("sweep.workers=0", "sweep.workers=0: must be a positive integer or auto"),
        ("sweep.workers=many", "sweep.workers='many': must be a positive integer or auto"),
    ],
)
def test_bad_packing_settings_are_refused(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose_config([override])
    assert str(caught.value).startswith(message)


def test_bad_packing_setting_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    done = run_cli("run", "sweep.trials_per_gpu=0", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["sweeps: error: sweep.trials_per_gpu=0: must be a positive integer (local workers pinned to each GPU)"]
    assert list(tmp_path.iterdir()) == []


def test_local_workers_packed_on_one_gpu_id_each_see_it(tmp_path: Path) -> None:
    """Two real ``sweeps worker`` processes packed on GPU id 7 (k=2): each gets its own process and
    the same CUDA_VISIBLE_DEVICES, and together they run the study to its total."""
    stores = store_overrides(tmp_path)
    target = ["objective=custom", "objective.target=tests.gpu_objectives:record_environment", "sweep.pruner=none"]
    open_sweep(plan_sweep(compose_config([*stores, *target, "sweep.study_name=packed", "sweep.n_trials=2", "train.epochs=1"])))  # sweeps create
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    workers, _ = worker_count("auto", 2, ["7"], shared_stores=True)
    saved_path = os.environ.get("PYTHONPATH")
    os.environ.update(
        SWEEPS_TEST_ENV_DIR=str(env_dir), SWEEPS_TEST_WORKERS=str(workers), PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), saved_path]))
    )
    try:
        local = LocalWorkers(assign_workers(workers, ["7"], threads_setting=1), [*stores, "sweep.study_name=packed", "train.device=cpu"])
        codes = local.wait(lambda: None, lambda: False, interval=0.2)
    finally:
        for key in ("SWEEPS_TEST_ENV_DIR", "SWEEPS_TEST_WORKERS"):
            os.environ.pop(key)
        os.environ.pop("PYTHONPATH")
        if saved_path is not None:
            os.environ["PYTHONPATH"] = saved_path
    assert codes == [0, 0], local.failure_report(codes)
    seen = [json.loads(p.read_text()) for p in env_dir.glob("*.json")]
    assert len(seen) == 2  # two processes (two pids), one trial each
    assert sorted(s["SWEEPS_WORKER_INDEX"] for s in seen) == ["0", "1"]
    assert all(s["CUDA_VISIBLE_DEVICES"] == "7" and s["SWEEPS_WORKERS_PER_GPU"] == "2" for s in seen)


def test_out_of_memory_fails_only_its_trial_and_frees_its_tensors(tmp_path: Path) -> None:
    cfg = compose_config([
        *store_overrides(tmp_path), "objective=custom", "objective.target=tests.gpu_objectives:out_of_memory_first",
        "sweep.pruner=none", "sweep.n_trials=3", "train.epochs=2", "sweep.study_name=oom",
    ])
    from tests import gpu_objectives

    gpu_objectives.held.clear()
    result = run_sweep(plan_sweep(cfg))
    trials = result.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]  # the worker went on
    assert [t.value for t in trials[1:]] == [1.0, 1.0]  # the next trials found the failed trial's tensor freed
    failed = trials[0]
    assert failed.user_attrs["sweeps.outcome"] == "failed"
    assert failed.user_attrs["error"].startswith("GpuOutOfMemory: out of GPU memory: CUDA out of memory. Tried to allocate 20.00 GiB")
    assert failed.user_attrs["error"].endswith("lower train.batch_size or sweep.trials_per_gpu")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert run.data.tags["sweeps.error"] == failed.user_attrs["error"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_run.sh runs it on one)")
def test_real_cuda_out_of_memory_fails_its_trial_and_returns_the_memory(tmp_path: Path) -> None:
    cfg = compose_config([
        *store_overrides(tmp_path), "objective=custom", "objective.target=tests.gpu_objectives:cuda_out_of_memory_first",
        "sweep.pruner=none", "sweep.n_trials=2", "train.epochs=1", "sweep.study_name=cuda-oom",
    ])
    result = run_sweep(plan_sweep(cfg))
    first, second = result.study.get_trials()
    assert first.state == TrialState.FAIL and first.user_attrs["error"].startswith("GpuOutOfMemory: out of GPU memory")
    assert second.state == TrialState.COMPLETE and second.value == 1.0  # 256 MiB freed, the cache emptied
