"""LCBench (YAHPO Gym surrogate): the sweeps default against random search and stock Optuna.

Every arm runs real Optuna samplers and pruners (the service's own study factory for the sweeps
default) on the same tasks, seeds and budget; each trial's learning curve is the surrogate's answer
for its configuration, reported epoch by epoch as ``objective=lcbench`` does in a live sweep. The
budget is counted both in epochs and in simulated training seconds (the surrogate's ``time``); each
run goes on until both budgets are spent, and every figure is read at its own axis's budget.

- **Speed-up** of an arm: the budget random search without pruning spends to reach its own median
  final value (median over seeds) ÷ the budget the arm spends to reach that value (median over
  seeds; a seed that never reaches it counts as infinite). Only complete trials count: a config
  you can use is one that was trained to the end.
- **Normalized regret**: (best − best so far) ÷ (best − worst), with best and worst over a large
  random reference sample of final values per task (cached in ``results/lcbench_reference.json``).
- **Workers**: the same arm with W asynchronous workers on one study, simulated on the surrogate's
  clock: each worker asks for a trial when its last one ends, reports as its epochs finish, and
  sees the others' running trials (TPE's constant liar).

    .venv/bin/python benchmarks/lcbench.py --quick        # CI-sized: 1 task, 3 seeds, 20 runs' budget
    .venv/bin/python benchmarks/lcbench.py                # the README's tables (headline tasks + all 34)

Needs the surrogate data (``SWEEPS_YAHPO_DATA``, or ``--data``) and ``pip install 'sweeps[lcbench]'``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, console, fmt, print_header, quiet, summarize, table  # noqa: E402

HEADLINE = ("167168", "189873", "189906")  # LCBench's tasks in the YAHPO-SO suite
EPOCHS = 52


# ------------------------------------------------------------------------------------------------
# Arms: (sampler, pruner, epochs at which a trial reports) for a seed.


@dataclass(frozen=True)
class Arm:
    name: str
    make: Callable[[int], tuple[object, object, frozenset[int]]]
    about: str
    max_seeds: int | None = None  # the costly samplers run on the first seeds only (their cost is in the table)
    fingerprint: str = ""  # what the arm's runs depend on beyond its name (the service's settings)


def stock_arms() -> list[Arm]:
    """The baselines, as an Optuna user would write them (every epoch reported)."""
    import optuna

    every = frozenset(range(1, EPOCHS))
    none = optuna.pruners.NopPruner

    def hyperband(seed: int, **kw):
        return optuna.pruners.HyperbandPruner(min_resource=kw.get("min_resource", 1), max_resource=EPOCHS, reduction_factor=3)

    return [
        Arm("random", lambda s: (optuna.samplers.RandomSampler(seed=s), none(), frozenset()), "random search, no pruning (the baseline)"),
        Arm("random+HB", lambda s: (optuna.samplers.RandomSampler(seed=s), hyperband(s, min_resource=2), every),
            "random + Hyperband (min 2 epochs, factor 3)"),
        Arm("TPE", lambda s: (optuna.samplers.TPESampler(seed=s), none(), frozenset()), "Optuna's TPE, defaults, no pruning"),
        Arm("TPE+median", lambda s: (optuna.samplers.TPESampler(seed=s), optuna.pruners.MedianPruner(), every),
            "Optuna's TPE + median pruner, defaults (YAHPO Gym's 'optuna' arm)", max_seeds=6),
        Arm("TPE+HB", lambda s: (optuna.samplers.TPESampler(seed=s), optuna.pruners.HyperbandPruner(), every),
            "Optuna's TPE + Hyperband, Optuna's defaults (min 1 epoch)", max_seeds=6),
        Arm("GP", lambda s: (optuna.samplers.GPSampler(seed=s), none(), frozenset()), "Optuna's GP sampler, no pruning", max_seeds=3),
    ]


def service_arm(name: str, overrides: Sequence[str] = (), about: str = "the sweeps default (objective=lcbench)") -> Arm:
    """The service's own study factory on ``objective=lcbench`` plus ``overrides``."""
    from sweeps.config.compose import compose_config
    from sweeps.config.sections import SweepSection
    from sweeps.search.space import parse_search_space
    from sweeps.search.study import make_pruner, make_sampler, report_epochs

    def make(seed: int):
        cfg = compose_config(["objective=lcbench", f"sweep.seed={seed}", *overrides])
        sweep = SweepSection.from_config(cfg)
        return make_sampler(sweep, parse_search_space(cfg)), make_pruner(sweep), report_epochs(sweep)

    from omegaconf import OmegaConf

    cfg = compose_config(["objective=lcbench", *overrides])
    settings = {"sweep": OmegaConf.to_container(cfg.sweep, resolve=True), "search": OmegaConf.to_container(cfg.search), "epochs": cfg.train.epochs}
    settings["sweep"].pop("study_name", None)
    return Arm(name, make, about, fingerprint=json.dumps(settings, sort_keys=True, default=str))


