"""Run trials until the study's total is reached.

The loop is Optuna's own ``study.optimize`` (its RDB heartbeat only works there), bounded by what
is left of ``sweep.n_trials`` and stopped by a callback once the study holds that many finished
trials, so several workers on one study stop together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial

from sweeps.study import finished_count
from sweeps.trial import TrialRunner

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def stop_at_total(total: int) -> TrialCallback:
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if finished_count(study) >= total:
            study.stop()

    return callback


def run_trials(study: optuna.Study, runner: TrialRunner, total: int, callbacks: Sequence[TrialCallback] = ()) -> int:
    """Run trials until ``total`` have finished; returns how many this call ran.

    A trial whose objective raised is recorded as failed and the loop goes on (``catch``).
    """
    started = len(study.get_trials(deepcopy=False))
    while (remaining := total - finished_count(study)) > 0 and not _grid_exhausted(study) and runner.aborted is None:
        study.optimize(runner, n_trials=remaining, catch=(Exception,), callbacks=[*callbacks, stop_at_total(total)], gc_after_trial=False)
    return len(study.get_trials(deepcopy=False)) - started


def _grid_exhausted(study: optuna.Study) -> bool:
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)
