"""LR window of ``lr_find=auto``, live: the shipped window against a candidate, seed by seed.

Each arm is a real sweep (``run_sweep``, the real trainer, fresh SQLite stores in a temporary
folder), the same trial budget for every arm. A seed ``s`` sets ``sweep.seed=s`` (the sampler)
and ``train.seed=s`` (the range test's model init and batch order, and every trial's), so each seed
sees its own range test: the steepest-descent reading moves with it, and the window with it.

Arms (``ARMS``): the shipped window ``[steepest/10, min_loss]``; the candidate ``[steepest/3,
3·steepest]`` (``high_from=steepest low_div=3 high_div=0.333``); random search over the default
space without pruning (the baseline of issue 13). Both windows run TPE + Hyperband (the default).
Each arm sets all three ``lr_find`` keys, so it runs the same window whatever an objective's config
sets (``shipped`` is the general default; mnist1d's config has used the candidate since this run).

Per sweep: epochs spent until a COMPLETE trial's final val_acc reaches each target (counted as in
``efficiency.py``: the range test's steps ÷ steps per epoch first, then every trial's epochs in
order, pruned trials the epochs they ran), the range test's readings and the bounds it gave, the
best val_acc. By default a sweep ends after the first trial that reaches every target (what the
comparison needs, at a fraction of the CPU; ``best`` is then the best so far); ``--full-budget``
runs every sweep to ``--trials``. Each finished sweep is appended at once to ``results/lr_window_<objective>.jsonl``,
so a cut run keeps its numbers and a rerun skips what is done; the JSON and the markdown table are
written from that file (``--report`` writes them without running anything).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import statistics
import time
from typing import Any

from common import RESULTS, compose, console, fmt, print_header, quiet, ratio, scratch, steps_per_epoch, summarize, table, write_json
from efficiency import HEADLINE, TrialRecord, scores
from rich.markup import escape

SHIPPED, CANDIDATE, BASELINE = "shipped [steepest/10, min_loss]", "candidate [steepest/3, 3·steepest]", "random, no pruning"
ARMS: dict[str, list[str]] = {
    SHIPPED: ["lr_find=auto", "lr_find.high_from=min_loss", "lr_find.low_div=10", "lr_find.high_div=1"],
    CANDIDATE: ["lr_find=auto", "lr_find.high_from=steepest", "lr_find.low_div=3", "lr_find.high_div=0.333"],
    BASELINE: ["sweep.sampler=random", "sweep.pruner=none"],
}
# 99 % of the best of 220 recorded Sobol configs (0.946, efficiency.py), and a looser one.
TARGETS = {HEADLINE: 0.99 * 0.946, "0.935": 0.935, "0.93": 0.93}


def log_path(objective: str, tag: str | None):
    return RESULTS / f"lr_window_{objective}{'_' + tag if tag else ''}.jsonl"


def done_runs(path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def range_test_of(cfg) -> dict[str, Any]:
    """The range test the sweep will run (same config, same ``train.seed``: the same numbers), for
    its step count, which the study's record lacks."""
    from sweeps.config.sections import Sections
    from sweeps.lr.runner import run_range_test

    report = run_range_test(objective=cfg.objective, train=cfg.train, settings=Sections.of(cfg).lr_find)
    spe = steps_per_epoch(cfg)
    return {**report.summary(), "steps_run": report.result.steps_run, "stop_reason": report.result.stop_reason,
            "steps_per_epoch": spe, "cost_epochs": report.result.steps_run / spe}


