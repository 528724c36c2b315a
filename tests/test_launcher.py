"""Local workers: GPU pinning, CPU thread split, and stores that cannot take several writers."""

from __future__ import annotations

import pytest

from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections
from sweeps.errors import ConfigError
from sweeps.run.launcher import assign_workers, check_shared_stores, gpu_ids

pytestmark = pytest.mark.unit


def test_one_gpu_per_worker_round_robin() -> None:
    assignments = assign_workers(5, ["0", "1", "3"], threads_setting=1)
    assert [a.env["CUDA_VISIBLE_DEVICES"] for a in assignments] == ["0", "1", "3", "0", "1"]
    assert [a.env["SWEEPS_WORKER_INDEX"] for a in assignments] == ["0", "1", "2", "3", "4"]
    assert all(a.overrides == () for a in assignments)  # an explicit thread count is kept


def test_cpu_workers_split_the_cores_when_threads_are_auto() -> None:
    assignments = assign_workers(4, [], threads_setting="auto", cpu_count=16)
    assert [a.overrides for a in assignments] == [("train.threads=4",)] * 4
    assert all(a.env["CUDA_VISIBLE_DEVICES"] == "" for a in assignments)
    assert assign_workers(3, [], "auto", cpu_count=2)[0].overrides == ("train.threads=1",)


def test_gpu_setting() -> None:
    assert gpu_ids([]) == [] and gpu_ids("none") == []
    assert gpu_ids([2, 5]) == ["2", "5"]
    assert isinstance(gpu_ids("auto"), list)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([], "storage.url='sqlite:///optuna.db': 2 workers cannot share an SQLite study"),
        (["storage.url=postgresql+psycopg://u@h/db"], "tracking.uri='sqlite:///mlflow.db': 2 workers cannot write one local MLflow store"),
    ],
)
def test_several_writers_need_shared_stores(overrides: list[str], message: str) -> None:
    cfg = compose_config(overrides)
    with pytest.raises(ConfigError) as caught:
        check_shared_stores(2, **_stores(cfg))
    assert str(caught.value).startswith(message)
    check_shared_stores(1, **_stores(cfg))
    check_shared_stores(4, **_stores(compose_config(["storage.url=postgresql+psycopg://u@h/db", "tracking.uri=http://127.0.0.1:5000"])))


def _stores(cfg) -> dict:
    sections = Sections.of(cfg)
    return {"storage": sections.storage, "tracking": sections.tracking}