# ------------------------------------------------------------------------------------------------
# Replay: W workers on one in-memory study, on the surrogate's clock.


@dataclass
class Trace:
    """What one run spent and found: a row per ended trial (cumulative epochs, seconds, best so far)."""

    epochs: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)
    n_trials: int = 0
    n_complete: int = 0

    def add(self, epochs: float, seconds: float, best: float) -> None:
        self.epochs.append(epochs)
        self.seconds.append(seconds)
        self.best.append(best)


def budget_to_reach(trace: Trace, target: float, axis: str, budget: float) -> float:
    """The budget spent when a complete trial first reached ``target``; inf if not within ``budget``."""
    spent = getattr(trace, axis)
    for used, best in zip(spent, trace.best):
        if used > budget:
            break
        if best >= target:
            return used
    return math.inf


def best_within(trace: Trace, axis: str, budget: float) -> float:
    """The best complete value once ``budget`` was spent (-inf when no trial completed)."""
    best = -math.inf
    for used, value in zip(getattr(trace, axis), trace.best):
        if used > budget:
            break
        best = value
    return best


def speedups(traces: dict[str, list[Trace]], axis: str, budget: float, baseline: str = "random") -> dict[str, dict]:
    """Per arm: the budget to reach the baseline's median final value (median over seeds), and the speed-up.

    The baseline's median final value is, by definition, what it holds at the full ``budget``: the
    speed-up is ``budget`` ÷ the arm's median budget to the target (0 when more than half of its
    seeds never reach it). The baseline's own row is 1.
    """
    target = float(np.median([best_within(t, axis, budget) for t in traces[baseline]]))
    out = {}
    for arm, runs in traces.items():
        stats = summarize(budget_to_reach(t, target, axis, budget) for t in runs)
        value = stats["median"]
        out[arm] = {"target": target, "budget_to_target": stats, "speedup": budget / value if math.isfinite(value) and value > 0 else 0.0}
    out[baseline]["speedup"] = 1.0  # by definition (with an even number of seeds its own median can be "never")
    return out


def regret_curve(trace: Trace, axis: str, grid: np.ndarray, best: float, worst: float) -> np.ndarray:
    """Normalized regret at each budget of ``grid`` (1 before any trial completes)."""
    spent = np.asarray(getattr(trace, axis))
    found = np.asarray(trace.best)
    index = np.searchsorted(spent, grid, side="right") - 1
    so_far = np.where(index >= 0, found[np.clip(index, 0, None)], -np.inf)
    so_far = np.maximum(so_far, worst)
    return (best - so_far) / (best - worst)


