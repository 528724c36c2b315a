"""Schedule-aware rung evaluation: do early rungs predict where a trial finishes, and what does it buy?

For each suite (objective × schedule) the REAL trainer trains N configurations fully, once per
rung strategy (``train.rung_eval=cooldown``, ``averaged``; ``raw`` is the live curve, bit-identical in
every run, which the script checks). Configurations: a scrambled Sobol sample (Optuna's QMCSampler)
of the default search space, LR log-uniform over [1e-4, 0.3] (3.5 decades, from far too low to
collapse); digits samples batch size, weight decay and warmup too, tiny_transformer fixes batch 64
(``~search.batch_size``) to stay cheap. Every arm runs 9 epochs (``train.epochs``, Hyperband's max).

Then, per Hyperband rung epoch:
  * Spearman ρ between the rung values and the final val_acc (configs that finish; ties averaged);
  * the share of the eventually-top configs (final ≥ 99 % of the best, i.e. within 1 %) that
    successive halving at that rung would drop (keep the top 1/reduction_factor by rung value), and
    how many of those were still in their linear warmup at that rung (warmup_frac · epochs > rung);
and the sweep it buys: epochs until a COMPLETE trial reaches 99 % of the best final val_acc, for
real Optuna samplers and pruners (``sweeps.search.study.make_sampler`` / ``make_pruner``) replaying the
recorded curves (each trial samples the real space and takes the nearest recorded config, parameters
normalised on their own scale), median over seeds, against random search without pruning. Cooldown
steps are charged at every rung of ``rung_epochs_for`` (the union over brackets, what the trainer
does), as ``extra_steps / steps_per_epoch``; one arm charges only the trial's own bracket's rungs.
Arms share sampler seeds, so a paired table counts the seeds where a strategy beat raw. One more arm
replays ``WarmupExemptHyperband``: raw values, but a rung inside a trial's warmup does not judge it. On digits/wsd
(cooldown recorded at every epoch) Hyperband's min_resource / reduction_factor are varied too.

Recorded curves go to ``results/rung_eval_curves[_quick].json``; ``--replay`` reuses them; the tables'
numbers go to ``results/rung_eval[_quick].json`` (``rung_eval_<suites>.json`` with ``--suites``, so a
partial run keeps the full record). Full run ≈ 8 min recording + 4 min replay on 2 busy cores;
``--quick`` ≈ 4 min.

``mnist1d/warmup_cosine`` (27 epochs, the objective's default, rungs 1, 3, 9) records nothing here: it
replays the "space" configs of ``efficiency.py``'s ``results/curves_mnist1d.json``, whose single run
per config carries the raw curve and the ``cooldown`` and ``averaged`` rung values side by side
(``common.every_rung_strategy``). ``--suites mnist1d/warmup_cosine`` replays it alone.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from common import compose, console, fmt, fmt_spread, print_header, quiet, ratio, read_json, sample_raw_params, steps_per_epoch, summarize, table, write_json
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

EPOCHS = 9
TARGET = 0.99  # share of the best final value; also "top" = final within 1 % of the best
TARGETS = (0.99, 0.995)  # 99 % is the headline; the top configs of a suite may all lie within 1 %, so 99.5 % too
BASELINE = "random, no pruning"
HB_DEFAULT = (1, 3)  # (min_resource, reduction_factor) of conf/sweep/default.yaml
HB_VARIANTS = [(1, 3), (1, 2), (2, 3), (3, 3)]
RECORD = {  # strategy -> trainer overrides; raw comes with every run
    "cooldown": ["train.rung_eval=cooldown", "train.rung_cooldown_frac=0.2"],
    "averaged": ["train.rung_eval=averaged", "train.rung_ema_horizon=0.2"],
}
VARIANT_STRATEGIES = ("raw", "cooldown", "averaged")
DEFAULT_WARMUP_FRAC = 0.05  # conf/train/default.yaml, for suites that do not search warmup_frac
RECORD_EXTRA = {  # cheap on digits only: the knobs' neighbours
    "cooldown 0.1": ["train.rung_eval=cooldown", "train.rung_cooldown_frac=0.1"],
    "averaged h=0.5": ["train.rung_eval=averaged", "train.rung_ema_horizon=0.5"],
}


@dataclass(frozen=True)
class Suite:
    objective: str
    schedule: str
    n_configs: int
    n_quick: int
    space_overrides: tuple[str, ...] = ()
    cooldown_rungs: tuple[int, ...] | None = None  # None: every epoch but the last (any Hyperband variant replays)
    extras: bool = False
    epochs: int = EPOCHS  # train.epochs, Hyperband's max resource
    from_curves: str | None = None  # replay efficiency.py's recording (results/<name>.json, its "space" configs) instead of recording

    @property
    def name(self) -> str:
        return f"{self.objective}/{self.schedule}"

    @property
    def budgets(self) -> tuple[int, int]:
        """Anytime view: the best final val_acc of a complete trial within 5 and 15 full trials."""
        return (5 * self.epochs, 15 * self.epochs)

    @property
    def budget_epochs(self) -> int:
        """A replayed sweep stops here (100 full trials); a target not reached by then counts as ∞."""
        return 100 * self.epochs


SUITES = [
    Suite("digits_mlp", "wsd", 120, 40, extras=True),
    Suite("digits_mlp", "warmup_cosine", 120, 40),  # the default schedule: does branching from a decaying LR help?
    Suite("tiny_transformer", "wsd", 20, 6, ("~search.batch_size",), cooldown_rungs=(1, 3)),
    # efficiency.py records mnist1d's default space once with raw, cooldown and averaged rung values
    # at the default Hyperband rungs (1, 3, 9 of 27 epochs): no second recording here.
    Suite("mnist1d", "warmup_cosine", 220, 220, cooldown_rungs=(1, 3, 9), epochs=27, from_curves="curves_mnist1d"),
]


# ------------------------------------------------------------------------------------------------
# Recording with the real trainer.


def suite_cfg(suite: Suite, *overrides: str):
    return compose(suite.objective, f"train.epochs={suite.epochs}", f"train.schedule={suite.schedule}", "train.device=cpu",
                   *suite.space_overrides, *overrides)


def train_once(suite: Suite, raw: dict[str, Any], space, overrides: list[str], rung_epochs: frozenset[int]) -> dict[str, Any]:
    from sweeps.search.space import apply_params
    from sweeps.train.reporter import Diverged, recording_reporter

    cfg = apply_params(suite_cfg(suite, *overrides), space.applied(raw))
    module = importlib.import_module(f"objectives.{suite.objective}")
    reporter = recording_reporter("val_acc")
    reporter.rung_epochs = rung_epochs
    diverged_at_step = None
    start = time.perf_counter()
    try:
        module.train(cfg, reporter)
    except Diverged as stop:
        diverged_at_step = int(stop.step)
    history = reporter.history
    rung, extra, previous = {}, {}, 0.0
    for h in history:
        if "rung_val_acc" in h:
            rung[int(h["epoch"])] = h["rung_val_acc"]
            if "rung_extra_steps" in h:
                extra[int(h["epoch"])] = int(h["rung_extra_steps"] - previous)
                previous = h["rung_extra_steps"]
    return {"curve": [h["val_acc"] for h in history], "rung": rung, "extra_steps": extra,
            "diverged_at_step": diverged_at_step, "seconds": time.perf_counter() - start}


def record_suite(suite: Suite, n_configs: int, seed: int = 0) -> dict[str, Any]:
    from sweeps.search.space import parse_search_space

    base = suite_cfg(suite)
    space = parse_search_space(base)
    strategies = {**RECORD, **(RECORD_EXTRA if suite.extras else {})}
    cooldown_rungs = frozenset(suite.cooldown_rungs or range(1, suite.epochs))
    configs, start = [], time.perf_counter()
    for i, raw in enumerate(sample_raw_params(space, n_configs, seed)):
        spe = steps_per_epoch(base, int(space.applied(raw).get("train.batch_size", base.train.batch_size)))
        runs = {name: train_once(suite, raw, space, overrides, cooldown_rungs) for name, overrides in strategies.items()}
        curves = {name: run["curve"] for name, run in runs.items()}
        first = next(iter(runs.values()))
        identical = all(c == first["curve"] for c in curves.values())
        if not identical:
            console.print(f"[red]  raw curves differ between strategies for config {i}: the trajectory is not untouched[/red]")
        diverged = first["diverged_at_step"]
        configs.append({
            "params": raw,
            "curve": first["curve"],
            "raw_identical": identical,
            "diverged_at_step": diverged,
            "epochs_run": (diverged + 1) / spe if diverged is not None else float(len(first["curve"])),
            "steps_per_epoch": spe,
            "rung": {name: {str(e): v for e, v in run["rung"].items()} for name, run in runs.items()},
            "extra_steps": {name: {str(e): n for e, n in run["extra_steps"].items()} for name, run in runs.items() if run["extra_steps"]},
            "seconds": {name: run["seconds"] for name, run in runs.items()},
        })
        final = first["curve"][-1] if diverged is None else math.nan
        console.print(f"  [{i + 1}/{n_configs}] {suite.name} lr={raw['lr']:.3g} → {fmt(final)} "
                      f"({' + '.join(f'{s:.1f}' for s in configs[-1]['seconds'].values())} s)")
    return {"objective": suite.objective, "schedule": suite.schedule, "epochs": suite.epochs, "space_overrides": list(suite.space_overrides),
            "cooldown_rungs": sorted(cooldown_rungs), "record_seconds": time.perf_counter() - start, "configs": configs}


# ------------------------------------------------------------------------------------------------
# Rank agreement per rung.


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1 = lowest; ties share their mean rank), as scipy.stats.rankdata."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    result = np.empty(len(values))
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        result[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: Pearson correlation of the average ranks."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator else math.nan


def rung_value(config: dict[str, Any], strategy: str, epoch: int) -> float:
    """What the pruner reads at ``epoch`` under ``strategy`` (NaN: the trial did not get there)."""
    if epoch > len(config["curve"]):
        return math.nan
    if strategy == "raw":
        return config["curve"][epoch - 1]
    return config["rung"][strategy].get(str(epoch), config["curve"][epoch - 1])


def warmup_epochs(params: dict[str, Any], epochs: int = EPOCHS) -> float:
    """Epochs a config spends in its linear warmup (``train.warmup_frac`` of all steps)."""
    return float(params.get("warmup_frac", DEFAULT_WARMUP_FRAC)) * epochs


def final_value(config: dict[str, Any]) -> float:
    return config["curve"][-1] if config["diverged_at_step"] is None else math.nan


def agreement(doc: dict[str, Any], strategies: list[str], epochs: list[int], reduction_factor: int) -> dict[str, Any]:
    configs = doc["configs"]
    finals = np.array([final_value(c) for c in configs])
    best = np.nanmax(finals)
    top = finals >= TARGET * best
    out: dict[str, Any] = {"n_configs": len(configs), "n_finished": int(np.isfinite(finals).sum()), "n_top": int(top.sum()), "best": float(best), "rungs": {}}
    for epoch in epochs:
        row = {}
        for strategy in strategies:
            values = np.array([rung_value(c, strategy, epoch) for c in configs])
            finished = np.isfinite(finals) & np.isfinite(values)
            rho = spearman(values[finished], finals[finished])
            keep = math.ceil(len(configs) / reduction_factor)
            kept = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="mergesort")[:keep]
            dropped = top.copy()
            dropped[kept] = False
            in_warmup = sum(warmup_epochs(configs[i]["params"], int(doc["epochs"])) > epoch for i in np.flatnonzero(dropped))
            row[strategy] = {"spearman": rho, "top_dropped": int(dropped.sum()) / max(1, int(top.sum())), "top_dropped_count": int(dropped.sum()),
                             "top_dropped_in_warmup": int(in_warmup)}
        out["rungs"][str(epoch)] = row
    return out


# ------------------------------------------------------------------------------------------------
# Replay: real samplers and pruners over the recorded curves.


def _unit(dist, value) -> float:
    """``value`` on [0, 1] across ``dist`` (log scale for log params; choices evenly by index)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices.index(value) / max(1, len(dist.choices) - 1)
    low, high, x = float(dist.low), float(dist.high), float(value)
    if isinstance(dist, (FloatDistribution, IntDistribution)) and dist.log:
        low, high, x = math.log(low), math.log(high), math.log(max(x, 1e-300))
    return (x - low) / (high - low)


