"""The BOHB view (``sweeps.search.rung_sampler``): the model learns at the highest rung holding enough trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.config.sections import Sections
from sweeps.search.rung_sampler import RungModelSampler, rung_view
from sweeps.search.seeding import base_sampler
from sweeps.search.space import parse_search_space
from sweeps.search.study import make_sampler

RUNGS = (2, 6, 18)
FINAL = 52
X = FloatDistribution(0.0, 1.0)


def _trial(x: float, curve: dict[int, float], final: float | None = None) -> optuna.trial.FrozenTrial:
    state = TrialState.COMPLETE if final is not None else TrialState.PRUNED
    return create_trial(state=state, value=final, params={"x": x}, distributions={"x": X}, intermediate_values=curve)


# five trials reach epoch 2, three reach 6, one completes
TRIALS = [
    _trial(0.1, {2: 0.50}),
    _trial(0.2, {2: 0.55}),
    _trial(0.3, {2: 0.60, 6: 0.70}),
    _trial(0.4, {2: 0.65, 6: 0.72}),
    _trial(0.5, {2: 0.70, 6: 0.80, 18: 0.85}, final=0.90),
]


@pytest.mark.parametrize(
    ("min_trials", "rung", "values"),
    [
        (1, FINAL, [None, None, None, None, 0.90]),  # one complete trial is enough: the study as it is
        (3, 6, [None, None, 0.70, 0.72, 0.80]),  # three trials reached epoch 6: their values there
        (5, 2, [0.50, 0.55, 0.60, 0.65, 0.70]),
        (6, FINAL, [None, None, None, None, 0.90]),  # no rung holds six: unchanged
    ],
)
def test_the_view_is_the_highest_rung_with_enough_trials(min_trials: int, rung: int, values: list) -> None:
    got_rung, seen = rung_view(TRIALS, RUNGS, FINAL, min_trials)
    assert got_rung == rung
    assert [t.value for t in seen] == pytest.approx(values)
    assert [t.state for t in seen] == [TrialState.PRUNED if v is None else TrialState.COMPLETE for v in values]
    assert [t.params for t in seen] == [t.params for t in TRIALS]
    assert TRIALS[2].state == TrialState.PRUNED  # the study's own trials are not touched


class _Recording(optuna.samplers.RandomSampler):
    """Random draws; records the complete values the model would fit on."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[float]] = []

    def infer_relative_search_space(self, study, trial):
        return {"x": X}

    def sample_relative(self, study, trial, search_space):
        self.seen.append(sorted(t.value for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
        return {}


@pytest.mark.integration
def test_a_study_on_a_real_storage_is_modelled_at_its_rung(tmp_path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/rung.db", direction="maximize")
    for trial in TRIALS:
        study.add_trial(trial)
    recording = _Recording()
    study.sampler = RungModelSampler(recording, RUNGS, FINAL, min_trials=3)
    study.ask().suggest_float("x", 0.0, 1.0)
    assert recording.seen == [pytest.approx([0.70, 0.72, 0.80])]
    assert [t.state for t in study.get_trials()][:5] == [t.state for t in TRIALS]


def test_the_service_wraps_its_model_only_with_hyperband(compose) -> None:
    cfg = compose("sweep.rung_model.min_trials=10")
    sampler = make_sampler(Sections.of(cfg).sweep, parse_search_space(cfg))
    assert isinstance(base_sampler(sampler), RungModelSampler)
    assert isinstance(base_sampler(sampler).inner, optuna.samplers.TPESampler)
    assert base_sampler(sampler).rungs == frozenset({1})  # train.epochs=3: Hyperband min 1, factor 3
    for overrides in (("sweep.rung_model.min_trials=10", "sweep.pruner=median"), ("sweep.rung_model.min_trials=null",)):
        cfg = compose(*overrides)
        assert isinstance(base_sampler(make_sampler(Sections.of(cfg).sweep, parse_search_space(cfg))), optuna.samplers.TPESampler)
