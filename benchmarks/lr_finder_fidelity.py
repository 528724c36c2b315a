"""LR finder fidelity: how far the range test's suggestion lands from the LR a sweep finds best.

Error = |log10(suggested LR ÷ best LR)| in decades (target ≤ 0.3). Suggestions, all read off one
real range test (``sweeps.lr.runner.run_range_test`` on the configured objective, default trainer,
``train.seed`` = 0, 1, 2 for the spread): ``steepest`` (what ``lr_find=auto`` anchors its window on),
``min_loss / 10`` (fastai), the geometric centre of the ``lr_find=auto`` search window
(``sqrt(steepest/10 · edge/2)``), and a few alternatives (``edge / 10``, ``edge / 30``,
``min_loss / 3``, ``3 × steepest``) to propose a better rule.

"Best LR", two references, both trained with the real trainer for the objective's full ``train.epochs``
(9; mnist1d 27):
- LR scan: the other settings at their defaults (the setting the range test itself probes: same
  batch size, optimizer, weight decay), LR on a log grid (1/8 decade full, 1/4 quick), cached in
  ``results/lr_scan_<objective>.json``. Reported as the argmax and, less noisy, the geometric centre
  of the contiguous band around it that stays within 1 % of the best val_acc (the band of LRs that
  reach ``efficiency.py``'s target; on digits the curve is flat within ±2 validation images over
  1.5 decades, so the argmax there is mostly noise).
- Sweep best: the best trial of the recorded curves table (``results/curves_<objective>.json``,
  written by ``efficiency.py``: K configs of the whole default space; batch size, weight decay and
  warmup vary too), and the geometric mean LR of its top 5.
Cost: the range test's steps ÷ steps per epoch (at the default batch size), and its seconds.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
from common import compose, console, filled, fmt, print_header, quiet, read_json, steps_per_epoch, summarize, table, train_config, write_json

RULES = {
    "steepest": lambda s: s["steepest"],
    "min_loss / 10": lambda s: s["min_loss"] / 10,
    "min_loss": lambda s: s["min_loss"],  # the upper bound of the lr_find=auto window
    "window centre": lambda s: math.sqrt(s["search_low"] * s["search_high"]),
    "3 × steepest": lambda s: 3 * s["steepest"],
    "min_loss / 3": lambda s: s["min_loss"] / 3,
    "edge / 10": lambda s: s["edge"] / 10,
    "edge / 30": lambda s: s["edge"] / 30,
    "sqrt(steepest · min_loss)": lambda s: math.sqrt(s["steepest"] * s["min_loss"]),
}
BAND = 0.99  # the scan's "good" LRs: within 1 % of its best val_acc
SCAN_RANGE = {"digits_mlp": (-4.0, -0.5), "tiny_transformer": (-3.25, -1.0), "mnist1d": (-3.0, -0.5)}  # log10 LR; past the optimum on each side


def range_tests(objective: str, seeds: list[int]) -> list[dict[str, Any]]:
    from sweeps.config.sections import Sections
    from sweeps.lr.runner import run_range_test

    out = []
    for seed in seeds:
        cfg = compose(objective, f"train.seed={seed}")
        start = time.perf_counter()
        report = run_range_test(objective=cfg.objective, train=cfg.train, settings=Sections.of(cfg).lr_find)
        spe = steps_per_epoch(cfg)
        out.append({**report.summary(), "seed": seed, "steps_run": report.result.steps_run, "stop_reason": report.result.stop_reason,
                    "steps_per_epoch": spe, "cost_epochs": report.result.steps_run / spe, "seconds": time.perf_counter() - start})
    return out


def lr_scan(objective: str, step_decades: float, rerecord: bool) -> dict[str, Any]:
    """val_acc after the objective's train.epochs on a log-LR grid, other settings at defaults (cached)."""
    from sweeps.search.space import parse_search_space

    name = f"lr_scan_{objective}"
    cached = read_json(name)
    low, high = SCAN_RANGE[objective]
    if cached and not rerecord and cached["step_decades"] <= step_decades + 1e-9:
        console.print(f"reusing benchmarks/results/{name}.json ({len(cached['points'])} LRs; --record to redo)")
        return cached
    cfg = compose(objective)
    space = parse_search_space(cfg)
    exponents = np.arange(low, high + 1e-9, step_decades)
    start = time.perf_counter()
    points = []
    for i, e in enumerate(exponents):
        entry = train_config(cfg, space, filled(space, cfg, {"lr": float(10**e)}))
        final = entry["curve"][-1] if entry["diverged_at_step"] is None else 0.0
        points.append({"lr": float(10**e), "val_acc": final, "curve": entry["curve"], "seconds": entry["seconds"]})
        console.print(f"  [{i + 1}/{len(exponents)}] {objective} lr={10**e:.3g} → {final:.4f} ({entry['seconds']:.1f} s)")
    doc = {"objective": objective, "step_decades": step_decades, "epochs": int(cfg.train.epochs), "points": points, "seconds": time.perf_counter() - start}
    write_json(name, doc, command=COMMAND)
    return doc


