"""A study remembers its config: reusing it with another search space, objective or trainer is
refused in one line (nothing written); with sweep.allow_config_change=true each trial records the
config it ran with and is exported with it. The README's own order of commands stays valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState, create_trial

from sweeps.errors import ConfigError
from sweeps.results.export import trial_config
from sweeps.run.sweep import open_sweep, plan_sweep, run_sweep, shareable_config, work
from sweeps.search.studies import list_studies
from sweeps.search.study_config import CONFIG_ATTR, TRIAL_VERSION_ATTR, VERSIONS_ATTR, config_changes, config_of_trial, stored_config
from tests.conftest import run_cli, store_overrides
from tests.test_hydra_plugin import SPHERE_APP, SPHERE_CONFIG, run_app

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
    before = stored_config(first.study)
    resumed = open_sweep(plan_sweep(compose(*FAST, "sweep.n_trials=3", "sweep.seed=7")))  # total and seed may change
    assert resumed.config_version == 0
    with pytest.raises(ConfigError, match=r"^train.epochs=3: study 'sweeps' was made with train.epochs=2; allowed: a new sweep.study_name"):
        open_sweep(plan_sweep(compose(*[o for o in FAST if o != "train.epochs=2"], "train.epochs=3", "sweep.n_trials=3")))
    assert stored_config(first.study) == {**before, "sweep": {**before["sweep"], "n_trials": 3}}  # the total only; the refusal wrote nothing
    assert stored_config(first.study, key=VERSIONS_ATTR) is None

    changed = open_sweep(plan_sweep(compose(*[o for o in FAST if o != "train.epochs=2"], "train.epochs=3", "sweep.n_trials=4", "sweep.allow_config_change=true")))
    assert changed.config_version == 1
    work(changed)
    trials = changed.study.get_trials()
    assert len(trials) == 4
    current = shareable_config(changed.plan.cfg)
    for trial in trials:
        expected = 2 if trial.number < 2 else 3
        assert trial.user_attrs.get(TRIAL_VERSION_ATTR, 0) == (0 if trial.number < 2 else 1)
        assert trial_config(config_of_trial(changed.study, trial, current), trial).train.epochs == expected


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


def optuna_studies(storage_url: str) -> list[str]:
    """``optuna studies --storage URL`` as a user runs it: the lines it prints."""
    optuna_cli = Path(sys.executable).with_name("optuna")
    done = subprocess.run([str(optuna_cli), "studies", "--storage", storage_url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def system_and_user_attrs(storage_url: str, name: str) -> tuple[dict, dict]:
    storage = optuna.storages.get_storage(storage_url)
    study_id = storage.get_study_id_from_name(name)
    return storage.get_study_system_attrs(study_id), storage.get_study_user_attrs(study_id)


def test_optuna_studies_prints_a_short_line_per_study_and_the_config_is_in_system_attrs(tmp_path: Path) -> None:
    stores = store_overrides(tmp_path)
    default = run_cli("run", *stores, "train.epochs=1", "sweep.n_trials=2", cwd=tmp_path)  # the quick start's sweep, shrunk
    assert default.returncode == 0, default.stderr
    other = run_cli("run", *stores, *FAST, "sweep.n_trials=2", "sweep.study_name=quadratic", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    url = f"sqlite:///{tmp_path}/optuna.db"

    lines = optuna_studies(url)
    for name in ("sweeps", "quadratic"):
        (row,) = [line for line in lines if f" {name} " in line]
        assert len(row) < 300, row
    assert max(len(line) for line in lines) < 300  # header and borders too (a user attr column would widen them all)
    assert "sweeps.config" not in "\n".join(lines)

    system, user = system_and_user_attrs(url, "sweeps")
    assert system[CONFIG_ATTR]["sweep"]["n_trials"] == 2 and system[CONFIG_ATTR]["train"]["epochs"] == 1
    assert "storage" not in system[CONFIG_ATTR] and "tracking" not in system[CONFIG_ATTR]  # store URLs may hold passwords
    assert user == {}


def test_a_study_written_by_the_previous_release_lists_exports_and_resumes(compose, tmp_path: Path) -> None:
    """The previous release kept the configs as study user attrs; here one is made by hand with
    Optuna's API: a config changed once (train.epochs 2 -> 3), one finished trial per config."""
    fast = [o for o in FAST if o != "train.epochs=2"]
    made, changed = compose(*fast, "train.epochs=2", "sweep.n_trials=2"), compose(*fast, "train.epochs=3", "sweep.n_trials=3")
    url = str(made.storage.url)
    study = optuna.create_study(study_name="sweeps", storage=url, direction=str(made.sweep.direction))
    study.set_user_attr(VERSIONS_ATTR, [shareable_config(made), shareable_config(changed)])
    study.set_user_attr(CONFIG_ATTR, shareable_config(changed))
    distributions = {p.name: p.distribution for p in plan_sweep(made).space.params}
    for version, lr, value in ((0, 1e-2, 0.9), (1, 1e-3, 0.3)):
        study.add_trial(create_trial(params={"lr": lr}, distributions=distributions, value=value, user_attrs={TRIAL_VERSION_ATTR: version}))

    (row,) = list_studies(url)
    assert (row.name, row.target, row.metric, row.finished, row.best_trial) == ("sweeps", 3, "val_acc", 2, 0)
    listed = run_cli("studies", *store_overrides(tmp_path), cwd=tmp_path)
    assert listed.returncode == 0 and "2/3" in listed.stdout, listed.stderr

    exported = run_cli("best", "sweeps", *store_overrides(tmp_path), "--export", str(tmp_path / "best.yaml"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    best = OmegaConf.load(tmp_path / "best.yaml")
    assert (best.train.epochs, best.train.lr, best.provenance.trial) == (2, pytest.approx(1e-2), 0)  # trial 0 ran with the first config

    result = run_sweep(plan_sweep(compose(*fast, "train.epochs=3", "sweep.n_trials=4")))  # resumes under the current config
    trials = result.study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [t.user_attrs.get(TRIAL_VERSION_ATTR) for t in trials] == [0, 1, 1, 1]
    system, user = system_and_user_attrs(url, "sweeps")
    assert system[CONFIG_ATTR]["sweep"]["n_trials"] == 4 and system[CONFIG_ATTR]["train"]["epochs"] == 3
    assert [v["train"]["epochs"] for v in system[VERSIONS_ATTR]] == [2, 3]
    # left behind (Optuna cannot delete a user attr): the old attrs, as they were, which no reader uses now
    assert user[CONFIG_ATTR]["sweep"]["n_trials"] == 3 and len(user[VERSIONS_ATTR]) == 2
    assert stored_config(result.study)["sweep"]["n_trials"] == 4

    refused = run_cli("run", *store_overrides(tmp_path), *fast, "train.epochs=2", "sweep.n_trials=5", cwd=tmp_path)
    assert refused.returncode == 2 and "study 'sweeps' was made with train.epochs=3" in refused.stderr, refused.stderr


def test_the_hydra_sweeper_keeps_the_config_in_system_attrs_and_resumes(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "app.py").write_text(SPHERE_APP)
    (tmp_path / "conf" / "config.yaml").write_text(SPHERE_CONFIG)
    done = run_app(tmp_path, "-m", "hydra.sweeper.n_trials=4")
    assert done.returncode == 0, done.stderr[-3000:]
    url = f"sqlite:///{tmp_path}/optuna.db"
    system, user = system_and_user_attrs(url, "sphere")
    assert system[CONFIG_ATTR]["sweep"]["n_trials"] == 4 and CONFIG_ATTR not in user
    (row,) = [line for line in optuna_studies(url) if " sphere " in line]
    assert len(row) < 300, row

    again = run_app(tmp_path, "-m", "hydra.sweeper.n_trials=6")  # its jobs read the stored config back (sweeps.run.foreign)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name="sphere", storage=url).get_trials()
    assert len(trials) == 6 and all(t.state == TrialState.COMPLETE for t in trials)
    assert all(t.value == pytest.approx(t.params["x"] ** 2 + t.params["y"] ** 2) for t in trials)