def live_sweep(objective: str, arm: str, seed: int, n_trials: int, stop_at_target: bool) -> dict[str, Any]:
    """One real sweep of at most ``n_trials``; epochs per trial in the order they ran. With
    ``stop_at_target`` it ends after the first trial that reaches every target (``best`` is then the
    best so far, not the budget's)."""
    import optuna

    from sweeps.run.signals import StopFlag
    from sweeps.run.sweep import plan_sweep, run_sweep

    records: list[TrialRecord] = []
    stop = StopFlag()
    with scratch() as folder:
        cfg = compose(objective, f"sweep.n_trials={n_trials}", f"sweep.seed={seed}", f"train.seed={seed}",
                      f"sweep.study_name=lr-window-{seed}", *ARMS[arm], folder=folder)
        spe_default = steps_per_epoch(cfg)
        rt = range_test_of(cfg) if cfg.lr_find.enabled else None

        def after_trial(study: optuna.Study, trial) -> None:
            if trial.state.name == "COMPLETE":
                records.append(TrialRecord(-1, float(cfg.train.epochs), float(trial.value), "complete"))
            elif "diverged_at_step" in trial.user_attrs:
                spe = steps_per_epoch(cfg, int(trial.params["batch_size"])) if "batch_size" in trial.params else spe_default
                records.append(TrialRecord(-1, (int(trial.user_attrs["diverged_at_step"]) + 1) / spe, None, "diverged"))
            else:
                records.append(TrialRecord(-1, float(trial.user_attrs.get("epochs", 0)), None, trial.state.name.lower()))
            if stop_at_target and any(r.value is not None and r.value >= max(TARGETS.values()) for r in records):
                stop.signum = signal.SIGTERM  # ends the sweep after this trial

        start = time.perf_counter()
        result = run_sweep(plan_sweep(cfg), callbacks=[after_trial], stop=stop)
        seconds = time.perf_counter() - start
        found = result.study.user_attrs.get("lr_find")
        best_lr = float(result.study.best_trial.params["lr"])
        best = float(result.study.best_value)
    head = rt["cost_epochs"] if rt else 0.0
    if rt and found:  # the sweep's own range test must have read what ours did
        assert math.isclose(rt["search_low"], found["search_low"], rel_tol=1e-9), (rt, found)
    out = scores(records, head, TARGETS, [])
    out.pop("best_at")
    return {"arm": arm, "seed": seed, "n_trials": n_trials, "stop_at_target": stop_at_target, **out, "best": best, "best_lr": best_lr, "range_test": rt,
            "trial_log": [[r.epochs, r.value, r.outcome] for r in records], "seconds": seconds}


