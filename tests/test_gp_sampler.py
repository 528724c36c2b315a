"""``sweep.sampler=gp``: Optuna's GPSampler behind the service's per-trial seeding, on a real
Optuna RDB storage (SQLite in tmp_path)."""

from __future__ import annotations

import math
import subprocess
import sys

import optuna
import pytest

from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections
from sweeps.errors import ConfigError
from sweeps.search.seeding import base_sampler
from sweeps.search.space import parse_search_space
from sweeps.search.study import open_study

pytestmark = pytest.mark.integration


def _value(params: dict) -> float:
    """Peaks at lr = 1e-2, warmup_frac = 0: deterministic, so the GP's draws depend only on the history."""
    return -abs(math.log10(params["train.lr"]) + 2.0) - params["train.warmup_frac"]


def _sweep(compose, tmp_path, name: str, n_trials: int, *overrides: str) -> tuple[optuna.Study, list[dict]]:
    cfg = compose(f"storage.url=sqlite:///{tmp_path}/{name}.db", "sweep.sampler=gp", "sweep.gp.n_startup_trials=3", *overrides)
    space = parse_search_space(cfg)
    sections = Sections.of(cfg)
    study = open_study(sweep=sections.sweep, storage=sections.storage, space=space)
    drawn = []
    for _ in range(n_trials):
        trial = study.ask()
        params = space.sample(trial)
        drawn.append(params)
        study.tell(trial, _value(params))
    return study, drawn


def test_gp_models_the_space_after_its_startup_trials_and_one_seed_reproduces(compose, tmp_path) -> None:
    study, first = _sweep(compose, tmp_path, "a", 8)
    assert isinstance(base_sampler(study.sampler), optuna.samplers.GPSampler)
    from_model = [any(k.startswith("gp:relative_params") for k in t.system_attrs) for t in study.get_trials()]
    assert from_model == [False] * 3 + [True] * 5  # 3 random startup trials, then the GP's own draws
    _, again = _sweep(compose, tmp_path, "b", 8)
    assert again == first
    _, other = _sweep(compose, tmp_path, "c", 8, "sweep.seed=1")
    assert all(a != b for a, b in zip(first, other))
    # the model moves toward the optimum: its best draw beats the best of the random startup trials
    assert max(_value(p) for p in first[3:]) > max(_value(p) for p in first[:3])


def test_two_workers_with_a_running_trial_draw_different_params(compose, tmp_path) -> None:
    study, _ = _sweep(compose, tmp_path, "w", 4)  # past the startup: the GP draws both
    cfg = compose(f"storage.url=sqlite:///{tmp_path}/w.db", "sweep.sampler=gp", "sweep.gp.n_startup_trials=3")
    space = parse_search_space(cfg)
    sections = Sections.of(cfg)
    second = open_study(sweep=sections.sweep, storage=sections.storage, space=space)  # another worker's process, its own sampler
    a = space.sample(study.ask())  # stays RUNNING: the second worker's GP treats it as pending
    b = space.sample(second.ask())
    assert a != b


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sweep.sampler=gpp", "sweep.sampler='gpp': unknown value; allowed: tpe, gp, random, grid"),
        ("sweep.gp.n_startup_trials=0", "sweep.gp.n_startup_trials"),
    ],
)
def test_bad_gp_settings_are_refused_with_the_key(tmp_path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compose_config([f"storage.url=sqlite:///{tmp_path}/x.db", override])
    assert not (tmp_path / "x.db").exists()


def test_making_the_gp_sampler_loads_no_torch() -> None:
    code = (
        "import sys; from sweeps.config.compose import compose_config; from sweeps.search.space import parse_search_space; "
        "from sweeps.search.study import make_sampler; cfg = compose_config(['sweep.sampler=gp']); "
        "from sweeps.config.sections import Sections; make_sampler(Sections.of(cfg).sweep, parse_search_space(cfg)); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
