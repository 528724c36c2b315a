"""A sampler seeded per trial: no two workers and no resumed run repeat a draw, one seed still
reproduces a single-worker sweep exactly.

Every process used to build its sampler with the same ``sweep.seed``, so each worker, and each
resumed run, replayed the same random draws (3 workers on one study: trials 0, 1 and 2 identical).
Here the sampler's random state is set before every trial from ``(sweep.seed, trial number)``.
Trial numbers are unique within a study (the storage hands them out), so no two trials draw from
the same random state, whichever process runs them; and a single worker that runs trials 0, 1, 2, ...
uninterrupted sees the same history and the same random state at each trial, so the same
``sweep.seed`` gives the same sweep. Retried and interrupted trials keep their params (Optuna
enqueues them as fixed params), so they draw nothing.

TPE and random search get a fresh sampler per trial (their only state across trials is the random
state; TPE's model is rebuilt from the study's trials every time). The grid sampler keeps its
``sweep.seed`` shuffle of the grid, which every worker must share (a trial stores an index into it),
and only its choice among unvisited grid points is re-seeded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


def trial_seed(seed: int, trial_number: int) -> int:
    """A 32-bit seed (numpy's range) for trial ``trial_number`` of a sweep seeded with ``seed``."""
    digest = hashlib.blake2b(f"sweeps.sampler:{seed}:{trial_number}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


class PerTrialSeededSampler(optuna.samplers.BaseSampler):
    """Delegates to ``inner``, re-seeded before each trial from ``(seed, trial.number)``.

    ``factory(seed)`` builds a sampler with that seed; ``reseed(sampler, seed)`` (instead) re-seeds
    one long-lived sampler in place (the grid sampler, whose grid order must not change).
    """

    def __init__(
        self,
        seed: int,
        factory: Callable[[int], optuna.samplers.BaseSampler],
        reseed: Callable[[optuna.samplers.BaseSampler, int], None] | None = None,
    ) -> None:
        self.seed = seed
        self._factory = factory
        self._reseed = reseed
        self.inner = factory(seed)

    def __str__(self) -> str:
        return f"PerTrialSeeded({self.inner})"

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        seed = trial_seed(self.seed, trial.number)
        if self._reseed is not None:
            self._reseed(self.inner, seed)
        else:
            self.inner = self._factory(seed)
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def reseed_grid(sampler: optuna.samplers.BaseSampler, seed: int) -> None:
    """Re-seed the grid sampler's choice among unvisited points (its shuffle of the grid stays)."""
    sampler._rng.rng.seed(seed)  # Optuna's GridSampler has no public way to set its random state


def base_sampler(sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
    """The configured sampler under the per-trial seeding (for ``isinstance`` checks)."""
    return sampler.inner if isinstance(sampler, PerTrialSeededSampler) else sampler


def grid_exhausted(study: optuna.Study) -> bool:
    sampler = base_sampler(study.sampler)
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)
