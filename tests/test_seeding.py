"""Samplers are seeded per trial: two workers on one study, or a resumed run, never repeat a draw,
while one seed still reproduces a single-worker sweep exactly (real Optuna RDB storage)."""

from __future__ import annotations

import math

import pytest

from sweeps.config.sections import Sections
from sweeps.search.space import parse_search_space
from sweeps.search.study import open_study

pytestmark = pytest.mark.integration


def _worker(cfg):
    """What a new worker process does: open the study with its own sampler."""
    space = parse_search_space(cfg)
    sections = Sections.of(cfg)
    return open_study(sweep=sections.sweep, storage=sections.storage, space=space), space


def _value(params: dict) -> float:
    """A deterministic objective of the params, so TPE's model depends only on the history."""
    return -abs(math.log10(params["train.lr"]) + 2.0) - params["train.warmup_frac"]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_two_workers_draw_different_params(compose, sampler: str) -> None:
    cfg = compose(f"sweep.sampler={sampler}")
    (first, space_a), (second, space_b) = _worker(cfg), _worker(cfg)
    drawn = []
    for study, space in [(first, space_a), (second, space_b), (first, space_a), (second, space_b)]:
        trial = study.ask()  # both workers' trials stay RUNNING together, as in a parallel sweep
        drawn.append(tuple(sorted(space.sample(trial).items())))
    assert len(set(drawn)) == 4, drawn


def test_a_resumed_run_does_not_replay_the_first_draws(compose) -> None:
    cfg = compose("sweep.sampler=random")
    study, space = _worker(cfg)
    before = []
    for _ in range(2):
        trial = study.ask()
        params = space.sample(trial)
        before.append(params)
        study.tell(trial, _value(params))
    resumed, space = _worker(cfg)  # a new process: a fresh sampler seeded with the same sweep.seed
    after = [space.sample(resumed.ask()) for _ in range(2)]
    assert all(a != b for a in after for b in before), (before, after)


def _single_worker_sweep(compose, tmp_path, name: str, *overrides: str) -> list[dict]:
    cfg = compose(f"storage.url=sqlite:///{tmp_path}/{name}.db", "sweep.tpe.n_startup_trials=3", *overrides)
    study, space = _worker(cfg)
    drawn = []
    for _ in range(7):  # past TPE's startup trials: the model's draws are seeded per trial too
        trial = study.ask()
        params = space.sample(trial)
        drawn.append(params)
        study.tell(trial, _value(params))
    return drawn


def test_one_seed_reproduces_a_single_worker_sweep(compose, tmp_path) -> None:
    first = _single_worker_sweep(compose, tmp_path, "a")
    assert _single_worker_sweep(compose, tmp_path, "b") == first
    other = _single_worker_sweep(compose, tmp_path, "c", "sweep.seed=1")
    assert all(a != b for a, b in zip(first, other))
    assert len({tuple(sorted(p.items())) for p in first}) == len(first)


def test_grid_workers_share_the_grid_and_cover_it_without_repeats(compose) -> None:
    cfg = compose("search=lr_only", "search.lr=choice(0.001, 0.003, 0.01, 0.03)", "sweep.sampler=grid", "sweep.pruner=none")
    workers = [_worker(cfg) for _ in range(2)]
    drawn = []
    for index in range(4):
        study, space = workers[index % 2]
        drawn.append(space.sample(study.ask())["train.lr"])
    assert sorted(drawn) == [0.001, 0.003, 0.01, 0.03]
