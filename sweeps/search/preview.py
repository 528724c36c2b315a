"""What a sweep will cost before it runs: Hyperband's brackets, the epoch budget, the space in words.

Pure functions of the composed config, except ``measure_epoch_seconds`` (trains two epochs) and
``preview_tables`` (builds rich tables). The CLI verb ``sweeps preview`` prints the tables.

Hyperband is replicated from Optuna 5.0's source (``optuna/pruners/_hyperband.py``,
``_successive_halving.py``); ``tests/test_preview.py`` checks it against the real pruner on a real
study. Trials report ``step = epoch`` (1, 2, ..., ``train.epochs``), so a rung's step is an epoch count.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from rich.table import Table

from sweeps.config.sections import SweepSection
from sweeps.errors import ConfigError
from sweeps.search.hyperband import Bracket, bracket_of_trial, configured_brackets, expected_epochs_per_trial, hyperband_brackets  # noqa: F401  (also imported from here)
from sweeps.search.service_cost import ServiceCost
from sweeps.search.space import SearchParam, SearchSpace
from sweeps.train.objective import objective_hook
from sweeps.train.reporter import TrialStopped

# Median pruner approximation (see ``estimate_budget``): the share of post-startup trials pruned
# at their first check; the rest run every epoch.
MEDIAN_PRUNED_FRACTION = 0.5


@dataclass(frozen=True)
class Budget:
    """Trials × epochs a sweep will cost: the worst case (nothing pruned) and the expected case."""

    n_trials: int  # trials the study will run (a grid stops when exhausted)
    epochs_per_trial: int  # train.epochs: the most a trial can run
    pruner: str
    worst_case_epochs: int
    expected_epochs: float
    assumption: str  # how expected_epochs was reckoned
    random_trials: int  # trials the sampler draws at random before modelling the space
    notes: tuple[str, ...] = ()
    epoch_seconds: float | None = None
    service: ServiceCost | None = None  # start-up, per-trial and report cost, measured on the spot

    @property
    def service_seconds(self) -> float:
        return self.service.seconds(self.n_trials) if self.service is not None else 0.0

    @property
    def worst_case_seconds(self) -> float | None:
        return None if self.epoch_seconds is None else self.worst_case_epochs * self.epoch_seconds + self.service_seconds

    @property
    def expected_seconds(self) -> float | None:
        return None if self.epoch_seconds is None else self.expected_epochs * self.epoch_seconds + self.service_seconds


def estimate_budget(sweep: SweepSection, space: SearchSpace, *, epoch_seconds: float | None = None, service: ServiceCost | None = None) -> Budget:
    """Worst-case and expected epochs (and seconds, given one epoch's time) of the configured sweep.

    Expected epochs by pruner:

    * ``none``: the worst case.
    * ``hyperband``: ``n_trials × sum(share × expected_epochs_per_trial)`` over the brackets
      (steady state; see ``expected_epochs_per_trial``).
    * ``median``: an approximation. Nothing is pruned until ``max(n_startup_trials, 1)`` trials
      have completed (``optuna/pruners/_percentile.py`` 179-186), so those run every epoch; each
      later trial is assumed pruned with probability ``MEDIAN_PRUNED_FRACTION`` at its first check,
      epoch ``max(n_warmup_steps, 1)`` (192-194), and otherwise to run every epoch. The median is
      taken over completed trials only, which are survivors, and checks go on at every epoch, so
      more trials are pruned in practice: read it as an upper estimate.
    """
    epochs = sweep.max_epochs
    n_trials = sweep.n_trials
    notes: list[str] = []
    if sweep.sampler == "grid":
        grid_size = math.prod(len(values) for values in space.grid().values())
        if grid_size < n_trials:
            notes.append(f"the grid has {grid_size} points: the sweep stops after {grid_size} of sweep.n_trials={n_trials}")
        n_trials = min(n_trials, grid_size)
    worst = n_trials * epochs
    pruner = sweep.pruner
    if pruner == "hyperband":
        brackets = configured_brackets(sweep)
        per_trial = sum(b.share * b.expected_epochs_per_trial for b in brackets)
        expected = n_trials * per_trial
        assumption = (
            f"{len(brackets)} Hyperband brackets weighted by their shares, {per_trial:.3g} epochs per trial in steady "
            f"state; the first trials of each bracket are promoted more often, so early trials cost more"
        )
    elif pruner == "median":
        startup = min(n_trials, max(sweep.median.n_startup_trials, 1))
        first_check = max(sweep.median.n_warmup_steps, 1)
        later = MEDIAN_PRUNED_FRACTION * min(first_check, epochs) + (1 - MEDIAN_PRUNED_FRACTION) * epochs
        expected = startup * epochs + (n_trials - startup) * later
        assumption = (
            f"the first {startup} trials run all epochs; later ones are pruned at epoch {first_check} with probability "
            f"{MEDIAN_PRUNED_FRACTION:g}, else run all epochs (likely an upper estimate)"
        )
    else:
        expected = float(worst)
        assumption = "no pruner: every trial runs all epochs"
    random_trials = n_trials if sweep.sampler == "random" else 0
    if sweep.sampler == "tpe":
        random_trials = min(n_trials, sweep.tpe.n_startup_trials)
        if pruner == "hyperband":
            # Optuna's HyperbandPruner docstring (lines 39-52) says TPE starts up per bracket; in 5.0 it
            # does not: TPE counts and models trials via Study._get_trials, which the bracket study
            # leaves unfiltered (_hyperband.py 305-313 filters get_trials only; _tpe/sampler.py 500, 515, 584).
            notes.append(
                f"TPE draws its first {random_trials} trials at random over the whole study, not per bracket, "
                "and models all brackets' trials together (Optuna 5.0)"
            )
    return Budget(n_trials, epochs, pruner, worst, expected, assumption, random_trials, tuple(notes), epoch_seconds, service)


class _EpochsTimed(TrialStopped):
    """Ends a timing run once enough epochs have been timed."""


@dataclass
class _EpochClock:
    """A reporter that stamps the wall clock at each epoch's report and stops after ``epochs``."""

    epochs: int
    stamps: list[float] = field(default_factory=lambda: [time.perf_counter()])

    def report(self, epoch: int, **metrics: float) -> None:
        self.stamps.append(time.perf_counter())
        if epoch >= self.epochs:
            raise _EpochsTimed()


def measure_epoch_seconds(*, objective: Mapping[str, Any], train: Mapping[str, Any], epochs: int = 2) -> float:
    """Wall seconds of one epoch (training and evaluation) of a built-in objective (its ``objective`` section).

    Trains with the ``train`` section as configured (its schedule built for all ``train.epochs``) and stops
    after ``epochs`` epochs. Returns the median of epochs 2.. (the first pays for model building,
    data transfer and warm-up), or the first epoch's time when only one ran. Excludes the sweep's
    own per-epoch overhead (Optuna and MLflow writes).
    """
    from sweeps.train.training import train as run_training  # torch: imported only when measuring

    target = "???" if OmegaConf.is_missing(objective, "target") else str(objective.get("target") or "")
    try:
        make_task = objective_hook(target, "make_task")
    except ImportError as err:
        raise ConfigError("objective.target", target, f"cannot import {err.name or 'its module'} ({err})") from None
    if make_task is None:
        raise ConfigError("objective.target", target, "timing an epoch needs the objective's module to define make_task(cfg.objective) -> Task")
    task = make_task(objective)  # loading data is not part of an epoch
    clock = _EpochClock(max(1, epochs))
    try:
        run_training(task, train, clock)
    except _EpochsTimed:
        pass
    durations = [later - earlier for earlier, later in zip(clock.stamps, clock.stamps[1:])]
    return statistics.median(durations[1:]) if len(durations) > 1 else durations[0]


def describe_space(space: SearchSpace) -> list[tuple[str, str, str]]:
    """``(name, distribution in words, config key)`` per parameter, e.g. ``log-uniform [1e-04, 0.3]``."""
    return [(p.name, describe_param(p), p.target) for p in space.params]


def describe_param(param: SearchParam) -> str:
    dist = param.distribution
    if param.zero_below is not None and isinstance(dist, FloatDistribution):
        # The log range was extended below `low` so that a draw falls below it with p = zero_prob.
        zero_prob = math.log(param.zero_below / dist.low) / math.log(dist.high / dist.low)
        words = f"0 with p={zero_prob:.3g}, else {_describe(FloatDistribution(param.zero_below, dist.high, log=True))}"
    else:
        words = _describe(dist)
    if param.when:
        words += " when " + " and ".join(_condition(name, allowed) for name, allowed in param.when.items())
    return words


def _describe(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return "choice " + ", ".join(str(c) for c in dist.choices)
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        kind = "uniform" if isinstance(dist, FloatDistribution) else "integer"
        words = f"{'log-' if dist.log else ''}{kind} [{_number(dist.low)}, {_number(dist.high)}]"
        if dist.step is not None and dist.step != 1:
            words += f" step {_number(dist.step)}"
        return words
    return repr(dist)


def _condition(name: str, allowed: tuple) -> str:
    if len(allowed) == 1:
        return f"{name}={allowed[0]}"
    return f"{name} in {{{', '.join(str(a) for a in allowed)}}}"


def _number(value: float) -> str:
    """``1e-04``, ``0.3``, ``128``: exponent form for very small or large magnitudes."""
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return f"{value:.4g}"


def preview_tables(sweep: SweepSection, space: SearchSpace, budget: Budget, brackets: Sequence[Bracket]) -> list[Table]:
    """The search space, the sampler and pruner, Hyperband's brackets (if any) and the budget."""
    tables = []
    space_table = Table(title=f"search space ({len(space.params)} parameters)")
    for column in ("parameter", "distribution", "sets"):
        space_table.add_column(column)
    for row in describe_space(space):
        space_table.add_row(*row)
    tables.append(space_table)

    setup = Table(title="sampler and pruner", show_header=False)
    setup.add_column("setting")
    setup.add_column("value")
    setup.add_row("trials", f"{budget.n_trials} × up to {budget.epochs_per_trial} epochs (train.epochs)")
    setup.add_row("sampler", _sampler_words(sweep, budget))
    setup.add_row("pruner", _pruner_words(sweep, brackets))
    for note in budget.notes:
        setup.add_row("note", note)
    tables.append(setup)

    if brackets:
        study_name = sweep.study_name
        bracket_table = Table(title="Hyperband brackets", caption="expected epochs: steady state, keeping 1/reduction_factor at each rung")
        for column in ("bracket", "share", f"trials of {study_name}", "rungs (epochs)", "expected epochs/trial"):
            bracket_table.add_column(column, justify="right")
        counts = [0] * len(brackets)
        for number in range(budget.n_trials):
            counts[bracket_of_trial(study_name, number, brackets)] += 1
        for bracket, count in zip(brackets, counts):
            rungs = ", ".join(str(r) for r in bracket.rungs)
            bracket_table.add_row(str(bracket.index), f"{bracket.share:.1%}", str(count), rungs, f"{bracket.expected_epochs_per_trial:.2f}")
        tables.append(bracket_table)

    seconds = "" if budget.epoch_seconds is None else f" at {budget.epoch_seconds:.3g} s/epoch"
    budget_table = Table(title=f"budget of {budget.n_trials} trials{seconds}")
    for column, justify in (("case", "left"), ("epochs", "right"), ("time", "right"), ("basis", "left")):
        budget_table.add_column(column, justify=justify)
    service = ""
    if budget.service is not None:
        cost = budget.service
        service = f"; plus the service: {cost.startup_seconds:.1f} s start-up, {cost.per_trial_seconds * 1000:.0f} ms per trial, {cost.close_seconds:.1f} s report"
    budget_table.add_row("worst case", str(budget.worst_case_epochs), _duration(budget.worst_case_seconds), "nothing pruned" + service)
    budget_table.add_row(
        f"expected ({budget.pruner})", f"{budget.expected_epochs:.1f}", _duration(budget.expected_seconds), budget.assumption + service
    )
    tables.append(budget_table)
    return tables


def _sampler_words(sweep: SweepSection, budget: Budget) -> str:
    sampler = sweep.sampler
    if sampler == "tpe":
        return f"tpe: {budget.random_trials} random startup trials, then TPE (multivariate={sweep.tpe.multivariate})"
    if sampler == "random":
        return "random"
    if sampler == "gp":
        return f"gp: {sweep.gp.n_startup_trials} random startup trials, then a Gaussian process (Optuna's GPSampler)"
    return "grid: every combination once"


def _pruner_words(sweep: SweepSection, brackets: Sequence[Bracket]) -> str:
    if sweep.pruner == "hyperband":
        hb = sweep.hyperband
        return (
            f"hyperband: {len(brackets)} brackets, min_resource {hb.min_resource}, "
            f"max_resource {sweep.max_epochs} (train.epochs), reduction_factor {hb.reduction_factor}"
        )
    if sweep.pruner == "median":
        return f"median: after {sweep.median.n_startup_trials} completed trials, from epoch {max(sweep.median.n_warmup_steps, 1)}"
    return "none: every trial runs all epochs"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
