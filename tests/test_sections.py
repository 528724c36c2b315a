"""Typed config sections: validated once when the config is composed, frozen, and the only view of
the composed config that modules below the entry points receive."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections, SweepSection
from sweeps.errors import ConfigError
from sweeps.search.space import parse_search_space

pytestmark = pytest.mark.unit

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"

# Functions below the CLI that receive a whole composed config, and why. Every other function takes
# the section it reads (``Sections``) or plain values; a new function taking ``cfg`` fails this list.
TAKES_THE_COMPOSED_CONFIG = {
    # the edge: validate the composed config, build the sections, write it as YAML
    "config.compose.validate", "config.compose._positive_int", "config.compose._positive_number", "config.compose._one_of",
    "config.compose.load_exported", "config.compose.to_yaml", "config.validation.check_settings",
    "config.validation.check_search_against_trainer", "config.validation.config_keys",
    "config.sections.SweepSection.from_config", "config.sections.StorageSection.from_config",
    "config.sections.TrackingSection.from_config", "config.sections.LrFindSection.from_config", "config.sections.Sections.of",
    # entry points: a flow that starts from a config (a sweep, a worker, a Hydra job, production training, the preview's probe)
    "run.sweep.plan_sweep", "run.sweep.config_from_study", "run.foreign.open_foreign_sweep", "run.foreign.run_trial",
    "results.production.train_from_config", "results.production.train_production", "results.reproduce.reproduce",
    "search.service_cost.measure_service_cost", "search.service_cost._probe_config",
    # the objective interface: an objective receives its trial's whole config
    "train.objective.load_objective", "run.trial.TrialRunner.__init__", "run.foreign.ForeignTrialRunner.__init__",
    "run.foreign.ForeignTrialRunner._objective", "results.production._train", "search.service_cost.instant_objective",
    # the config is the data: the search space reads search.* and sets keys; params, exports and stored configs record it
    "search.space.parse_search_space", "search.space.apply_params", "search.space._target", "track.tracker.sweep_params",
    "results.export.export_config", "run.sweep.shareable_config", "run.trial.TrialRunner._params", "run.foreign.ForeignTrialRunner._params",
}


def _functions_taking_a_config() -> set[str]:
    found = set()
    for path in SWEEPS.rglob("*.py"):
        if path.name == "cli.py":
            continue
        module = path.relative_to(SWEEPS).with_suffix("").as_posix().replace("/", ".")

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = [*child.args.posonlyargs, *child.args.args, *child.args.kwonlyargs]
                    if any(a.arg in ("cfg", "trial_cfg", "_trial_cfg", "local") or "DictConfig" in ast.unparse(a.annotation or ast.Constant(""))
                           for a in args):
                        found.add(f"{module}.{prefix}{child.name}")

        visit(ast.parse(path.read_text()), "")
    return found


def test_only_the_edge_entry_points_and_objectives_take_the_composed_config() -> None:
    found = _functions_taking_a_config()
    assert "search.study.make_sampler" not in found and "run.sweep.plan_sweep" in found
    assert found - TAKES_THE_COMPOSED_CONFIG == set(), "take the section you read (sweeps.config.sections), not the whole config"
    assert TAKES_THE_COMPOSED_CONFIG - found == set(), "stale entries in the list above"


def test_sections_are_typed_and_frozen() -> None:
    sections = Sections.of(compose_config(["sweep.timeout=90", "sweep.gpus=[0,1]", "storage.reap_interval=5"]))
    sweep = sections.sweep
    assert (sweep.sampler, sweep.pruner, sweep.direction, sweep.max_epochs, sweep.timeout) == ("tpe", "hyperband", "maximize", 9, 90.0)
    assert sweep.gpus == (0, 1) and sweep.hyperband.reduction_factor == 3 and sweep.tpe.multivariate is True
    assert sections.storage.reap_interval == 5.0 and isinstance(sections.storage.grace_period, int)
    assert sections.tracking.flush_seconds == 5.0 and sections.lr_find.high_from == "min_loss"
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.sampler = "random"  # type: ignore[misc]


@pytest.mark.parametrize(
    "override, message",
    [
        ("sweep.sampler=cmaes", "sweep.sampler='cmaes': unknown value; allowed: tpe, gp, random, grid"),
        ("sweep.pruner=sha", "sweep.pruner='sha': unknown value; allowed: hyperband, median, none"),
        ("lr_find.high_from=valley", "lr_find.high_from='valley': unknown value; allowed: min_loss, edge, steepest"),
        ("lr_find.mode=cosine", "lr_find.mode='cosine': unknown value; allowed: exp, linear"),
        ("sweep.timeout=-5", "sweep.timeout=-5: must be a number of seconds > 0"),
    ],
)
def test_an_unknown_name_is_refused_when_the_config_is_composed(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose_config([override])
    assert str(caught.value).startswith(message)


def test_study_factories_refuse_a_name_they_do_not_know_instead_of_falling_through() -> None:
    from sweeps.search.study import make_pruner, make_sampler

    cfg = compose_config([])
    sweep, space = Sections.of(cfg).sweep, parse_search_space(cfg)
    with pytest.raises(ConfigError, match="sweep.sampler='cmaes'"):
        make_sampler(dataclasses.replace(sweep, sampler="cmaes"), space)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sweep.pruner='sha'"):
        make_pruner(dataclasses.replace(sweep, pruner="sha"))  # type: ignore[arg-type]


def test_the_guard_off_keeps_the_diagnosis_reading_explosions() -> None:
    """``train.diverge_factor=null`` (only NaN/inf stops a trial) composes, and the curve diagnosis
    (``diagnosis.explode_factor: ${train.diverge_factor}``) keeps its 10x reading."""
    sections = Sections.of(compose_config(["train.diverge_factor=null"]))
    assert sections.diagnosis.explode_factor == 10.0


def test_a_section_reads_only_its_own_keys() -> None:
    sweep = SweepSection.from_config({"sweep": {"study_name": "s", "n_trials": 3, "metric": "val_loss", "direction": "minimize"}, "train": {"epochs": 4}})
    assert (sweep.study_name, sweep.n_trials, sweep.maximize, sweep.max_epochs, sweep.sampler) == ("s", 3, False, 4, "tpe")


def test_section_defaults_are_the_shipped_ones() -> None:
    """A field's default applies only to a mapping that lacks the key; it must say what conf/ says."""
    shipped = Sections.of(compose_config([]))
    for name in ("storage", "tracking", "lr_find"):
        section = getattr(shipped, name)
        for field in dataclasses.fields(section):
            if field.default is not dataclasses.MISSING and field.name not in ("artifact_location",):  # a path, local/server differ
                assert getattr(section, field.name) == field.default, f"{name}.{field.name}"
    sweep = shipped.sweep
    defaults = SweepSection(study_name="s", n_trials=1, metric="m")
    for field in dataclasses.fields(SweepSection):
        # max_epochs comes from train.epochs; a stored config of an earlier release without max_failures or
        # workers ran with no failure limit and one worker, and still does
        if field.default is not dataclasses.MISSING and field.name not in ("max_epochs", "max_failures", "workers"):
            assert getattr(sweep, field.name) == getattr(defaults, field.name), f"sweep.{field.name}"