def replay(surrogate, cfg, space, arm: Arm, seed: int, budget_epochs: float, budget_seconds: float, workers: int = 1,
           study_name: str | None = None, max_trials: int | None = None, keep_study: bool = True):  # fmt: skip
    """One run of ``arm``: trials until both budgets are spent (or ``max_trials``), ``workers`` at a time.

    Returns the trace; the in-memory study is ``trace.study``. Hyperband picks a trial's bracket
    from a hash of the study name: give a live sweep's name to replay that sweep trial for trial.
    """
    import optuna
    from omegaconf import OmegaConf

    from objectives.lcbench import KEYS, lcbench_config

    # the trial's config as the objective reads it, without composing one per trial (the cost would dominate)
    base = {key: OmegaConf.select(cfg, key) for key in KEYS}
    sampler, pruner, reports = arm.make(seed)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner, study_name=study_name or f"{arm.name}-{seed}")
    trace, best = Trace(), -math.inf
    spent_epochs = spent_seconds = 0.0
    clock: list[tuple[float, int, int]] = []  # (time its next epoch ends, order, worker)
    running: dict[int, tuple[object, dict[str, np.ndarray], int, float]] = {}  # worker -> (trial, curve, epoch, start)
    order = 0

    def start(worker: int, now: float) -> None:
        nonlocal order
        trial = study.ask()
        config = lcbench_config({**base, **space.sample(trial)})
        curve = {name: values[0] for name, values in surrogate.curves([config]).items()}
        running[worker] = (trial, curve, 0, now)
        heapq.heappush(clock, (now + curve["sim_time"][0], order, worker))
        order += 1

    for worker in range(workers):
        start(worker, 0.0)
    while clock:
        now, _, worker = heapq.heappop(clock)
        trial, curve, done, began = running[worker]
        epoch = done + 1
        value = float(curve["val_acc"][epoch - 1])
        ended = None
        if epoch == EPOCHS:
            study.tell(trial, value)
            best = max(best, value)
            trace.n_complete += 1
            ended = epoch
        elif epoch in reports:
            trial.report(value, epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                ended = epoch
        if ended is None:
            running[worker] = (trial, curve, epoch, began)
            heapq.heappush(clock, (began + curve["sim_time"][epoch], order, worker))
            order += 1
            continue
        spent_epochs += ended
        spent_seconds += float(curve["sim_time"][ended - 1])
        trace.n_trials += 1
        trace.add(spent_epochs, spent_seconds, best)
        del running[worker]
        if (spent_epochs < budget_epochs or spent_seconds < budget_seconds) and (max_trials is None or trace.n_trials + len(running) < max_trials):
            start(worker, now)
    if keep_study:
        trace.study = study
    return trace


def live_check(data: str, task: str, seeds: Sequence[int], n_trials: int) -> list[dict]:
    """Live ``sweeps run objective=lcbench`` sweeps (SQLite, MLflow) against their replay, trial by trial."""
    from benchmarks.common import scratch, store_overrides
    from objectives.lcbench import Surrogate
    from sweeps.config.compose import compose_config
    from sweeps.run.sweep import plan_sweep, run_sweep
    from sweeps.search.space import parse_search_space

    rows = []
    for seed in seeds:
        with scratch() as folder:
            name = f"live-{task}-{seed}"
            overrides = ["objective=lcbench", f"objective.data_dir={data}", f"objective.instance={task}", f"sweep.seed={seed}",
                         f"sweep.n_trials={n_trials}", f"sweep.study_name={name}"]  # fmt: skip
            started = time.perf_counter()
            live = run_sweep(plan_sweep(compose_config([*overrides, *store_overrides(folder)]))).study.get_trials()
            seconds = time.perf_counter() - started
        cfg = compose_config(overrides)
        arm = service_arm("sweeps default", [f"objective.data_dir={data}", f"objective.instance={task}"])
        replayed = replay(Surrogate(task, data), cfg, parse_search_space(cfg), arm, seed, math.inf, math.inf, study_name=name, max_trials=n_trials)
        again = replayed.study.get_trials()
        same = sum(a.params == b.params and a.state == b.state and _close(a.value, b.value) for a, b in zip(live, again))
        best_live = max((t.value for t in live if t.value is not None and t.state.name == "COMPLETE"), default=math.nan)
        best_replay = max((t.value for t in again if t.value is not None and t.state.name == "COMPLETE"), default=math.nan)
        rows.append({"seed": seed, "trials": len(live), "identical": same, "best_live": best_live, "best_replay": best_replay, "live_seconds": seconds})
    return rows


def _close(a: float | None, b: float | None) -> bool:
    """Equal within float32 noise (the surrogate answers in float32); both None counts as equal."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-6 * max(1.0, abs(a))


# ------------------------------------------------------------------------------------------------
# The random reference sample per task: best and worst final value, a full run's seconds.


def reference(surrogate, n: int, seed: int = 0) -> dict[str, float]:
    from objectives.lcbench import SPACE

    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(n):
        config = {}
        for name, (low, high, log, integer) in SPACE.items():
            x = math.exp(rng.uniform(math.log(low), math.log(high))) if log else rng.uniform(low, high)
            config[name] = int(round(x)) if integer else float(x)
        configs.append(config)
    finals, seconds = [], []
    bench_rows = _final_rows(surrogate, configs)
    for row in bench_rows:
        finals.append(row["val_accuracy"] / 100.0)
        seconds.append(row["time"])
    finals = np.asarray(finals)
    best = float(finals.max())
    # expected random trials to come within 1 % of the best (the task's difficulty)
    near = float(np.mean(finals >= 0.99 * best))
    return {"n": n, "best": best, "worst": float(finals.min()), "median": float(np.median(finals)),
            "full_run_seconds": float(np.median(seconds)), "random_trials_to_99pct": (1.0 / near) if near > 0 else math.inf}  # fmt: skip


def _final_rows(surrogate, configs: list[dict]) -> list[dict]:
    from objectives.lcbench import _benchmark

    bench = _benchmark(surrogate.data_dir, surrogate.instance)
    rows = []
    for i in range(0, len(configs), 2000):
        chunk = configs[i : i + 2000]
        rows += bench.objective_function([{**c, "OpenML_task_id": surrogate.instance, "epoch": EPOCHS} for c in chunk])
    return rows


def references(data: str, tasks: Sequence[str], n: int) -> dict[str, dict]:
    """Cached per task in results/lcbench_reference.json (recomputed if the sample size differs)."""
    from objectives.lcbench import Surrogate

    path = RESULTS / "lcbench_reference.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for task in tasks:
        if cached.get(task, {}).get("n") != n:
            cached[task] = reference(Surrogate(task, data), n)
            changed = True
    if changed:
        path.write_text(json.dumps(cached, indent=1, sort_keys=True))
    return {task: cached[task] for task in tasks}


# ------------------------------------------------------------------------------------------------


def run_task(data: str, task: str, arms: Sequence[Arm], seeds: Sequence[int], budget_runs: float, ref: dict, workers: Sequence[int] = (1,),
             progress: Callable[[str], None] = lambda s: None, use_cache: bool = True) -> dict:  # fmt: skip
    """All arms × seeds on one task; speed-ups on both axes, regret at full budget, seconds per run.

    Each (arm, seed) run is kept in a cache outside the repository (``traces_cache``), keyed by the
    arm's name and description and the budget, so a rerun recomputes only what is new; ``--fresh``
    ignores it (after a change to the service's defaults, say).
    """
    from objectives.lcbench import Surrogate
    from sweeps.config.compose import compose_config
    from sweeps.search.space import parse_search_space

    surrogate = Surrogate(task, data)
    cfg = compose_config(["objective=lcbench", f"objective.data_dir={data}", f"objective.instance={task}"])
    space = parse_search_space(cfg)
    budget = {"epochs": budget_runs * EPOCHS, "seconds": budget_runs * ref["full_run_seconds"]}
    traces: dict[str, list[Trace]] = {}
    wall: dict[str, float] = {}
    cache_path = traces_cache(task)
    cache = pickle.loads(cache_path.read_bytes()) if cache_path.exists() and use_cache else {}
    for arm in arms:
        for w in workers:
            name = arm.name if w == 1 else f"{arm.name} ×{w} workers"
            runs, seconds = [], []
            for seed in seeds[: arm.max_seeds]:
                key = (name, seed, budget_runs, arm.about, arm.fingerprint)
                if key not in cache:
                    started = time.perf_counter()
                    trace = replay(surrogate, cfg, space, arm, seed, budget["epochs"], budget["seconds"], w, keep_study=False)
                    cache[key] = (trace, time.perf_counter() - started)
                    save_to_cache(cache_path, key, cache[key])
                runs.append(cache[key][0])
                seconds.append(cache[key][1])
            traces[name], wall[name] = runs, float(np.nanmean(seconds)) if any(s == s for s in seconds) else math.nan
            progress(f"{task} {name}: {len(runs)} seeds, {wall[name]:.1f} s per run")
    result = {"task": task, "budget": budget, "reference": ref, "arms": {}}
    for axis in ("epochs", "seconds"):
        for name, s in speedups(traces, axis, budget[axis]).items():
            result["arms"].setdefault(name, {})[axis] = s
    for name, runs in traces.items():
        finals = {axis: [best_within(t, axis, budget[axis]) for t in runs] for axis in budget}
        regret = {axis: [float((ref["best"] - max(f, ref["worst"])) / (ref["best"] - ref["worst"])) for f in finals[axis]] for axis in budget}
        result["arms"][name].update({
            "final_best": summarize(finals["epochs"]), "regret_at_budget": {axis: summarize(regret[axis]) for axis in budget},
            "trials": summarize(t.n_trials for t in runs), "complete": summarize(t.n_complete for t in runs), "seconds_per_run": wall[name],
            "seeds": len(runs),
        })  # fmt: skip
    result["_traces"] = traces
    return result


def save_to_cache(path: Path, key: tuple, value: tuple) -> None:
    """Add one run to the cache file, keeping what other processes added meanwhile."""
    cache = pickle.loads(path.read_bytes()) if path.exists() else {}
    cache[key] = value
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(pickle.dumps(cache))
    partial.replace(path)


def traces_cache(task: str) -> Path:
    """Where a run keeps its raw traces (for re-reading without re-running; not part of the results)."""
    folder = Path(os.environ.get("SWEEPS_BENCH_CACHE", Path.home() / ".cache" / "sweeps-bench"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"lcbench_traces_{task}.pkl"


def regret_plot(results: list[dict], path: Path, axis: str = "epochs") -> None:
    """Mean normalized regret over seeds against the budget, one line per arm: a panel per task for
    up to three tasks, and a panel of the mean over tasks when there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = results if len(results) <= 3 else []
    panels = len(shown) + (len(results) > 1)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    grid = np.linspace(0.01, 1.0, 100)
    means: dict[str, list[np.ndarray]] = {}
    for index, result in enumerate(results):
        ref, budget = result["reference"], result["budget"][axis]
        for name, runs in result["_traces"].items():
            mean = np.mean([regret_curve(t, axis, grid * budget, ref["best"], ref["worst"]) for t in runs], axis=0)
            means.setdefault(name, []).append(mean)
            if index < len(shown):
                axes[0][index].plot(grid * budget / EPOCHS if axis == "epochs" else grid, mean, label=name)
        if index < len(shown):
            axes[0][index].set(title=f"task {result['task']}", yscale="log", ylabel="normalized regret (mean over seeds)",
                               xlabel="full runs' worth of epochs" if axis == "epochs" else "share of the budget")  # fmt: skip
            axes[0][index].grid(alpha=0.3)
    if len(results) > 1:
        ax = axes[0][-1]
        for name, curves in means.items():
            ax.plot(grid, np.mean(curves, axis=0), label=name)
        ax.set(title=f"mean over {len(results)} tasks", yscale="log", xlabel="share of the budget")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: one task, 3 seeds, 20 full runs' budget")
    parser.add_argument("--data", default=os.environ.get("SWEEPS_YAHPO_DATA"), help="folder holding lcbench/ (default $SWEEPS_YAHPO_DATA)")
    parser.add_argument("--tasks", nargs="*", help="OpenML task ids (default: the three headline tasks)")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=float, default=100, help="budget in full 52-epoch runs' worth")
    parser.add_argument("--arms", nargs="*", help="arm names to run (default: all)")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 4], help="worker counts for the sweeps default and the --variant arms")
    parser.add_argument("--summary", action="store_true", help="all 34 tasks: random, the best stock arm and the default, summary table")
    parser.add_argument("--reference", type=int, default=20000, help="random reference configurations per task")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
                        help="an extra arm: the service's factory with these overrides, e.g. rf2=sweep.hyperband.reduction_factor=2")
    parser.add_argument("--max-seeds", action="append", default=[], metavar="ARM=N",
                        help="run this arm on the first N seeds only (a costly sampler, a screened variant); the table shows its seed count")
    parser.add_argument("--fresh", action="store_true", help="ignore the cache of earlier runs (traces_cache)")
    parser.add_argument("--live", type=int, default=0, help="live sweeps (seeds) on the first task to compare with their replay")
    parser.add_argument("--live-trials", type=int, default=40)
    parser.add_argument("--out", default=None, help="results file name (default lcbench.json / lcbench_quick.json)")
    args = parser.parse_args(argv)
    if not args.data:
        console.print("set SWEEPS_YAHPO_DATA (or --data) to the folder holding lcbench/ (github.com/slds-lmu/yahpo_data)")
        return 2
    quiet()
    if args.quick:
        args.tasks, args.seeds, args.budget, args.reference = args.tasks or ["189906"], 3, 20, 5000
        args.arms = args.arms or ["random", "TPE", "TPE+median", "sweeps default"]
    cmd = print_header("LCBench (YAHPO Gym surrogate): sweeps default vs random search and stock Optuna")
    from objectives.lcbench import _instances

    tasks = args.tasks or (list(_instances(args.data)) if args.summary else list(HEADLINE))
    variants = [service_arm(v.split("=", 1)[0], v.split("=", 1)[1].split(","), f"sweeps default with {v.split('=', 1)[1]}") for v in args.variant]
    arms = [*stock_arms(), service_arm("sweeps default"), *variants]
    if args.arms:
        arms = [a for a in arms if a.name in args.arms]
    limits = {spec.rsplit("=", 1)[0]: int(spec.rsplit("=", 1)[1]) for spec in args.max_seeds}
    arms = [replace(a, max_seeds=limits[a.name]) if a.name in limits else a for a in arms]
    seeds = list(range(args.seeds))
    refs = references(args.data, tasks, args.reference)
    results = []
    for task in tasks:
        result = run_task(args.data, task, arms, seeds, args.budget, refs[task], workers=[1],
                          progress=lambda line: console.print(f"  {line}"), use_cache=not args.fresh)  # fmt: skip
        if any(w > 1 for w in args.workers):
            served = [a for a in arms if a.name == "sweeps default" or a in variants]  # the service's arms, with W workers too
            extra = run_task(args.data, task, [arms[0], *served], seeds, args.budget, refs[task], workers=[1, *[w for w in args.workers if w > 1]],
                             progress=lambda line: console.print(f"  {line}"), use_cache=not args.fresh)  # fmt: skip
            for name, values in extra["arms"].items():
                if "workers" in name:
                    result["arms"][name] = values
                    result["_traces"][name] = extra["_traces"][name]
        results.append(result)
        print_task(result)
    if len(results) > 1:
        print_summary(results)
    live = []
    if args.live:
        live = live_check(args.data, tasks[0], range(args.live), args.live_trials)
        table(f"live sweeps vs their replay (task {tasks[0]}, sweeps default)", ["seed", "trials", "identical trials", "best live", "best replay", "live s"],
              [[r["seed"], r["trials"], r["identical"], fmt(r["best_live"], 4), fmt(r["best_replay"], 4), fmt(r["live_seconds"], 3)] for r in live])  # fmt: skip
    name = args.out or ("lcbench_quick.json" if args.quick else ("lcbench_all.json" if args.summary else "lcbench.json"))
    plot = RESULTS / name.replace(".json", "_regret.png")
    regret_plot(results, plot)
    record = {"command": cmd, "seeds": args.seeds, "budget_full_runs": args.budget, "arms": {a.name: a.about for a in arms},
              "tasks": [{k: v for k, v in r.items() if k != "_traces"} for r in results], "plot": plot.name, "live": live}  # fmt: skip
    (RESULTS / name).write_text(json.dumps(record, indent=1, default=float))
    (RESULTS / name.replace(".json", ".md")).write_text(markdown(record))
    console.print(f"wrote {RESULTS / name}, its tables as markdown and {plot}")
    return 0


