"""How fast the ``sweeps`` command answers when it has nothing heavy to do: help and refused input.

Each command runs as a fresh process (the installed console script), ``--runs`` times after one
discarded warm-up run, in an empty scratch folder; the table gives the median and the spread, and the
ratio to two baselines: a bare interpreter (``python -c pass``, the floor) and importing the sweep
stack (``python -c "import sweeps.run.sweep"``: Optuna, MLflow, SQLAlchemy, torch — what a CLI that
imported everything up front would pay before refusing a bad override). One more run per command
with ``-X importtime`` names the heavy libraries it loaded. Target (issue 14): every command < 1 s.

    python benchmarks/cli_startup.py            # 5 runs per command
    python benchmarks/cli_startup.py --runs 9

Writes ``benchmarks/results/cli_startup.json``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import fmt, print_header, table, write_json  # noqa: E402

TARGET_SECONDS = 1.0
HEAVY = ("optuna", "mlflow", "sqlalchemy", "torch", "matplotlib", "sklearn")
SWEEPS = str(Path(sys.executable).with_name("sweeps"))

# (label, arguments of the console script, expected exit status)
COMMANDS = [
    ("sweeps --help", ["--help"], 0),
    ("sweeps run --help", ["run", "--help"], 0),
    ("sweeps preview --help", ["preview", "--help"], 0),
    ("sweeps lr-find --help", ["lr-find", "--help"], 0),
    ("bad value: run sweep.n_trials=oops", ["run", "sweep.n_trials=oops"], 2),
    ("unknown key: run sweep.n_trails=5", ["run", "sweep.n_trails=5"], 2),
    ("unknown option: run objective=nope", ["run", "objective=nope"], 2),
]
BASELINES = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("python -c 'import sweeps.run.sweep'", [sys.executable, "-c", "import sweeps.run.sweep"]),
]


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - start, done.returncode


def seconds(argv: list[str], runs: int, cwd: Path, expected: int = 0) -> list[float]:
    timed(argv, cwd)  # warm-up: file cache, .pyc
    out = []
    for _ in range(runs):
        elapsed, code = timed(argv, cwd)
        if code != expected:
            raise SystemExit(f"{' '.join(argv)}: exit {code}, expected {expected}")
        out.append(elapsed)
    return out


def heavy_imports(args: list[str], cwd: Path) -> list[str]:
    """The heavy top-level packages the command imported (one ``-X importtime`` run)."""
    code = f"import sys; sys.argv = ['sweeps', *{args!r}]; from sweeps.cli import main; main()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if line.startswith("import time:")}
    return sorted(names & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    cmd = print_header(f"CLI start-up: median of {runs} fresh processes per command")
    with tempfile.TemporaryDirectory(prefix="sweeps-cli-startup-") as folder:
        cwd = Path(folder)
        base = {label: seconds(argv, runs, cwd) for label, argv in BASELINES}
        floor, stack = (statistics.median(base[label]) for label, _ in BASELINES)
        rows, results = [], {}
        for label, args, expected in COMMANDS:
            values = seconds([SWEEPS, *args], runs, cwd, expected)
            median = statistics.median(values)
            heavy = heavy_imports(args, cwd)
            results[label] = {"argv": ["sweeps", *args], "exit": expected, "seconds": values, "median_s": median,
                              "heavy_imports": heavy, "under_target": median < TARGET_SECONDS}
            rows.append((label, fmt(median), f"{min(values):.3f}-{max(values):.3f}", f"{median / floor:.1f}x",
                         f"{median / stack:.2f}x", ", ".join(heavy) or "-", "yes" if median < TARGET_SECONDS else "NO"))
        left_behind = sorted(p.name for p in cwd.iterdir())
    for label, values in base.items():
        rows.append((f"baseline: {label}", fmt(statistics.median(values)), f"{min(values):.3f}-{max(values):.3f}",
                     f"{statistics.median(values) / floor:.1f}x", f"{statistics.median(values) / stack:.2f}x", "", ""))
    table("seconds per command (fresh process)",  # prints itself
          ["command", "median s", "range", "÷ bare python", "÷ import sweeps.run.sweep", "heavy imports", "< 1 s"], rows,
          caption=f"files left in the scratch folder: {left_behind or 'none'}")
    write_json("cli_startup", {
        "runs": runs, "target_s": TARGET_SECONDS, "commands": results,
        "baselines": {label: {"seconds": values, "median_s": statistics.median(values)} for label, values in base.items()},
        "files_left_in_cwd": left_behind,
    }, cmd)


if __name__ == "__main__":
    main()