def scan_best(scan: dict[str, Any]) -> dict[str, float]:
    lrs = np.array([p["lr"] for p in scan["points"]])
    acc = np.array([p["val_acc"] for p in scan["points"]])
    i = int(np.argmax(acc))
    lo = hi = i
    while lo > 0 and acc[lo - 1] >= BAND * acc[i]:
        lo -= 1
    while hi < len(acc) - 1 and acc[hi + 1] >= BAND * acc[i]:
        hi += 1
    return {"argmax": float(lrs[i]), "best_val_acc": float(acc[i]), "band_centre": float(math.sqrt(lrs[lo] * lrs[hi])), "band": [float(lrs[lo]), float(lrs[hi])]}


def sweep_best(objective: str) -> dict[str, Any] | None:
    doc = read_json(f"curves_{objective}")
    if doc is None:
        return None
    done = [c for c in doc["configs"] if c["diverged_at_step"] is None]
    ranked = sorted(done, key=lambda c: -c["curve"][-1])
    top = ranked[:5]
    return {
        "best_lr": float(ranked[0]["params"]["lr"]),
        "best_val_acc": float(ranked[0]["curve"][-1]),
        "best_params": ranked[0]["params"],
        "top5_geo_lr": float(math.exp(np.mean([math.log(c["params"]["lr"]) for c in top]))),
        "top5_lrs": [float(c["params"]["lr"]) for c in top],
        "n_configs": len(doc["configs"]),
    }


def decades(a: float, b: float) -> float:
    return abs(math.log10(a / b))


def main() -> None:
    global COMMAND
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 range-test seed, 1/4-decade LR scan (a few minutes)")
    parser.add_argument("--objectives", nargs="+", default=["digits_mlp", "tiny_transformer"])
    parser.add_argument("--record", action="store_true", help="redo the LR scans even if cached")
    args = parser.parse_args()
    COMMAND = print_header("LR finder fidelity: |log10(suggested ÷ best LR)| in decades (target ≤ 0.3)")
    quiet()
    seeds = [0] if args.quick else [0, 1, 2]
    results: dict[str, Any] = {"seeds": seeds, "objectives": {}}
    summary_rows: dict[str, list[float]] = {rule: [] for rule in RULES}
    for objective in args.objectives:
        tests = range_tests(objective, seeds)
        scan = lr_scan(objective, 0.25 if args.quick else 0.125, args.record)
        refs = {"scan argmax": scan_best(scan)["argmax"], "scan 99% band centre": scan_best(scan)["band_centre"]}
        sweep = sweep_best(objective)
        if sweep:
            refs["sweep best trial"] = sweep["best_lr"]
            refs["sweep top-5 geo-mean"] = sweep["top5_geo_lr"]
        rows, errors = [], {}
        for rule, fn in RULES.items():
            values = [fn(t) for t in tests]
            errs = {ref: summarize(decades(v, lr) for v in values) for ref, lr in refs.items()}
            errors[rule] = {"lr": summarize(values), "error_decades": errs}
            summary_rows[rule] += [errs[ref]["median"] for ref in refs]
            rows.append([rule, f"{np.median(values):.3g}", *[f"{errs[ref]['median']:.2f}" + (f" ({errs[ref]['min']:.2f}–{errs[ref]['max']:.2f})" if len(seeds) > 1 else "") for ref in refs]])
        cost = summarize(t["cost_epochs"] for t in tests)
        secs = summarize(t["seconds"] for t in tests)
        best = scan_best(scan)
        table(f"{objective}: |log10(suggested ÷ best LR)| in decades (median over {len(seeds)} range-test seeds, min–max)",
              ["rule", "suggested LR", *[f"vs {ref} ({lr:.3g})" for ref, lr in refs.items()]], rows,
              caption=(f"range test: {tests[0]['steps_run']} steps ({tests[0]['stop_reason']}), {fmt(cost['median'])} epochs, {fmt(secs['median'])} s; "
                       f"readings (seed 0): steepest {tests[0]['steepest']:.3g}, min_loss {tests[0]['min_loss']:.3g}, edge {tests[0]['edge']:.3g}. "
                       f"LR scan ({len(scan['points'])} LRs, defaults): best val_acc {best['best_val_acc']:.4f} at {best['argmax']:.3g}, "
                       f"within 1% over [{best['band'][0]:.3g}, {best['band'][1]:.3g}]"
                       + (f"; sweep table best {sweep['best_val_acc']:.4f} with {sweep['best_params']}" if sweep else "")))
        results["objectives"][objective] = {"range_tests": tests, "references": refs, "scan_best": best, "sweep_best": sweep, "rules": errors,
                                            "cost_epochs": cost, "seconds": secs}
    table("all objectives and references: mean of the median errors (decades; lower is better)",
          ["rule", "mean error", "worst"], sorted(([r, float(np.mean(v)), float(np.max(v))] for r, v in summary_rows.items()), key=lambda row: row[1]))
    results["rule_summary"] = {r: {"mean": float(np.mean(v)), "max": float(np.max(v))} for r, v in summary_rows.items()}
    name = "lr_finder_fidelity_quick" if args.quick else "lr_finder_fidelity"
    if args.objectives != ["digits_mlp", "tiny_transformer"]:  # a run on other objectives keeps the full record
        name += "_" + "_".join(args.objectives)
    write_json(name, results, command=COMMAND)


COMMAND = ""

if __name__ == "__main__":
    main()