def epochs_to(run: dict[str, Any]) -> dict[str, float]:
    """Epochs to each target, recounted from the run's trials (every target up to the one that stops a
    sweep is reached, if at all, before it stops)."""
    if "trial_log" not in run:  # an early log line: only the targets it was run with
        return {t: run["epochs_to"].get(t, math.nan) for t in TARGETS}
    records = [TrialRecord(-1, epochs, value, outcome) for epochs, value, outcome in run["trial_log"]]
    head = run["range_test"]["cost_epochs"] if run["range_test"] else 0.0
    return scores(records, head, TARGETS, [])["epochs_to"]


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per arm: the spread over seeds; per seed: both windows side by side and their ratio. A later
    log line for the same arm and seed replaces an earlier one."""
    by_arm: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = {**r, "epochs_to": epochs_to(r)}
    arms = {name: {"seeds": sorted(per_seed), "epochs_to": {t: summarize(per_seed[s]["epochs_to"][t] for s in per_seed) for t in TARGETS},
                   "best": summarize(per_seed[s]["best"] for s in per_seed)} for name, per_seed in by_arm.items()}
    paired = sorted(set(by_arm.get(SHIPPED, {})) & set(by_arm.get(CANDIDATE, {})))
    seeds = []
    for s in paired:
        a, b = by_arm[SHIPPED][s], by_arm[CANDIDATE][s]
        base = by_arm.get(BASELINE, {}).get(s)
        seeds.append({"seed": s, **{f"{t} {who}": r["epochs_to"][t] for t in TARGETS for who, r in (("shipped", a), ("candidate", b))},
                      **{f"{t} random": (base["epochs_to"][t] if base else math.nan) for t in TARGETS},
                      "ratio shipped÷candidate": ratio(a["epochs_to"][HEADLINE], b["epochs_to"][HEADLINE]),
                      "steepest": a["range_test"]["steepest"], "min_loss": a["range_test"]["min_loss"],
                      "shipped window": [a["range_test"]["search_low"], a["range_test"]["search_high"]],
                      "candidate window": [b["range_test"]["search_low"], b["range_test"]["search_high"]],
                      "best shipped": a["best"], "best candidate": b["best"], "best random": base["best"] if base else math.nan})
    wins = {t: {"candidate sooner": sum(x[f"{t} candidate"] < x[f"{t} shipped"] for x in seeds),
                "shipped sooner": sum(x[f"{t} shipped"] < x[f"{t} candidate"] for x in seeds), "paired seeds": len(seeds)} for t in TARGETS}
    return {"arms": arms, "per_seed": seeds, "wins": wins}


def print_and_write(objective: str, runs: list[dict[str, Any]], command: str, tag: str | None) -> dict[str, Any]:
    s = summary(runs)
    rows = [[x["seed"], f"{x['steepest']:.3g}", f"{x['min_loss']:.3g}",
             "{:.3g}–{:.3g}".format(*x["shipped window"]), "{:.3g}–{:.3g}".format(*x["candidate window"]),
             *[fmt(x[f"{t} {who}"]) for t in TARGETS for who in ("random", "shipped", "candidate")],
             fmt(x["ratio shipped÷candidate"], 2), fmt(x["best random"], 4), fmt(x["best shipped"], 4), fmt(x["best candidate"], 4)] for x in s["per_seed"]]
    for name, a in s["arms"].items():  # one median row per arm, in that arm's columns
        cells = [fmt(a["epochs_to"][t]["median"]) if who == name else "" for t in TARGETS for who in (BASELINE, SHIPPED, CANDIDATE)]
        rows.append([f"median, {len(a['seeds'])} seeds", "", "", "", "", *cells, "",
                     *[fmt(a["best"]["median"], 4) if who == name else "" for who in (BASELINE, SHIPPED, CANDIDATE)]])
    columns = ["seed", "steepest", "min_loss", "shipped window", "candidate window",
               *[f"{t}: {who}" for t in TARGETS for who in ("random", "shipped", "candidate")], "ratio shipped÷cand.", "best random", "best shipped", "best cand."]
    n = max((r["n_trials"] for r in runs), default=0)
    table(f"{objective}: epochs until a complete trial reaches the target, live sweeps of {n} trials (range test counted)", columns, rows,
          caption="; ".join(f"{t} (≥ {v:.4f}): candidate sooner on {w['candidate sooner']}/{w['paired seeds']} seeds, shipped sooner on {w['shipped sooner']}"
                            for (t, v), w in zip(TARGETS.items(), s["wins"].values())))
    name = f"lr_window_{objective}{'_' + tag if tag else ''}"
    write_json(name, {"objective": objective, "targets": TARGETS, "arms": ARMS, **s, "runs": runs}, command=command)
    (RESULTS / f"{name}.md").write_text(markdown(objective, s, command, n))
    return s


def markdown(objective: str, s: dict[str, Any], command: str, n_trials: int) -> str:
    head = ["seed", "steepest", "shipped window", "candidate window",
            *[f"{t}: {who}" for t in TARGETS for who in ("random", "shipped", "candidate")], "best random / shipped / candidate"]
    lines = [f"# {objective}: lr_find=auto windows, live ({n_trials} trials per sweep)", "", f"`{command}`", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in s["per_seed"]:
        lines.append("| " + " | ".join([str(x["seed"]), f"{x['steepest']:.3g}", "{:.3g}–{:.3g}".format(*x["shipped window"]),
                                        "{:.3g}–{:.3g}".format(*x["candidate window"]),
                                        *[fmt(x[f"{t} {who}"]) for t in TARGETS for who in ("random", "shipped", "candidate")],
                                        f"{fmt(x['best random'], 4)} / {fmt(x['best shipped'], 4)} / {fmt(x['best candidate'], 4)}"]) + " |")
    med = lambda arm, t: fmt(s["arms"].get(arm, {}).get("epochs_to", {}).get(t, {}).get("median"))  # noqa: E731
    lines.append("| median | | | | " + " | ".join(med(a, t) for t in TARGETS for a in (BASELINE, SHIPPED, CANDIDATE)) + " | |")
    lines += ["", *[f"- {t}: candidate sooner on {w['candidate sooner']}/{w['paired seeds']} seeds, shipped sooner on {w['shipped sooner']}"
                    for t, w in s["wins"].items()], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objective", default="mnist1d")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=40, help="trials per sweep, every arm")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--full-budget", action="store_true", help="run every sweep to --trials (default: stop after the trial that reaches the targets)")
    parser.add_argument("--report", action="store_true", help="only print and write what the log holds")
    parser.add_argument("--tag", help="append _TAG to the result files' names")
    args = parser.parse_args()
    command = print_header("lr_find=auto windows, live sweeps seed by seed")
    quiet()
    path = log_path(args.objective, args.tag)
    if not args.report:
        RESULTS.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:  # seed by seed, so a cut run leaves complete pairs
            for arm in args.arms:
                if any(r["arm"] == arm and r["seed"] == seed and r["n_trials"] == args.trials and "trial_log" in r for r in done_runs(path)):
                    continue
                run = live_sweep(args.objective, arm, seed, args.trials, not args.full_budget)
                with path.open("a") as log:
                    log.write(json.dumps(run, default=str) + "\n")
                console.print(f"  seed {seed} {escape(arm)}: {' / '.join(fmt(run['epochs_to'][t]) for t in TARGETS)} epochs to "
                              f"{' / '.join(f'{v:.4f}' for v in TARGETS.values())}, best {run['best']:.4f} (lr {run['best_lr']:.3g}), {run['seconds']:.0f} s")
    runs = [r for r in done_runs(path) if r["n_trials"] == args.trials]
    print_and_write(args.objective, runs, command, args.tag)
    if not runs:
        return
    console.print(f"median seconds per sweep: {statistics.median(r['seconds'] for r in runs):.0f}")


if __name__ == "__main__":
    main()
