"""Tracking overhead: the same training loop bare, and through the service (Optuna + MLflow on SQLite).

bare      ``make_task`` + ``sweeps.train.training.train(task, cfg.train, recording_reporter)``: the trainer alone.
service   ``run_sweep`` on a fresh SQLite Optuna storage + SQLite MLflow store, every trial the same
          config (``search=lr_only search.lr='choice(<lr>)'``: one value, so TPE + Hyperband, the
          defaults, run as usual but never change the work; identical values are never pruned),
          per-epoch logging (the default), and again with per-step logging (``tracking.log_steps=true``).

What "service" time includes, per trial: Optuna's trial creation (``study.ask``), sampling, the
heartbeat thread, the MLflow child run (create, params, tags), training, every ``reporter.report``
(rung reports to Optuna, buffered MLflow metrics), the curve diagnosis, ending the run in both
stores, and the worker's per-trial checks (counting finished trials). It is measured from the
previous trial's end (or the study being open) to this trial's end callback. Opening the sweep
(schema creation of both fresh databases, study, parent run) and closing it (summary, report
figures) are once per sweep and reported apart. Process start and imports are excluded.

(a) ~1 s epochs on the CPU: tiny_transformer with ``objective.n_train`` raised so that an epoch
    takes about a second (measured and printed); overhead = service ÷ bare − 1 per trial.
(b) digits_mlp (~10 ms epochs): all-in ÷ bare per epoch, two views: per trial of 9 epochs (a sweep of
    several identical trials), and the per-epoch marginal (slope between 9- and 60-epoch trials).
Each arm runs ``--repeats`` times, interleaved (bare, epoch-logging, step-logging, rotating order)
so that load drift on a busy machine hits all arms alike; medians and the median of paired ratios.
A breakdown with manual timers wrapped around the service's calls shows where the time goes.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import time
from collections.abc import Callable
from typing import Any

from common import Stopwatch, compose, console, fmt, print_header, quiet, scratch, summarize, table, write_json

LR = 3e-3  # the trainer's default: a healthy run, never diverges


def fixed_config(objective: str, epochs: int, trials: int, *extra: str, folder=None):
    return compose(
        objective, "search=lr_only", f"search.lr=choice({LR})", f"train.epochs={epochs}", f"sweep.n_trials={trials}",
        "sweep.study_name=overhead", "train.threads=1", *extra, folder=folder,
    )


def bare_run(objective: str, epochs: int, extra: tuple[str, ...] = ()) -> float:
    """Seconds for ``make_task`` + the shared trainer with a recording reporter (what the objective does)."""
    from sweeps.train.reporter import recording_reporter
    from sweeps.train.training import train

    cfg = fixed_config(objective, epochs, 1, *extra)
    cfg.train.lr = LR
    module = importlib.import_module(str(cfg.objective.target).partition(":")[0])
    start = time.perf_counter()
    train(module.make_task(cfg.objective), cfg.train, recording_reporter(str(cfg.sweep.metric)))
    return time.perf_counter() - start


def service_run(objective: str, epochs: int, trials: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One sweep of ``trials`` identical trials; per-trial wall times and the sweep's open/close costs."""
    from sweeps.run.sweep import plan_sweep, run_sweep

    marks: list[float] = []
    states: list[str] = []
    with scratch() as folder:
        cfg = fixed_config(objective, epochs, trials, *extra, folder=folder)
        plan = plan_sweep(cfg)
        start = time.perf_counter()

        def after_trial(_study, trial) -> None:
            marks.append(time.perf_counter())
            states.append(trial.state.name)

        result = run_sweep(plan, callbacks=[after_trial], on_open=lambda _study: marks.append(time.perf_counter()))
        end = time.perf_counter()
        assert all(s == "COMPLETE" for s in states), f"identical trials must all complete, got {states}"
        assert result.ran == trials
    per_trial = [b - a for a, b in zip(marks, marks[1:])]
    return {"open_s": marks[0] - start, "trials_s": per_trial, "close_s": end - marks[-1], "sweep_s": end - start}


def interleaved(arms: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[Any]]:
    """Run every arm ``repeats`` times, rotating the order each round."""
    names = list(arms)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            out[name].append(arms[name]())
        console.print(f"  round {r + 1}/{repeats} done")
    return out


def paired(numerators: list[float], denominators: list[float]) -> dict[str, float]:
    return summarize(n / d for n, d in zip(numerators, denominators))


