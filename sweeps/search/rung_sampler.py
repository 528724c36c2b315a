"""A sampler that models the search space at a Hyperband rung, not only at the final epoch (BOHB).

With Hyperband most trials end pruned at a low rung, and a model fitted on complete trials alone
sees few, and only survivors. BOHB (Falkner, Klein & Hutter, ICML 2018, §4) fits its model on the
*highest budget that holds enough observations*: every trial that reached that rung, pruned later
or not, counts with its value there. ``RungModelSampler`` gives its inner sampler (TPE, GP) that
view of the study: the highest rung epoch at which at least ``min_trials`` trials reported; each
of them appears COMPLETE with its value at that rung. Trials that never reached the rung stay as
they are (TPE ranks pruned trials below complete ones; the GP ignores them), running trials stay
running (TPE's constant liar, the GP's pending points). When the final epoch itself holds
``min_trials`` complete trials the view is the study as it is.

Everything is read from the study's trials (intermediate values in the storage), so every worker
computes the same view without coordination.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Iterable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


def rung_view(trials: Sequence[FrozenTrial], rungs: Iterable[int], final_epoch: int, min_trials: int) -> tuple[int, list[FrozenTrial]]:
    """``(rung, trials as the model sees them)``: the highest of ``rungs`` (or ``final_epoch``)
    with at least ``min_trials`` values; ``final_epoch`` and the trials unchanged when none has."""
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    if complete >= min_trials:
        return final_epoch, list(trials)
    for rung in sorted(set(rungs) - {final_epoch}, reverse=True):
        reached = [t for t in trials if t.state != TrialState.FAIL and rung in t.intermediate_values]
        if len(reached) >= min_trials:
            return rung, [_at_rung(t, rung) if rung in t.intermediate_values and t.state != TrialState.FAIL else t for t in trials]
    return final_epoch, list(trials)


def _at_rung(trial: FrozenTrial, rung: int) -> FrozenTrial:
    seen = copy.copy(trial)
    seen.state = TrialState.COMPLETE
    seen.values = [float(trial.intermediate_values[rung])]
    return seen


class _StudyAtRung:
    """The study as the inner sampler reads it: the same object, its trials seen at one rung."""

    def __init__(self, study: optuna.Study, trials: list[FrozenTrial]) -> None:
        self._study = study
        self._view = trials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False) -> list[FrozenTrial]:
        return [copy.deepcopy(t) if deepcopy else t for t in self._view if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)


class RungModelSampler(optuna.samplers.BaseSampler):
    """``inner`` fitted at the highest Hyperband rung holding ``min_trials`` trials (BOHB's rule)."""

    def __init__(self, inner: optuna.samplers.BaseSampler, rungs: Iterable[int], final_epoch: int, min_trials: int) -> None:
        if min_trials < 1:
            raise ValueError(f"min_trials must be at least 1 but got {min_trials}.")
        self.inner = inner
        self.rungs = frozenset(rungs)
        self.final_epoch = final_epoch
        self.min_trials = min_trials

    def __str__(self) -> str:
        return f"RungModel({self.inner}, min_trials={self.min_trials})"

    def _view(self, study: optuna.Study) -> Any:
        trials = study._get_trials(deepcopy=False, use_cache=False)
        rung, seen = rung_view(trials, self.rungs, self.final_epoch, self.min_trials)
        return study if rung == self.final_epoch else _StudyAtRung(study, seen)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(self._view(study), trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
