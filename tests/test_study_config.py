"""A study remembers its config: reusing it with another search space, objective or trainer is
refused in one line (nothing written); with sweep.allow_config_change=true each trial records the
config it ran with and is exported with it. The README's own order of commands stays valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.errors import ConfigError
from sweeps.export import trial_config
from sweeps.study_config import TRIAL_VERSION_ATTR, config_changes, config_of_trial
from sweeps.sweep import open_sweep, plan_sweep, shareable_config, work
from tests.conftest import run_cli, store_overrides

pytestmark = pytest.mark.integration

FAST = ["objective=custom", "objective.target=tests.objectives_for_tests:quadratic", "search=lr_only", "sweep.pruner=none", "train.epochs=2"]


def test_changes_ignore_what_does_not_change_a_trial() -> None:
    old = {"sweep": {"n_trials": 5, "seed": 0, "sampler": "tpe"}, "train": {"epochs": 2, "device": "cpu"}, "search": {"lr": "interval(0.1, 1)"}}
    new = {"sweep": {"n_trials": 9, "seed": 3, "sampler": "tpe"}, "train": {"epochs": 3, "device": "cuda"}, "search": {"lr": "interval(0.1, 1)", "wd": "x"}}
    assert config_changes(old, new) == [("search.wd", None, "x"), ("train.epochs", 2, 3)]
    # a trainer setting a later release added (train.precision) does not refuse a study made before it
    assert config_changes(old, {**new, "train": {**new["train"], "precision": "fp32"}}) == config_changes(old, new)


def test_another_config_on_an_existing_study_is_refused_unless_allowed(compose) -> None:
    first = open_sweep(plan_sweep(compose(*FAST, "sweep.n_trials=2")))
    work(first)
    before = dict(first.study.user_attrs)
    resumed = open_sweep(plan_sweep(compose(*FAST, "sweep.n_trials=3", "sweep.seed=7")))  # total and seed may change
    assert resumed.config_version == 0
    with pytest.raises(ConfigError, match=r"^train.epochs=3: study 'sweeps' was made with train.epochs=2; allowed: a new sweep.study_name"):
        open_sweep(plan_sweep(compose(*[o for o in FAST if o != "train.epochs=2"], "train.epochs=3", "sweep.n_trials=3")))
    assert {k: v for k, v in first.study.user_attrs.items() if k != "sweeps.config"} == {k: v for k, v in before.items() if k != "sweeps.config"}

    changed = open_sweep(plan_sweep(compose(*[o for o in FAST if o != "train.epochs=2"], "train.epochs=3", "sweep.n_trials=4", "sweep.allow_config_change=true")))
    assert changed.config_version == 1
    work(changed)
    trials = changed.study.get_trials()
    assert len(trials) == 4
    attrs, current = changed.study.user_attrs, shareable_config(changed.plan.cfg)
    for trial in trials:
        expected = 2 if trial.number < 2 else 3
        assert trial.user_attrs.get(TRIAL_VERSION_ATTR, 0) == (0 if trial.number < 2 else 1)
        assert trial_config(config_of_trial(attrs, trial, current), trial).train.epochs == expected


def test_the_readme_order_never_mixes_two_configs(tmp_path: Path) -> None:
    stores = store_overrides(tmp_path)
    quick = run_cli("run", *stores, "train.epochs=2", "sweep.n_trials=2", cwd=tmp_path)  # the quick start, shrunk
    assert quick.returncode == 0, quick.stderr
    mixed = run_cli("run", *stores, "search=lr_schedule", "train.epochs=2", "sweep.n_trials=3", cwd=tmp_path)
    assert mixed.returncode == 2, mixed.stderr
    (line,) = mixed.stderr.strip().splitlines()
    assert line.startswith("sweeps: error: search.") and "study 'sweeps' was made with" in line and "sweep.study_name" in line
    separate = run_cli("run", *stores, "search=lr_schedule", "sweep.study_name=lr-schedule", "train.epochs=2", "sweep.n_trials=2", cwd=tmp_path)
    assert separate.returncode == 0, separate.stderr