# ------------------------------------------------------------------------------------------------
# Where the time goes: manual timers wrapped around the service's calls (cProfile inflates the
# Python-heavy storage code several-fold; plain wall-clock timers do not).

TRAINING = "training loop (sweeps.train.training.train)"
REPORTING = "reporter.report + record_steps (the per-epoch service work, inside the loop)"
TIMED = [
    # (module, attribute path, label, depth). Depth 0 rows do not overlap each other (with "training,
    # net of reporting" they make up the trial); depth 1 rows are inside the depth 0 row above them;
    # depth -1 rows cut across the others (every call, wherever it is made).
    ("optuna.study", "Study.ask", "optuna create trial (study.ask)", 0),
    ("optuna.trial", "Trial.suggest_categorical", "optuna sample params", 0),
    ("sweeps.run.trial", "apply_params", "trial config (apply_params)", 0),
    ("sweeps.track.tracker", "SweepTracker.start_trial", "MLflow start child run (+params, tags)", 0),
    ("sweeps.train.reporter", "TrialReporter.report", REPORTING, 0),
    ("optuna.trial", "Trial.report", "optuna trial.report (at rungs)", 1),
    ("optuna.trial", "Trial.should_prune", "optuna trial.should_prune (at rungs)", 1),
    ("sweeps.track.tracker", "MetricBuffer.add", "MLflow metric buffer add (incl. flushes it triggers)", 1),
    ("sweeps.train.reporter", "TrialReporter.record_steps", REPORTING, 0),
    ("sweeps.run.trial", "TrialRunner._diagnose", "diagnosis (classify curves, 2 user attrs)", 0),
    ("sweeps.run.trial", "TrialRunner._end", "end the trial in both stores (user attrs, final flush, end run)", 0),
    ("sweeps.track.tracker", "SweepTracker.end_trial", "MLflow end child run (+tags, final metric)", 1),
    ("optuna.study._optimize", "_tell_with_warning", "optuna finish trial (tell)", 0),
    ("optuna.storages", "fail_stale_trials", "optuna fail_stale_trials (heartbeat check)", 0),
    ("optuna.trial", "Trial.set_user_attr", "all optuna trial.set_user_attr", -1),
    ("sweeps.track.tracker", "MetricBuffer.flush", "all MLflow metric flushes", -1),
    ("mlflow.tracking.client", "MlflowClient.log_batch", "all MLflow log_batch calls", -1),
]
DEPTH = {label: depth for *_, label, depth in TIMED}


def instrument(watch: Stopwatch) -> list[Callable[[], None]]:
    """Wrap each ``TIMED`` callable with a timer; returns the undo functions. Missing names are skipped."""
    undo = []
    for module_name, path, label, _depth in TIMED:
        try:
            owner: Any = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            continue

        def timed(*args, __original=original, __label=label, **kwargs):
            with watch(__label):
                return __original(*args, **kwargs)

        wrapper = functools.wraps(original)(timed)
        setattr(owner, name, wrapper)
        undo.append(functools.partial(setattr, owner, name, original))
    # objectives bind the trainer at import (``from sweeps.train.training import train as run_training``)
    for objective in ("objectives.digits_mlp", "objectives.tiny_transformer"):
        module = importlib.import_module(objective)
        original = module.run_training
        module.run_training = _timed_callable(watch, TRAINING, original)
        undo.append(functools.partial(setattr, module, "run_training", original))
    return undo


def _timed_callable(watch: Stopwatch, label: str, original: Callable) -> Callable:
    @functools.wraps(original)
    def timed(*args, **kwargs):
        with watch(label):
            return original(*args, **kwargs)

    return timed