class WarmupExemptHalving(optuna.pruners.SuccessiveHalvingPruner):
    """Successive halving that does not judge a trial at a rung inside its own warmup.

    Such a trial is promoted past that rung without entering its pool (a marker, not a value, is
    stored), so the rung compares only trials that reached their peak LR. A benchmark prototype: it
    reads Optuna's private rung keys, which is why it is not part of the service.
    """

    def __init__(self, like: optuna.pruners.SuccessiveHalvingPruner, warmup_of: Callable[[FrozenTrial], float]) -> None:
        super().__init__(min_resource=like._min_resource, reduction_factor=like._reduction_factor,
                         min_early_stopping_rate=like._min_early_stopping_rate, bootstrap_count=like._bootstrap_count)
        self.warmup_of = warmup_of

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        value, warmup, trials = trial.intermediate_values[step], self.warmup_of(trial), None
        rung = 0
        while f"completed_rung_{rung}" in trial.system_attrs or f"exempt_rung_{rung}" in trial.system_attrs:
            rung += 1
        while True:
            promotion_step = self._min_resource * self._reduction_factor ** (self._min_early_stopping_rate + rung)
            if step < promotion_step:
                return False
            if math.isnan(value):
                return True
            if promotion_step < warmup:  # this rung falls inside the trial's warmup: promote, record no value
                study._storage.set_trial_system_attr(trial._trial_id, f"exempt_rung_{rung}", True)
                rung += 1
                continue
            trials = trials if trials is not None else study.get_trials(deepcopy=False)
            key = f"completed_rung_{rung}"
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
            competing = sorted([t.system_attrs[key] for t in trials if key in t.system_attrs and t.number != trial.number] + [value])
            if len(competing) <= self._bootstrap_count:
                return True
            keep_index = max(len(competing) // self._reduction_factor - 1, 0)
            if value < competing[-(keep_index + 1)]:  # maximize (val_acc), as every suite here
                return True
            rung += 1


class WarmupExemptHyperband(optuna.pruners.HyperbandPruner):
    """Optuna's Hyperband with :class:`WarmupExemptHalving` in every bracket."""

    def __init__(self, warmup_of: Callable[[FrozenTrial], float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warmup_of = warmup_of

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if not self._pruners:
            self._try_initialization(study)
        self._pruners = [p if isinstance(p, WarmupExemptHalving) else WarmupExemptHalving(p, self.warmup_of) for p in self._pruners]
        return super().prune(study, trial)


class Replay:
    """One suite's recorded configs as points of the normalised search space."""

    def __init__(self, suite: Suite, doc: dict[str, Any]) -> None:
        from sweeps.search.space import parse_search_space

        self.suite, self.doc, self.configs = suite, doc, doc["configs"]
        self.space = parse_search_space(suite_cfg(suite))
        self.points = np.array([[_unit(p.distribution, c["params"][p.name]) for p in self.space.params] for c in self.configs])
        self.best = float(np.nanmax([final_value(c) for c in self.configs]))

    @functools.lru_cache(maxsize=None)
    def config(self, sampler: str, pruner: str, hyperband: tuple[int, int]):
        return suite_cfg(self.suite, f"sweep.sampler={sampler}", f"sweep.pruner={pruner}",
                         f"sweep.hyperband.min_resource={hyperband[0]}", f"sweep.hyperband.reduction_factor={hyperband[1]}")

    def nearest(self, params: dict[str, Any]) -> int:
        point = np.array([_unit(p.distribution, params[p.name]) for p in self.space.params])
        return int(np.argmin(((self.points - point) ** 2).sum(axis=1)))

    def run(self, sampler: str, pruner: str, strategy: str, hyperband: tuple[int, int], seed: int, per_bracket: bool = False,
            max_trials: int = 400, warmup_exempt: bool = False) -> dict[str, float]:
        """One replayed sweep until a complete trial reaches every target; epochs spent, extra included.

        Cooldown is charged at every rung of ``rung_epochs_for`` (what the trainer does when the
        reporter's ``rung_epochs`` is the union over brackets), or with ``per_bracket`` only at the
        rungs of the trial's own Hyperband bracket (``sweeps.search.preview.bracket_of_trial``): the pruner
        reads nothing else, so only the cost changes.
        """
        from sweeps.config.sections import SweepSection
        from sweeps.search.preview import bracket_of_trial, hyperband_brackets
        from sweeps.search.study import make_pruner, make_sampler
        from sweeps.train.rung_eval import rung_epochs_for

        cfg = self.config(sampler, pruner, hyperband).copy()
        cfg.sweep.seed = seed
        rungs = rung_epochs_for(cfg) if pruner != "none" else frozenset()
        epochs, budgets = self.suite.epochs, self.suite.budgets
        brackets = hyperband_brackets(hyperband[0], epochs, hyperband[1])
        reached = {share: math.inf for share in TARGETS}
        best_at = {budget: math.nan for budget in budgets}
        state = {"spent": 0.0, "extra": 0.0, "trials": 0, "pruned": 0, "trials_to_target": math.inf}

        def objective(trial: optuna.Trial) -> float:
            self.space.sample(trial)
            config = self.configs[self.nearest(trial.params)]
            spe, extra = config["steps_per_epoch"], 0.0
            state["trials"] += 1
            charged = rungs
            if per_bracket and rungs:
                charged = frozenset(brackets[bracket_of_trial(trial.study.study_name, trial.number, brackets)].rungs)
            for epoch in range(1, epochs + 1):
                if epoch > len(config["curve"]):  # diverged during this epoch
                    return stop(config["epochs_run"], extra)
                if epoch in rungs:  # where the live runner reports (the pruner of this bracket reads a subset)
                    evaluated = epoch in charged
                    if evaluated:
                        extra += config.get("extra_steps", {}).get(strategy, {}).get(str(epoch), 0) / spe
                    value = rung_value(config, strategy if evaluated else "raw", epoch)
                    if not math.isfinite(value):  # the reporter calls a non-finite rung value diverged
                        return stop(epoch, extra)
                    trial.report(value, epoch)
                    if trial.should_prune():
                        return stop(epoch, extra)
            state["spent"] += epochs + extra
            state["extra"] += extra
            final = config["curve"][-1]
            for share in TARGETS:
                if final >= share * self.best and math.isinf(reached[share]):
                    reached[share] = state["spent"]
                    if share == TARGET:
                        state["trials_to_target"] = state["trials"]
            for budget in budgets:
                if state["spent"] <= budget and not final <= best_at[budget]:  # NaN-safe max
                    best_at[budget] = final
            if all(math.isfinite(spent) for spent in reached.values()) and state["spent"] >= max(budgets):
                trial.study.stop()
            return final

        def over_budget(study: optuna.Study, _trial) -> None:
            if state["spent"] >= self.suite.budget_epochs:
                study.stop()

        def stop(epochs: float, extra: float) -> float:
            state["spent"] += epochs + extra
            state["extra"] += extra
            state["pruned"] += 1
            raise optuna.TrialPruned()

        sweep = SweepSection.from_config(cfg)
        chosen = make_pruner(sweep)
        if warmup_exempt:
            chosen = WarmupExemptHyperband(lambda t: warmup_epochs(t.params, epochs), min_resource=hyperband[0], max_resource=epochs,
                                           reduction_factor=hyperband[1])
        study = optuna.create_study(study_name=f"replay-{seed}", direction="maximize", sampler=make_sampler(sweep, self.space), pruner=chosen)
        study.optimize(objective, n_trials=max_trials, callbacks=[over_budget])
        return {"epochs_to_target": reached[TARGET], **{f"epochs_to_{share}": spent for share, spent in reached.items()},
                **{f"best_at_{budget}": best for budget, best in best_at.items()}, "trials_to_target": state["trials_to_target"],
                "pruned_share": state["pruned"] / max(1, state["trials"]), "extra_share": state["extra"] / state["spent"]}


def replay_arm(replay: Replay, seeds: list[int], sampler: str, pruner: str, strategy: str, hyperband: tuple[int, int],
               per_bracket: bool = False, warmup_exempt: bool = False) -> dict[str, Any]:
    runs = [replay.run(sampler, pruner, strategy, hyperband, seed, per_bracket, warmup_exempt=warmup_exempt) for seed in seeds]
    return {key: summarize(r[key] for r in runs) for key in runs[0]} | {"per_seed": runs}


def replay_suite(replay: Replay, strategies: list[str], seeds: list[int], variant_seeds: list[int]) -> dict[str, Any]:
    arms: dict[str, tuple[Any, ...]] = {
        BASELINE: ("random", "none", "raw", HB_DEFAULT),
        "tpe, no pruning": ("tpe", "none", "raw", HB_DEFAULT),
    }
    for strategy in strategies:
        main = strategy in VARIANT_STRATEGIES  # the knobs' neighbours get the default arm only
        if main:
            arms[f"random+HB, {strategy}"] = ("random", "hyperband", strategy, HB_DEFAULT)
        arms[f"tpe+HB, {strategy}"] = ("tpe", "hyperband", strategy, HB_DEFAULT)
        if main and strategy == "cooldown":  # the cost if the runner set rung_epochs to the trial's own bracket
            arms[f"tpe+HB, {strategy}, own-bracket rungs"] = ("tpe", "hyperband", strategy, HB_DEFAULT, True)
        if strategy == "raw":  # rungs inside a trial's warmup do not judge it (WarmupExemptHyperband)
            arms["tpe+HB, raw, warmup-exempt rungs"] = ("tpe", "hyperband", "raw", HB_DEFAULT, False, True)
    out: dict[str, Any] = {"arms": {}, "variants": {}}
    for name, args in arms.items():
        start = time.perf_counter()
        out["arms"][name] = replay_arm(replay, seeds, *args)
        console.print(f"  replayed {replay.suite.name} {name}: {fmt_spread(out['arms'][name]['epochs_to_target'])} epochs ({time.perf_counter() - start:.1f} s)")
    if variant_seeds:
        for hb in HB_VARIANTS:
            for strategy in VARIANT_STRATEGIES:
                out["variants"][f"{hb[0]}/{hb[1]}/{strategy}"] = replay_arm(replay, variant_seeds, "tpe", "hyperband", strategy, hb)
    return out


# ------------------------------------------------------------------------------------------------
# Tables.


def print_agreement(suite: Suite, found: dict[str, Any], strategies: list[str]) -> None:
    rows = []
    for epoch, row in found["rungs"].items():
        rows.append([epoch, *[fmt(row[s]["spearman"], 3) for s in strategies],
                     *[f"{100 * row[s]['top_dropped']:.0f}% ({row[s]['top_dropped_count']})" for s in strategies],
                     f"{row['raw']['top_dropped_in_warmup']}/{row['raw']['top_dropped_count']}"])
    table(
        f"{suite.name}: rung → final val_acc ({found['n_configs']} configs, {found['n_finished']} finish, best {fmt(found['best'], 4)}, "
        f"{found['n_top']} top within 1%)",
        ["rung epoch", *[f"ρ {s}" for s in strategies], *[f"top dropped {s}" for s in strategies], "raw: dropped top still in warmup"],
        rows,
        caption=f"ρ: Spearman rank correlation rung value vs final (finishing configs). top dropped: share of top configs that keeping the best 1/{HB_DEFAULT[1]} at that rung drops; "
                "still in warmup: of those (raw), how many had not finished their linear warmup at that rung epoch.",
    )


def print_replay(suite: Suite, replayed: dict[str, Any], n_seeds: int, best: float) -> None:
    rows = []
    for name, r in replayed["arms"].items():
        cells = []
        for share in TARGETS:
            e, base = r[f"epochs_to_{share}"], replayed["arms"][BASELINE][f"epochs_to_{share}"]["median"]
            cells += [fmt_spread(e) + (f" ({e['n_inf']}×∞)" if e["n_inf"] else ""), fmt(ratio(base, e["median"]), 2)]
        cells += [fmt(r[f"best_at_{budget}"]["median"], 4) for budget in suite.budgets]
        rows.append([name, *cells, fmt(r["trials_to_target"]["median"]), f"{100 * r['pruned_share']['median']:.0f}%",
                     f"{100 * r['extra_share']['median']:.1f}%"])
    targets = ", ".join(f"{100 * share:g}% = {fmt(share * best, 4)}" for share in TARGETS)
    table(f"{suite.name}: epochs until a complete trial reaches {targets} of the best final val_acc ({fmt(best, 4)}); replay, {n_seeds} seeds",
          ["arm (HB = hyperband), rung strategy", *[c for share in TARGETS for c in (f"to {100 * share:g}% [IQR]", "ratio")],
           *[f"best @{budget} ep" for budget in suite.budgets], "trials to 99%", "pruned", "cooldown epochs"], rows,
          caption=f"ratio = {BASELINE} median ÷ arm median; best @N ep: median best final val_acc within N epochs. Hyperband min_resource="
                  f"{HB_DEFAULT[0]}, reduction_factor={HB_DEFAULT[1]}, max_resource={suite.epochs}; epochs include cooldown branches (their share: last column).")


def print_paired(suite: Suite, replayed: dict[str, Any], strategies: list[str]) -> None:
    """Same sampler seeds, so arms are paired: per seed, did the strategy reach 99 % sooner than raw?"""
    raw = [r["epochs_to_target"] for r in replayed["arms"]["tpe+HB, raw"]["per_seed"]]
    rows = []
    names = [n for s in strategies[1:] for n in (f"tpe+HB, {s}", f"tpe+HB, {s}, own-bracket rungs")] + ["tpe+HB, raw, warmup-exempt rungs"]
    for name in names:
        if name in replayed["arms"]:
            other = [r["epochs_to_target"] for r in replayed["arms"][name]["per_seed"]]
            sooner = sum(o < r for o, r in zip(other, raw))
            later = sum(o > r for o, r in zip(other, raw))
            ratios = [ratio(r, o) for o, r in zip(other, raw) if math.isfinite(o) or math.isfinite(r)]
            rows.append([name, f"{sooner}/{len(raw)}", f"{len(raw) - sooner - later}/{len(raw)}", f"{later}/{len(raw)}",
                         fmt(float(np.median(ratios)), 2) if ratios else "–"])
    table(f"{suite.name}: paired by seed against tpe+HB raw (epochs to 99%)",
          ["arm", "sooner", "tie", "later", "median per-seed ratio raw÷arm"], rows)


def print_variants(suite: Suite, replayed: dict[str, Any], n_seeds: int, base: float) -> None:
    rows = []
    for hb in HB_VARIANTS:
        cells = []
        for s in VARIANT_STRATEGIES:
            e = replayed["variants"][f"{hb[0]}/{hb[1]}/{s}"]["epochs_to_target"]
            cells += [fmt_spread(e) + (f" ({e['n_inf']}×∞)" if e["n_inf"] else ""), fmt(ratio(base, e["median"]), 2)]
        rows.append([f"min {hb[0]}, rf {hb[1]}", *cells])
    table(f"{suite.name}: tpe + hyperband settings × rung strategy, epochs to 99% of the best, {n_seeds} seeds (ratio = random-no-pruning median ÷ arm)",
          ["hyperband", *[c for s in VARIANT_STRATEGIES for c in (f"{s} [IQR]", "ratio")]], rows)


# ------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer configs (40 digits, 6 transformer) and 5 seeds")
    parser.add_argument("--replay", action="store_true", help="reuse results/rung_eval_curves[_quick].json instead of training")
    parser.add_argument("--seeds", type=int, help="replay seeds per arm (default: 5 quick, 20 full)")
    parser.add_argument("--suites", nargs="+", help="e.g. digits_mlp/wsd (default: all)")
    args = parser.parse_args()
    command = print_header("rung evaluation: raw vs cooldown vs averaged (real trainer, then replayed sweeps)")
    quiet()
    curves_name = "rung_eval_curves_quick" if args.quick else "rung_eval_curves"
    seeds = list(range(args.seeds or (5 if args.quick else 20)))
    suites = [s for s in SUITES if not args.suites or s.name in args.suites]
    stored = read_json(curves_name) if args.replay else None
    if args.replay and stored is None:
        raise SystemExit(f"--replay: benchmarks/results/{curves_name}.json not found; run without --replay first")
    recorded: dict[str, Any] = dict(stored["suites"]) if stored else {}
    borrowed: dict[str, Any] = {}
    recorded_now = False
    for suite in suites:
        if suite.from_curves:
            borrowed[suite.name] = borrow_recording(suite)
        elif suite.name not in recorded:
            n = suite.n_quick if args.quick else suite.n_configs
            console.print(f"recording {suite.name}: {n} configs × {suite.epochs} epochs × {len(RECORD) + (len(RECORD_EXTRA) if suite.extras else 0)} strategy runs")
            recorded[suite.name] = record_suite(suite, n)
            recorded_now = True
    if recorded_now:
        write_json(curves_name, {"suites": recorded}, command=command)

    results: dict[str, Any] = {"seeds": len(seeds), "epochs": {s.name: s.epochs for s in suites}, "suites": {}}
    for suite in suites:
        doc = borrowed.get(suite.name) or recorded[suite.name]
        strategies = ["raw", *RECORD, *(RECORD_EXTRA if suite.extras else {})]
        epochs = sorted({r for hb in HB_VARIANTS for r in _hb_rungs(*hb, suite.epochs)} & set(doc["cooldown_rungs"]))
        found = agreement(doc, strategies, epochs, HB_DEFAULT[1])
        replay = Replay(suite, doc)
        variant_seeds = seeds[: max(5, len(seeds) // 2)] if suite.extras else []  # cooldown recorded at every epoch
        start = time.perf_counter()
        replayed = replay_suite(replay, strategies, seeds, variant_seeds)
        print_agreement(suite, found, strategies)
        print_replay(suite, replayed, len(seeds), replay.best)
        print_paired(suite, replayed, strategies)
        if variant_seeds:
            print_variants(suite, replayed, len(variant_seeds), replayed["arms"][BASELINE]["epochs_to_target"]["median"])
        identical = all(c["raw_identical"] for c in doc["configs"])
        console.print(f"  raw curves identical across strategy runs: {identical}; replay {time.perf_counter() - start:.0f} s; "
                      f"recording took {doc['record_seconds']:.0f} s")
        results["suites"][suite.name] = {"agreement": found, "replay": replayed, "raw_identical": identical, "record_seconds": doc["record_seconds"]}
    name = "rung_eval_quick" if args.quick else "rung_eval"
    if args.suites:  # a run on some suites keeps the record of all
        name += "_" + "_".join(s.name.replace("/", "-") for s in suites)
    write_json(name, results, command=command)


def borrow_recording(suite: Suite) -> dict[str, Any]:
    """``efficiency.py``'s recording of the suite's objective (``--record`` there), in this script's
    format: its "space" configs (the Sobol sample of the default space) with their rung values."""
    doc = read_json(str(suite.from_curves))
    if doc is None or not doc.get("rung_epochs"):
        raise SystemExit(f"benchmarks/results/{suite.from_curves}.json with rung values not found: "
                         f"run `benchmarks/efficiency.py --objectives {suite.objective} --record --record-only` first")
    if int(doc["epochs"]) != suite.epochs:
        raise SystemExit(f"{suite.from_curves}.json has {doc['epochs']} epochs per config, the suite {suite.epochs}")
    space = [c for c in doc["configs"] if c["source"] == "space"]
    return {"objective": suite.objective, "schedule": suite.schedule, "epochs": suite.epochs, "space_overrides": [],
            "cooldown_rungs": list(doc["rung_epochs"]), "record_seconds": sum(c["seconds"] for c in space),
            "configs": [{**c, "raw_identical": True} for c in space]}  # one run per config: raw is the run itself


def _hb_rungs(min_resource: int, reduction_factor: int, epochs: int = EPOCHS) -> list[int]:
    rungs, rung = [], min_resource
    while rung < epochs:
        rungs.append(rung)
        rung *= reduction_factor
    return rungs


if __name__ == "__main__":
    main()
