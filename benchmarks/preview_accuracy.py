"""Preview's time estimate against the real sweep it previews.

For each built-in objective and seed: ``sweeps preview``'s expected time (epochs at the measured
epoch time, plus the service cost measured on the spot), then ``sweeps run`` with the same overrides
in an empty folder, timed from the command's start to its exit. Prints ratio = real / expected
(target: within 2x, i.e. 0.5-2.0) and writes benchmarks/results/preview_accuracy.json.

    .venv/bin/python benchmarks/preview_accuracy.py [--seeds 2] [--objectives digits_mlp tiny_transformer]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "preview_accuracy.json"


def predicted(overrides: list[str]) -> dict:
    code = (
        "import json, sys\n"
        "from sweeps.config.compose import compose_config\n"
        "from sweeps.search.service_cost import measure_service_cost\n"
        "from sweeps.config.sections import Sections\n"
        "from sweeps.search.preview import estimate_budget, measure_epoch_seconds\n"
        "from sweeps.search.space import parse_search_space\n"
        "cfg = compose_config(sys.argv[1:])\n"
        "service = measure_service_cost(cfg)\n"
        "seconds = measure_epoch_seconds(objective=cfg.objective, train=cfg.train)\n"
        "budget = estimate_budget(Sections.of(cfg).sweep, parse_search_space(cfg), epoch_seconds=seconds, service=service)\n"
        "print(json.dumps({'expected': budget.expected_seconds, 'worst': budget.worst_case_seconds, 'epoch_seconds': budget.epoch_seconds,"
        " 'expected_epochs': budget.expected_epochs, 'startup': service.startup_seconds, 'per_trial': service.per_trial_seconds, 'close': service.close_seconds}))\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, "-c", code, *overrides], cwd=folder, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def real_seconds(overrides: list[str]) -> float:
    sweeps = Path(sys.executable).parent / "sweeps"
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([str(sweeps), "run", *overrides], cwd=folder, capture_output=True, text=True, check=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--objectives", nargs="+", default=["digits_mlp", "tiny_transformer"])
    args = parser.parse_args()
    rows = []
    for objective in args.objectives:
        for seed in range(args.seeds):
            overrides = [f"objective={objective}", f"sweep.seed={seed}"]
            guess = predicted(overrides)
            real = real_seconds(overrides)
            row = {"objective": objective, "seed": seed, "real_seconds": real, **guess, "ratio_real_to_expected": real / guess["expected"]}
            rows.append(row)
            print(f"{objective:17s} seed {seed}: expected {guess['expected']:6.1f} s (epochs {guess['expected_epochs']:.1f} x {guess['epoch_seconds']:.3f} s, "
                  f"start-up {guess['startup']:.1f} s, {guess['per_trial'] * 1000:.0f} ms/trial, report {guess['close']:.1f} s)  "
                  f"real {real:6.1f} s  ratio {row['ratio_real_to_expected']:.2f}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    RESULTS.write_text(json.dumps({"rows": rows, "loadavg_at_end": load}, indent=1))


if __name__ == "__main__":
    main()