def breakdown(objective: str, epochs: int, trials: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    watch = Stopwatch()
    undo = instrument(watch)
    try:
        run = service_run(objective, epochs, trials, extra)
    finally:
        for restore in reversed(undo):
            restore()
    trial_s = sum(run["trials_s"])
    rows = {label: {"calls": watch.calls[label], "seconds": watch.seconds[label]} for label in watch.seconds}
    return {"trial_s": trial_s, "trials": trials, "epochs": epochs, "timers": rows, "run": run}


def service_share(b: dict[str, Any]) -> float:
    """(trial wall − net training) ÷ net training, from an instrumented sweep."""
    seconds = {label: t["seconds"] for label, t in b["timers"].items()}
    net = seconds.get(TRAINING, 0.0) - seconds.get(REPORTING, 0.0)
    return (b["trial_s"] - net) / net


def print_breakdown(title: str, b: dict[str, Any]) -> None:
    """Rows in call order; "net" training is the loop minus the reporting done inside it."""
    trials, epochs, wall = b["trials"], b["epochs"], b["trial_s"]
    timers = b["timers"]
    seconds = {label: t["seconds"] for label, t in timers.items()}
    net_training = seconds.get(TRAINING, 0.0) - seconds.get(REPORTING, 0.0)
    accounted = net_training + sum(v for label, v in seconds.items() if DEPTH.get(label) == 0)
    rows = []

    def row(label: str, secs: float, calls: Any = "", indent: int = 0) -> None:
        rows.append(["  " * indent + label, calls, 1e3 * secs / trials, 1e3 * secs / (trials * epochs), f"{100 * secs / wall:.1f}%"])

    row("trial wall (study.ask … end callback)", wall, trials)
    row("training, net of reporting", net_training, timers.get(TRAINING, {}).get("calls", ""), 1)
    seen = set()
    for _module, _path, label, depth in TIMED:
        if label in timers and label not in seen and depth >= 0:
            seen.add(label)
            row(label, seconds[label], timers[label]["calls"], depth + 1)
    row("unaccounted (worker loop, heartbeat thread, callbacks)", wall - accounted, "", 1)
    row("= everything but net training", wall - net_training)
    for label in timers:
        if DEPTH.get(label) == -1:
            row(label, seconds[label], timers[label]["calls"])
    table(title, ["where (indented rows are inside the row above them)", "calls", "ms / trial", "ms / epoch", "of trial wall"], rows,
          caption=f"{trials} trials × {epochs} epochs; open {b['run']['open_s']:.2f} s and close {b['run']['close_s']:.2f} s once per sweep, not included.")


# ------------------------------------------------------------------------------------------------


def part_a(args) -> dict[str, Any]:
    """~1 s epochs: per-trial overhead of the service over the bare trainer, in % of wall time."""
    grow = (f"objective.n_train={args.n_train}",)
    epochs = args.a_epochs
    console.print(f"(a) tiny_transformer, objective.n_train={args.n_train}, {epochs} epochs per trial, {args.repeats} interleaved rounds")
    bare_run("tiny_transformer", 1, grow)  # the first epoch in a process pays a one-off warm-up
    runs = interleaved({
        "bare": lambda: bare_run("tiny_transformer", epochs, grow),
        "service, per-epoch logging": lambda: service_run("tiny_transformer", epochs, 1, grow),
        "service, per-step logging": lambda: service_run("tiny_transformer", epochs, 1, (*grow, "tracking.log_steps=true")),
    }, args.repeats)
    bare = runs["bare"]
    console.print("  timers: one instrumented sweep per logging mode")
    timed = {
        "service, per-epoch logging": breakdown("tiny_transformer", epochs, 1, grow),
        "service, per-step logging": breakdown("tiny_transformer", epochs, 1, (*grow, "tracking.log_steps=true")),
    }
    out = {"n_train": args.n_train, "epochs": epochs, "bare_s": summarize(bare), "bare_epoch_s": summarize(x / epochs for x in bare), "arms": {}, "breakdown": timed}
    rows = [["bare trainer", fmt(out["bare_s"]["median"]), fmt(out["bare_epoch_s"]["median"]), "–", "–", "–", "–", "–"]]
    for name in ("service, per-epoch logging", "service, per-step logging"):
        trial = [r["trials_s"][0] for r in runs[name]]
        overhead = summarize(100 * (t / b - 1) for t, b in zip(trial, bare))
        out["arms"][name] = {
            "trial_s": summarize(trial), "overhead_pct": overhead,
            "open_s": summarize(r["open_s"] for r in runs[name]), "close_s": summarize(r["close_s"] for r in runs[name]),
            "overhead_pct_of_medians": 100 * (summarize(trial)["median"] / out["bare_s"]["median"] - 1),
            "overhead_pct_by_timers": 100 * service_share(timed[name]),
        }
        a = out["arms"][name]
        rows.append([name, fmt(a["trial_s"]["median"]), fmt(a["trial_s"]["median"] / epochs),
                     f"{a['overhead_pct']['median']:+.1f}% [{a['overhead_pct']['q1']:+.1f}, {a['overhead_pct']['q3']:+.1f}]",
                     f"{a['overhead_pct_of_medians']:+.1f}%", f"{a['overhead_pct_by_timers']:.2f}%", fmt(a["open_s"]["median"]), fmt(a["close_s"]["median"])])
    table(f"(a) overhead on ~1 s epochs (tiny_transformer n_train={args.n_train}; target ≤ 2% per-epoch, ≤ 5% per-step logging)",
          ["arm", "trial s", "s / epoch", "wall: paired median [IQR]", "wall: ratio of medians", "by timers", "open sweep s", "close sweep s"], rows,
          caption=(f"{args.repeats} interleaved rounds; trial = study.ask … run end (see the module docstring); open/close once per sweep, excluded. "
                   "By timers: (trial wall − net training) ÷ net training in one instrumented sweep: the service's own work, free of "
                   "the machine's load noise that the wall-clock difference carries."))
    for name, b in timed.items():
        print_breakdown(f"(a) where the time goes: tiny_transformer n_train={args.n_train}, {name}", b)
    return out


def part_b(args) -> dict[str, Any]:
    """digits_mlp: all-in ÷ bare per epoch, per trial of 9 epochs and per-epoch marginal."""
    short, long_, trials = 9, args.long_epochs, args.b_trials
    console.print(f"(b) digits_mlp: sweeps of {trials} identical {short}-epoch trials, and 1 trial of {long_} epochs; {args.repeats} rounds")
    bare_run("digits_mlp", 1)
    arms = {
        "bare 9": lambda: bare_run("digits_mlp", short),
        "bare long": lambda: bare_run("digits_mlp", long_),
        "epoch-log 9": lambda: service_run("digits_mlp", short, trials),
        "epoch-log long": lambda: service_run("digits_mlp", long_, 1),
        "step-log 9": lambda: service_run("digits_mlp", short, trials, ("tracking.log_steps=true",)),
        "step-log long": lambda: service_run("digits_mlp", long_, 1, ("tracking.log_steps=true",)),
    }
    runs = interleaved(arms, args.repeats)
    bare9, bare_long = runs["bare 9"], runs["bare long"]
    bare_epoch = summarize(x / short for x in bare9)
    bare_slope = summarize((l - s) / (long_ - short) for l, s in zip(bare_long, bare9))
    out: dict[str, Any] = {"trials": trials, "short": short, "long": long_, "bare_epoch_s": bare_epoch, "bare_slope_s": bare_slope, "arms": {}}
    rows = [["bare trainer", 1e3 * bare_epoch["median"], "1", 1e3 * bare_slope["median"], "1", "–", "–", "–"]]
    for label, key in (("service, per-epoch logging", "epoch-log"), ("service, per-step logging", "step-log")):
        per_trial = [sum(r["trials_s"]) / trials for r in runs[f"{key} 9"]]  # mean over the sweep's trials
        all_in_epoch = [t / short for t in per_trial]
        slope = [(lr["trials_s"][0] - t) / (long_ - short) for lr, t in zip(runs[f"{key} long"], per_trial)]
        a = {
            "per_trial_s": summarize(per_trial),
            "all_in_epoch_s": summarize(all_in_epoch),
            "all_in_over_bare": paired(all_in_epoch, [b / short for b in bare9]),
            "marginal_epoch_s": summarize(slope),
            "marginal_over_bare": paired(slope, [(l - s) / (long_ - short) for l, s in zip(bare_long, bare9)]),
            "open_s": summarize(r["open_s"] for r in runs[f"{key} 9"]),
            "close_s": summarize(r["close_s"] for r in runs[f"{key} 9"]),
            "with_open_close_over_bare": paired([r["sweep_s"] / (trials * short) for r in runs[f"{key} 9"]], [b / short for b in bare9]),
        }
        out["arms"][label] = a
        rows.append([label, 1e3 * a["all_in_epoch_s"]["median"], f"{a['all_in_over_bare']['median']:.2f}× [{a['all_in_over_bare']['q1']:.2f}–{a['all_in_over_bare']['q3']:.2f}]",
                     1e3 * a["marginal_epoch_s"]["median"], f"{a['marginal_over_bare']['median']:.2f}× [{a['marginal_over_bare']['q1']:.2f}–{a['marginal_over_bare']['q3']:.2f}]",
                     fmt(a["open_s"]["median"]), fmt(a["close_s"]["median"]), f"{a['with_open_close_over_bare']['median']:.2f}×"])
    table("(b) digits_mlp: all-in epoch ÷ bare epoch (target ≤ 1.2×)",
          ["arm", "per trial of 9: ms / epoch", "÷ bare [IQR]", f"marginal (9→{long_} ep): ms / epoch", "÷ bare [IQR]", "open sweep s", "close sweep s",
           f"whole sweep of {trials} ÷ bare"], rows,
          caption=(f"per trial of 9: sweep of {trials} identical trials, (trial walls summed) ÷ ({trials}×9) epochs, includes trial creation, runs, "
                   f"diagnosis, end; marginal: (trial of {long_} − trial of 9) ÷ {long_ - short}; whole sweep: run_sweep's wall incl. opening (fresh "
                   f"databases, study, parent run) and closing (summary, report figures) ÷ ({trials}×9) epochs. {args.repeats} interleaved rounds, paired ratios."))
    return out


def part_c(args) -> dict[str, Any]:
    """(c) The per-trial cost as the study grows: TPE reads every finished trial, Hyperband every
    trial of the bracket, so the fixed cost per trial rises with the study's size. An objective that
    reports 9 instant epochs (``common.instant_objective``) leaves only the service."""
    import statistics

    from sweeps.run.sweep import plan_sweep, run_sweep

    n, chunk = args.c_trials, max(1, args.c_trials // 6)
    console.print(f"(c) per-trial service cost vs study size: one sweep of {n} trials, instant 9-epoch objective, TPE + Hyperband")
    marks: list[float] = []
    with scratch() as folder:
        cfg = compose("digits_mlp", "objective=custom", "objective.target=common:instant_objective",
                      f"sweep.n_trials={n}", "train.epochs=9", "sweep.study_name=overhead-c", folder=folder)
        run_sweep(plan_sweep(cfg), callbacks=[lambda _s, _t: marks.append(time.perf_counter())], on_open=lambda _s: marks.append(time.perf_counter()))
    per_trial = [b - a for a, b in zip(marks, marks[1:])]
    rows = [[f"{lo + 1}–{min(lo + chunk, n)}", 1e3 * statistics.median(per_trial[lo: lo + chunk])] for lo in range(0, n, chunk)]
    table(f"(c) service cost per trial as the study grows ({n} trials, SQLite stores)", ["trials", "median ms / trial"], rows)
    return {"trials": n, "per_trial_s": per_trial, "chunks": {r[0]: r[1] / 1e3 for r in rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3-epoch (a), 5 rounds (a few minutes)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per arm (≥ 5 for medians)")
    parser.add_argument("--n-train", type=int, default=3500, help="(a) tiny_transformer training sequences (~1 s epochs at 3500 on 2 cores)")
    parser.add_argument("--a-epochs", type=int, help="(a) epochs per trial (default 9; 3 with --quick)")
    parser.add_argument("--b-trials", type=int, default=10, help="(b) identical trials per sweep")
    parser.add_argument("--long-epochs", type=int, default=60, help="(b) epochs of the long trial for the marginal view")
    parser.add_argument("--c-trials", type=int, default=300, help="(c) trials in the growing study (60 with --quick)")
    parser.add_argument("--skip", choices=["a", "b", "c", "breakdown"], action="append", default=[])
    args = parser.parse_args()
    args.a_epochs = args.a_epochs or (3 if args.quick else 9)
    command = print_header("tracking overhead: bare trainer vs the service (Optuna + MLflow, SQLite)")
    quiet()
    results: dict[str, Any] = {"repeats": args.repeats, "lr": LR}
    if "a" not in args.skip:
        results["a"] = part_a(args)
    if "b" not in args.skip:
        results["b"] = part_b(args)
    if "c" not in args.skip:
        args.c_trials = 60 if args.quick and args.c_trials == 300 else args.c_trials
        results["c"] = part_c(args)
    if "breakdown" not in args.skip:
        console.print("breakdown: manual timers around the service's calls (one instrumented sweep each)")
        results["breakdown"] = {
            "digits_mlp, per-epoch logging": breakdown("digits_mlp", 9, args.b_trials),
            "digits_mlp, per-step logging": breakdown("digits_mlp", 9, args.b_trials, ("tracking.log_steps=true",)),
        }
        for title, b in results["breakdown"].items():
            print_breakdown(f"where the time goes: {title}", b)
    name = "overhead_quick" if args.quick else "overhead"
    write_json(f"{name}_partial" if args.skip else name, results, command=command)  # a partial run never replaces the full record


if __name__ == "__main__":
    main()
