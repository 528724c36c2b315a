"""Idle job slots under Hydra's joblib launcher: the sweeps sweeper (a slot refills as soon as its trial
ends) against hydra-optuna-sweeper's batch barrier (``n_jobs`` trials per batch; the next batch starts
when the slowest one ends, hydra#1954).

Both sweep the same Hydra app with trials of unequal length: ``epochs`` epochs of ``epoch_seconds``
(``choice(0.25, 1.0, 4.0)``: 1 s to 16 s a trial) drawn by a random sampler, 2 joblib workers, the
same seeds. The app writes each job's start and end (wall clock, process id); a slot's idle time is
the gap between one job ending and the next starting in the same worker process. The training is a
sleep: what is measured is scheduling, so that the 2 shared cores' load does not blur it.

sweeps        hydra/sweeper=sweeps, Optuna study on PostgreSQL, MLflow on PostgreSQL (two fresh
              databases per run), hydra.sweeper.n_jobs=2. Each trial's job also opens its trial and
              child run, reports every epoch and closes both: that cost sits inside the job, not in the gap.
batch         hydra/sweeper=optuna (hydra-optuna-sweeper 1.3.0, which pins optuna<3, so it runs from its own
              virtualenv: ``--baseline-python``, made with ``python -m venv V && V/bin/pip install
              hydra-optuna-sweeper hydra-joblib-launcher 'hydra-core==1.3.2'``: with the hydra-core 1.4
              release candidate pip picks, its sampler config is not instantiated), in-memory storage
              (optuna 2.10's RDB storage fails on SQLAlchemy 2), n_jobs=2.

    .venv/bin/python benchmarks/hydra_launch.py [--seeds 3] [--trials 16] [--baseline-python /tmp/hos-venv/bin/python] [--from-results]

Writes ``benchmarks/results/hydra_launch.json``. Startup (imports, worker spawn, schema creation) is
excluded: only gaps between consecutive jobs of one worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, fmt_spread, print_header, read_json, summarize, table, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("SWEEPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
APP = '''
import json, os, time
import hydra
from hydra.core.hydra_config import HydraConfig
from sweeps.api import report

@hydra.main(version_base=None, config_path="conf", config_name="config")
def work(cfg):
    start = time.time()
    for epoch in range(1, cfg.epochs + 1):
        time.sleep(cfg.epoch_seconds)  # the "training": scheduling is what is measured
        report(epoch, loss=cfg.epoch_seconds + 1.0 / epoch)
    end = time.time()
    with open(os.environ["BENCH_LOG"], "a") as log:
        log.write(json.dumps({"job": HydraConfig.get().job.num, "pid": os.getpid(), "start": start, "end": end}) + "\\n")
    return cfg.epoch_seconds + 1.0 / cfg.epochs

if __name__ == "__main__":
    work()
'''
CONFIG = "epochs: 4\nepoch_seconds: 0.3\n"
SEARCH = "epoch_seconds=choice(0.25, 1.0, 4.0)"


def run_design(design: str, seed: int, trials: int, folder: Path, baseline_python: str) -> dict[str, Any]:
    app = folder / f"{design}-{seed}"
    (app / "conf").mkdir(parents=True)
    (app / "app.py").write_text(APP)
    (app / "conf" / "config.yaml").write_text(CONFIG)
    log = app / "jobs.jsonl"
    common = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra/sweeper/sampler=random", f"hydra.sweeper.sampler.seed={seed}",
              "hydra.sweeper.n_jobs=2", f"hydra.sweeper.n_trials={trials}", "hydra.sweep.dir=multirun", SEARCH]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore", "BENCH_LOG": str(log), "MLFLOW_LOGGING_LEVEL": "ERROR"}
    databases: list[str] = []
    if design == "sweeps":
        databases = [f"bench_hydra_{uuid.uuid4().hex[:10]}" for _ in range(2)]
        for name in databases:
            _admin(f'CREATE DATABASE "{name}"')
        urls = [sqlalchemy.engine.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False) for name in databases]
        env.update({"SWEEPS_STORAGE_URL": urls[0], "MLFLOW_TRACKING_URI": urls[1]})
        command = [sys.executable, "app.py", "-m", "hydra/sweeper=sweeps", "hydra.sweeper.metric=loss", *common]
    else:
        command = [baseline_python, "app.py", "-m", "hydra/sweeper=optuna", "hydra.sweeper.storage=null", *common]
    try:
        done = subprocess.run(command, cwd=app, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{design} seed {seed} failed:\n{done.stderr[-3000:]}")
    finally:
        for name in databases:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    jobs = [json.loads(line) for line in log.read_text().splitlines()]
    return {"design": design, "seed": seed, "jobs": jobs, **slot_idle(jobs)}


def slot_idle(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Gaps between consecutive jobs of one worker process, and the share of slot time spent training."""
    by_worker: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_worker[job["pid"]].append(job)
    gaps = []
    for runs in by_worker.values():
        runs.sort(key=lambda j: j["start"])
        gaps += [later["start"] - earlier["end"] for earlier, later in zip(runs, runs[1:])]
    first, last = min(j["start"] for j in jobs), max(j["end"] for j in jobs)
    busy = sum(j["end"] - j["start"] for j in jobs)
    return {"gaps": gaps, "workers": len(by_worker), "span": last - first, "busy_share": busy / (2 * (last - first))}


