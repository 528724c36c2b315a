"""Hyperband's schedule as pure arithmetic: rungs, brackets, budgets, and the epochs a pruner reads.

One module, one rule, used by the study (``sweeps.search.study``), the preview (``sweeps.search.preview``), the
trial runner and rung evaluation (``sweeps.train.rung_eval``). It imports neither Optuna nor torch, so an
objective that imports the trainer loads neither Optuna nor SQLAlchemy.

The rule, Optuna's ``HyperbandPruner(min_resource, max_resource, reduction_factor)``:

* brackets: ``floor(log(max / min, rf)) + 1`` (``_hyperband.py`` 207-212, the same float
  expression, so the same rounding);
* bracket ``i`` is a ``SuccessiveHalvingPruner`` with ``min_early_stopping_rate = i``
  (221-226), whose k-th rung is at step ``min * rf**(i + k)`` for every such step ``<= max``
  (``_successive_halving.py`` 185-189): ``bracket_rungs``;
* allocation budget of bracket ``i``: ``ceil(n * rf**s / (s + 1))`` with ``s = n - 1 - i``
  (229-240); a trial goes to bracket ``i`` when ``crc32(f"{study}_{number}") % total`` falls
  in its slice of the cumulative budgets (242-264), so its share is ``budget / total``.

A rung at ``max_resource`` itself belongs to its bracket (Optuna would judge there) but is never a
pruning epoch: it could only mark a trial that finished its schedule PRUNED (``rung_epochs``).
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweeps.errors import ConfigError

if TYPE_CHECKING:
    from sweeps.config.sections import SweepSection


@dataclass(frozen=True)
class Bracket:
    """One of Hyperband's successive-halving brackets.

    ``rungs``: the epochs at which the bracket compares trials, ``min_resource * rf**(rate + k)``
    up to ``max_resource``; ``share``: the probability that a trial lands in this bracket;
    ``expected_epochs_per_trial``: the steady-state cost of one trial here.
    """

    index: int
    min_early_stopping_rate: int
    rungs: tuple[int, ...]
    allocation_budget: int
    share: float
    expected_epochs_per_trial: float


def bracket_rungs(min_resource: int, max_resource: int, reduction_factor: int, rate: int = 0) -> tuple[int, ...]:
    """The rungs of the bracket with ``min_early_stopping_rate = rate``: ``min * rf**(rate + k) <= max``."""
    rungs = []
    epoch = min_resource * reduction_factor**rate
    while epoch <= max_resource:
        rungs.append(epoch)
        epoch *= reduction_factor
    return tuple(rungs)


def rung_epochs(min_resource: int, max_resource: int, reduction_factor: int) -> frozenset[int]:
    """Every epoch at which some bracket judges a trial, the last epoch (``max_resource``) excluded.

    Bracket ``i``'s rungs are bracket 0's from ``k = i`` on, so the union is bracket 0's rungs."""
    return frozenset(r for r in bracket_rungs(min_resource, max_resource, reduction_factor) if r < max_resource)


def bracket_budgets(min_resource: int, max_resource: int, reduction_factor: int) -> list[int]:
    """Optuna's allocation budget per bracket (see the module docstring)."""
    n_brackets = math.floor(math.log(max_resource / min_resource, reduction_factor)) + 1
    return [math.ceil(n_brackets * reduction_factor ** (n_brackets - 1 - i) / (n_brackets - i)) for i in range(n_brackets)]


