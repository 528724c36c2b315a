"""Hyperband's schedule in one pure module: the study, the preview and the trainer read the same
rungs (what each module imports: tests/test_imports.py)."""

from __future__ import annotations

import pytest

from sweeps.config.compose import compose_config
from sweeps.config.sections import Sections
from sweeps.search.hyperband import bracket_rungs, hyperband_brackets, pruning_epochs, rung_epochs
from sweeps.search.preview import configured_brackets
from sweeps.search.study import pruning_epochs as study_pruning_epochs
from sweeps.train.rung_eval import rung_epochs_for

pytestmark = pytest.mark.unit

COMBOS = [(1, 9, 3), (1, 27, 3), (1, 10, 2), (3, 27, 3), (1, 100, 3), (2, 50, 4), (1, 1000, 10), (5, 5, 3)]


@pytest.mark.parametrize("combo", COMBOS)
def test_rung_epochs_are_every_brackets_rungs_below_the_last_epoch(combo: tuple[int, int, int]) -> None:
    min_resource, max_resource, rf = combo
    union = {r for b in hyperband_brackets(*combo) for r in b.rungs}
    assert rung_epochs(*combo) == {r for r in union if r < max_resource}
    assert max_resource not in rung_epochs(*combo)


def test_a_rung_at_the_last_epoch_belongs_to_its_bracket_but_is_not_a_pruning_epoch() -> None:
    assert bracket_rungs(1, 9, 3) == (1, 3, 9)  # Optuna compares at step 9 (<=), the bracket keeps it
    assert bracket_rungs(1, 9, 3, rate=1) == (3, 9)
    assert rung_epochs(1, 9, 3) == {1, 3}
    assert rung_epochs(5, 5, 3) == frozenset() and rung_epochs(7, 5, 3) == frozenset()


@pytest.mark.parametrize(
    "overrides",
    [
        ("sweep.pruner=hyperband", "sweep.hyperband.min_resource=1", "train.epochs=27", "sweep.hyperband.reduction_factor=3"),
        ("sweep.pruner=hyperband", "sweep.hyperband.min_resource=2", "train.epochs=50", "sweep.hyperband.reduction_factor=4"),
        ("sweep.pruner=median", "train.epochs=9"),
    ],
)
def test_study_preview_and_trainer_read_one_schedule(overrides: tuple[str, ...]) -> None:
    cfg = compose_config(list(overrides))
    assert study_pruning_epochs is pruning_epochs and rung_epochs_for is pruning_epochs
    if cfg.sweep.pruner == "hyperband":
        epochs = int(cfg.train.epochs)
        sweep = Sections.of(cfg).sweep
        assert pruning_epochs(sweep) == {r for b in configured_brackets(sweep) for r in b.rungs if r < epochs}
