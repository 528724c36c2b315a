"""Screenshots of the MLflow UI as a user meets it after a sweep, from a real headless browser.

Runs a real sweep in an empty folder (digits_mlp, an LR range wide enough that some trials diverge,
Hyperband pruning), serves it with ``sweeps ui``, and has headless Chromium (``apt-get install
chromium``) draw four pages: the experiment's runs table, the parent run, a pruned trial and a
diverged trial. The PNGs go to ``benchmarks/results/ui/``; the README shows them.

    .venv/bin/python benchmarks/ui_screenshots.py [--chromium /usr/bin/chromium] [--trials 12]

It also checks what the pictures should show: no trial run is KILLED or FAILED, pruned and diverged
trials carry their outcome, and the diverged ones have a training-loss curve.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

OUT = Path(__file__).parent / "results" / "ui"
STUDY = "ui-demo"
ML_VIEW = "workflowType=machine_learning"  # sweeps.track.ui.ML_VIEW
# the trials alone, best first: MLflow keeps the filter and the order in the URL (not the columns)
TRIALS_QUERY = "searchFilter=" + quote("tags.`sweeps.role` = 'trial'") + "&orderByKey=" + quote("metrics.`final_val_acc`") + "&orderByAsc=false"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot(chromium: str, url: str, path: Path, wait_ms: int, height: int) -> None:
    """Chromium's own headless screenshot: JavaScript runs for ``wait_ms`` of virtual time first."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--window-size=1600,{height}", f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--wait-ms", type=int, default=15000)
    args = parser.parse_args()
    sweeps = str(Path(sys.executable).parent / "sweeps")
    folder = Path(tempfile.mkdtemp(prefix="sweeps-ui-shots-"))
    overrides = [f"sweep.study_name={STUDY}", f"sweep.n_trials={args.trials}", "search.lr=tag(log, interval(1e-3, 10))"]
    subprocess.run([sweeps, "run", *overrides], cwd=folder, check=True, capture_output=True, text=True)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("sweeps.role") == "parent")
    trials = [r for r in runs if r.data.tags.get("sweeps.role") == "trial"]
    statuses = {r.info.status for r in trials}
    assert statuses <= {"FINISHED"}, f"trial runs not FINISHED: {statuses}"
    by_outcome = {}
    for run in sorted(trials, key=lambda r: r.info.run_name):
        by_outcome.setdefault(run.data.tags["sweeps.outcome"], run)
    if "diverged" in by_outcome:
        assert client.get_metric_history(by_outcome["diverged"].info.run_id, "train_loss_step"), "a diverged run without its loss"

    port = free_port()
    ui = subprocess.Popen([sweeps, "ui", "--port", str(port)], cwd=folder, stdout=subprocess.PIPE, text=True, start_new_session=True)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        ui.stdout.readline()  # printed once the server answers
        base = f"http://127.0.0.1:{port}"
        urllib.request.urlopen(f"{base}/health", timeout=10).read()
        experiment_url = f"{base}/#/experiments/{experiment.experiment_id}"
        view = f"?{ML_VIEW}"  # MLflow 3 opens in its GenAI view unless told (or toggled once in the browser)
        pages = {
            "runs_table": f"{experiment_url}/runs{view}",
            "trials_table": f"{experiment_url}/runs{view}&{TRIALS_QUERY}",
            "parent_run": f"{experiment_url}/runs/{parent.info.run_id}{view}",
        }
        for outcome in ("pruned", "diverged", "complete"):
            if outcome in by_outcome:
                pages[f"trial_{outcome}"] = f"{experiment_url}/runs/{by_outcome[outcome].info.run_id}{view}"
        for name, url in pages.items():
            screenshot(args.chromium, url, OUT / f"{name}.png", args.wait_ms, 1000 if name.endswith("table") else 2000)
            print(f"{name}: {OUT / f'{name}.png'}  ({url.replace(base, '')})", flush=True)
    finally:
        os.kill(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
    counts = {outcome: sum(r.data.tags["sweeps.outcome"] == outcome for r in trials) for outcome in ("complete", "pruned", "diverged", "failed")}
    print(f"sweep {STUDY}: {len(trials)} trial runs, all FINISHED; outcomes {counts}; parent params {len(parent.data.params)}")


if __name__ == "__main__":
    main()