def hyperband_brackets(min_resource: int, max_resource: int, reduction_factor: int) -> list[Bracket]:
    """Optuna's ``HyperbandPruner(min_resource, max_resource, reduction_factor)`` as data."""
    if min_resource < 1:
        raise ConfigError("sweep.hyperband.min_resource", min_resource, "must be >= 1")
    if reduction_factor < 2:
        raise ConfigError("sweep.hyperband.reduction_factor", reduction_factor, "must be >= 2")
    if max_resource < min_resource:
        raise ConfigError("train.epochs", max_resource, f"must be >= sweep.hyperband.min_resource={min_resource}")
    budgets = bracket_budgets(min_resource, max_resource, reduction_factor)
    total = sum(budgets)
    brackets = []
    for index, budget in enumerate(budgets):
        rungs = bracket_rungs(min_resource, max_resource, reduction_factor, index)
        expected = expected_epochs_per_trial(rungs, max_resource, reduction_factor)
        brackets.append(Bracket(index, index, rungs, budget, budget / total, expected))
    return brackets


def bracket_of_trial(study_name: str, trial_number: int, brackets: Sequence[Bracket]) -> int:
    """The bracket Optuna puts trial ``trial_number`` of ``study_name`` in (``_hyperband.py`` 255-262)."""
    slot = binascii.crc32(f"{study_name}_{trial_number}".encode()) % sum(b.allocation_budget for b in brackets)
    for bracket in brackets:
        slot -= bracket.allocation_budget
        if slot < 0:
            return bracket.index
    raise AssertionError("unreachable: the slot lies below the total budget")


def expected_epochs_per_trial(rungs: Sequence[int], max_resource: int, reduction_factor: int) -> float:
    """Steady-state epochs of one trial under successive halving that keeps ``1 / rf`` at each rung.

    A trial runs to the first rung, passes each rung with probability ``1 / rf``, and a survivor of
    the last rung runs to ``max_resource``; a rung at ``max_resource`` itself saves nothing::

        E = c_0 + sum_k rf**-k (c_k - c_(k-1)) + rf**-m (max_resource - c_(m-1)),  c = rungs < max

    Steady state only: Optuna promotes a trial when it ranks within the top ``max(1, n // rf)`` of
    the ``n`` values recorded at that rung so far (``_successive_halving.py`` 252-269), so the first
    trial to reach a rung of a bracket is always promoted and the first trials of each bracket
    (at least one per bracket) cost more than this until each rung has about ``rf`` peers.
    """
    cuts = [r for r in rungs if r < max_resource]
    if not cuts:
        return float(max_resource)
    expected, reached, previous = float(cuts[0]), 1.0, cuts[0]
    for rung in [*cuts[1:], max_resource]:
        reached /= reduction_factor
        expected += reached * (rung - previous)
        previous = rung
    return expected


def pruning_epochs(sweep: SweepSection) -> frozenset[int]:
    """Epochs at which the configured pruner judges a trial, the last epoch excluded.

    Hyperband: ``rung_epochs`` (the union over its brackets). Median: every epoch from
    ``sweep.median.n_warmup_steps`` on. None: no epoch.
    """
    epochs = sweep.max_epochs
    if sweep.pruner == "hyperband":
        return rung_epochs(sweep.hyperband.min_resource, epochs, sweep.hyperband.reduction_factor)
    if sweep.pruner == "median":
        return frozenset(range(max(1, sweep.median.n_warmup_steps), epochs))
    if sweep.pruner == "none":
        return frozenset()
    raise ConfigError("sweep.pruner", sweep.pruner, "unknown pruner", "hyperband, median, none")


def report_epochs(sweep: SweepSection) -> frozenset[int]:
    """Epochs at which a trial reports to the study: where its pruner reads (each report is a
    storage round-trip); with no pruner, every epoch but the last, so the intermediate-values plot
    has curves."""
    if sweep.pruner == "none":
        return frozenset(range(1, sweep.max_epochs))
    return pruning_epochs(sweep)


def configured_brackets(sweep: SweepSection) -> list[Bracket]:
    """The brackets of the configured Hyperband pruner (``sweeps.search.study.make_pruner``); ``[]`` for other pruners."""
    if sweep.pruner != "hyperband":
        return []
    return hyperband_brackets(sweep.hyperband.min_resource, sweep.max_epochs, sweep.hyperband.reduction_factor)