def print_task(result: dict) -> None:
    ref, arms = result["reference"], result["arms"]
    rows = []
    for name, a in arms.items():
        rows.append([
            name, fmt(a["epochs"]["speedup"], 3), fmt(a["epochs"]["budget_to_target"]["median"] / EPOCHS, 3),
            f"{a['epochs']['budget_to_target']['n_inf']}/{a['epochs']['budget_to_target']['n']}",
            fmt(a["seconds"]["speedup"], 3), fmt(a["final_best"]["median"], 4), fmt(a["regret_at_budget"]["epochs"]["median"], 3),
            fmt(a["trials"]["median"], 4), a["seeds"], fmt(a["seconds_per_run"], 3),
        ])  # fmt: skip
    target = next(iter(arms.values()))["epochs"]["target"]
    table(
        f"task {result['task']}: target = random's median final val_acc {target:.4f} (reference best {ref['best']:.4f}, "
        f"random needs ~{ref['random_trials_to_99pct']:.0f} trials to come within 1 %)",
        ["arm", "speed-up (epochs)", "full runs to target", "never", "speed-up (seconds)", "final best", "regret", "trials", "seeds", "s per run"], rows)  # fmt: skip


def markdown(record: dict) -> str:
    """The record's tables as markdown, for the README (pasted as written)."""
    tasks = record["tasks"]
    names = list(tasks[0]["arms"])
    lines = [f"`{record['command']}` — {record['budget_full_runs']:g} full runs' budget per run", ""]
    if len(tasks) <= 3:
        head = ["arm", *[f"{t['task']}: speed-up (epochs / seconds)" for t in tasks], "median speed-up", "regret at budget", "seeds"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in names:
            arms = [t["arms"][name] for t in tasks]
            ups = [a["epochs"]["speedup"] for a in arms]
            cells = [f"{fmt(a['epochs']['speedup'], 3)} / {fmt(a['seconds']['speedup'], 3)}" for a in arms]
            regret = float(np.mean([a["regret_at_budget"]["epochs"]["median"] for a in arms]))
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt(float(np.median(ups)), 3)} | {fmt(regret, 2)} | {arms[0]['seeds']} |")
    else:
        lines += ["| arm | median speed-up (epochs) | tasks where it beats random | mean regret at budget | seeds |", "|---|---|---|---|---|"]
        for name in names:
            ups = [t["arms"][name]["epochs"]["speedup"] for t in tasks]
            regret = float(np.mean([t["arms"][name]["regret_at_budget"]["epochs"]["median"] for t in tasks]))
            lines.append(f"| {name} | {fmt(float(np.median(ups)), 3)} | {sum(u > 1 for u in ups)}/{len(tasks)} | {fmt(regret, 2)} | {tasks[0]['arms'][name]['seeds']} |")
    if record.get("live"):
        lines += ["", "| live sweep (seed) | trials | identical to the replay | best live | best replay |", "|---|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['trials']} | {r['identical']} | {fmt(r['best_live'], 4)} | {fmt(r['best_replay'], 4)} |" for r in record["live"]]
    return "\n".join(lines) + "\n"


def print_summary(results: list[dict]) -> None:
    names = list(results[0]["arms"])
    rows = []
    for name in names:
        ups = [r["arms"][name]["epochs"]["speedup"] for r in results]
        regrets = [r["arms"][name]["regret_at_budget"]["epochs"]["median"] for r in results]
        beats = sum(u > 1 for u in ups)
        rows.append([name, fmt(float(np.median(ups)), 3), f"{beats}/{len(results)}", fmt(float(np.mean(regrets)), 3)])
    table(f"{len(results)} tasks", ["arm", "median speed-up (epochs)", "tasks where it beats random", "mean regret at budget"], rows)


if __name__ == "__main__":
    raise SystemExit(main())