def _admin(statement: str) -> None:
    engine = sqlalchemy.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(statement))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--baseline-python", default="/tmp/hos-venv/bin/python")
    parser.add_argument("--from-results", action="store_true", help="print the tables of results/hydra_launch.json again, run nothing")
    args = parser.parse_args()
    command = print_header("Idle job slots: sweeps sweeper vs hydra-optuna-sweeper's batches (hydra-joblib-launcher, 2 jobs)")
    if args.from_results:
        recorded = read_json("hydra_launch")
        report(recorded["runs"], recorded["seeds"], recorded["trials"])
        return
    folder = Path(tempfile.mkdtemp(prefix="sweeps-bench-hydra-"))
    results = []
    try:
        for seed in range(args.seeds):
            for design in ("sweeps", "batch"):  # interleaved, so load drift hits both alike
                results.append(run_design(design, seed, args.trials, folder, args.baseline_python))
                last = results[-1]
                print(f"  {design:6s} seed {seed}: {len(last['jobs'])} jobs, median gap {fmt(summarize(last['gaps'])['median'])} s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = report(results, args.seeds, args.trials)
    write_json("hydra_launch", {"summary": summary, "runs": results, "trials": args.trials, "seeds": args.seeds}, command)


def report(results: list[dict[str, Any]], seeds: int, trials: int) -> dict[str, Any]:
    """Per design: the gaps pooled over seeds, and per run the idle seconds per trial, the slots'
    busy share and the wall time per trial (medians over seeds)."""
    rows, summary = [], {}
    for design in ("sweeps", "batch"):
        runs = [r for r in results if r["design"] == design]
        gaps = summarize(g for r in runs for g in r["gaps"])
        mean_gap = summarize(sum(r["gaps"]) / len(r["gaps"]) for r in runs)
        busy = summarize(r["busy_share"] for r in runs)
        per_trial = summarize(r["span"] / len(r["jobs"]) for r in runs)
        summary[design] = {"gap_s": gaps, "mean_gap_s": mean_gap, "busy_share": busy, "wall_per_trial_s": per_trial,
                           "n_gaps_over_2s": sum(g > 2 for r in runs for g in r["gaps"]), "n_gaps": sum(len(r["gaps"]) for r in runs)}
        rows.append([design, fmt_spread(gaps), fmt_spread(mean_gap), fmt(gaps["max"]), f"{summary[design]['n_gaps_over_2s']}/{summary[design]['n_gaps']}",
                     fmt_spread(busy), fmt_spread(per_trial)])
    table(f"slot idle between trials, {seeds} seeds × {trials} trials (median and interquartile range)",
          ["design", "idle gap s", "mean gap s (per run)", "max gap s", "gaps > 2 s", "slot busy share", "wall s / trial"], rows)
    sweeps, batch = summary["sweeps"], summary["batch"]
    print(f"batch ÷ sweeps: mean idle gap {fmt(batch['mean_gap_s']['median'] / sweeps['mean_gap_s']['median'])}, "
          f"wall per trial {fmt(batch['wall_per_trial_s']['median'] / sweeps['wall_per_trial_s']['median'])}")
    return summary


if __name__ == "__main__":
    main()
