"""GPU workers: trials per hour and GPU utilisation with k trials packed on one GPU, fp32 vs bf16,
and the tracking overhead per trial; ratios against one fp32 trial per GPU.

Arms (per objective): k = 1, 2, 4, 8 worker processes on GPU 0, each a real ``sweeps run`` (the
service's whole trial path: Optuna ask/tell on SQLite, an MLflow child run on SQLite, per-epoch
metrics, diagnosis) with ``train.precision`` fp32 or bf16. Each worker has its own stores: several
workers on one study need PostgreSQL and an MLflow server, which the GPU machine lacks, and a
worker's trials cost the same whichever study they belong to. Trials: ``search=lr_only`` over a
healthy LR range (every trial trains all ``train.epochs``: none diverges, no pruning), random
sampler, so every trial is the same work. Once every worker has finished its first trial (imports,
CUDA context, fresh stores and first-trial costs behind it; at most ``--warmup`` s), the trials that
end within the next ``--window`` s are counted (every worker is in steady state, so completions
per window estimate the rate without bias); trials/hour =
count x 3600 / window, summed over the workers. GPU utilisation (the share of time a kernel ran,
NVML, or ``nvidia-smi`` when NVML is missing) and used memory are sampled every 0.1 s in the window.

``bare``: the same trials as a plain loop (``make_task`` + the shared trainer, no stores), k = 1,
fp32. Tracking overhead per trial = service trial time - bare trial time (medians), and its share of
the service trial's time.

Checks (one process each, among the arms): fp32 / bf16 / fp16 final metrics of one trial (fp16
exercises the loss scaler); the same trial trained twice with ``train.deterministic=true``, and twice
with ``false`` (how exactly ``sweeps train --config`` repeats a trial on this GPU); ``train.compile``
first-trial and steady trial times against eager (its one-off cost).

A time budget (``--budget`` s, default 420) skips the arms and checks that no longer fit, in
priority order, and says so. On a machine without a CUDA GPU it prints one line and exits 1
(``--allow-cpu`` runs the same harness on the CPU, to test it; results go to ``gpu_cpu_check.json``).

    python3 benchmarks/gpu.py [--quick] [--objectives tiny_transformer digits_mlp] [--window 10] [--budget 420]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LR_RANGE = "tag(log, interval(1e-3, 1e-2))"  # healthy on every built-in objective: no trial diverges


def trial_overrides(objective: str, epochs: int, precision: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        f"objective={objective}", "search=lr_only", f"search.lr={LR_RANGE}", "sweep.sampler=random", "sweep.pruner=none",
        f"train.epochs={epochs}", f"train.precision={precision}", *extra,
    ]


# ----------------------------------------------------------------------------------------------
# Workers (each its own process, started by the arms below).


def service_worker_command(folder: Path, index: int, objective: str, epochs: int, precision: str, extra: tuple[str, ...]) -> list[str]:
    stores = [f"storage.url=sqlite:///{folder}/optuna.db", f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.artifact_location={folder}/a"]
    settings = [*trial_overrides(objective, epochs, precision, extra), "sweep.n_trials=100000", f"sweep.seed={index}", "sweep.study_name=gpu-bench"]
    return [sys.executable, "-m", "sweeps.cli", "run", *stores, *settings]


def bare_worker(args: argparse.Namespace) -> None:
    """Trials back to back until killed; one JSON line per trial: start and end (epoch seconds)."""
    import importlib
    import random

    from sweeps.config.compose import compose_config
    from sweeps.train.reporter import recording_reporter
    from sweeps.train.training import train

    cfg = compose_config(trial_overrides(args.objective, args.epochs, args.precision, tuple(args.extra)))
    module = importlib.import_module(str(cfg.objective.target).partition(":")[0])
    rng = random.Random(args.index)
    with open(args.log, "a", buffering=1) as log:
        while True:
            cfg.train.lr = 10 ** rng.uniform(-3, -2)
            start = time.time()
            result = train(module.make_task(cfg.objective), cfg.train, recording_reporter(str(cfg.sweep.metric)))
            log.write(json.dumps({"start": start, "end": time.time(), "value": result.metrics[str(cfg.sweep.metric)]}) + "\n")


# ----------------------------------------------------------------------------------------------
# GPU sampling.


class GpuSampler:
    """Samples utilisation (%) and used memory (MiB) of GPU 0 every ``interval`` s in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.source = None
        self._stop = threading.Event()
        self._read = self._nvml() or self._nvidia_smi()

    def _nvml(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(int(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or 0))
        except Exception:
            return None
        self.source = "nvml"
        return lambda: (float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)

    def _nvidia_smi(self):
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i", "0"]
        try:
            subprocess.run(query, capture_output=True, check=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        self.source = "nvidia-smi"

        def read() -> tuple[float, float]:
            util, memory = subprocess.run(query, capture_output=True, text=True, timeout=5).stdout.strip().split(",")
            return float(util), float(memory)

        return read

    def __enter__(self) -> "GpuSampler":
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self._read())
            except Exception:
                pass

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        if self._read is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"source": self.source, "util_mean": None, "util_median": None, "memory_max_mib": None, "samples": 0}
        utils = [u for u, _ in self.samples]
        return {
            "source": self.source, "util_mean": statistics.fmean(utils), "util_median": statistics.median(utils),
            "memory_max_mib": max(m for _, m in self.samples), "samples": len(self.samples),
        }


# ----------------------------------------------------------------------------------------------
# One arm: k workers for warmup + window seconds.


def run_arm(args: argparse.Namespace, root: Path, objective: str, precision: str, workers: int, mode: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    name = f"{objective}-{mode}-{precision}-k{workers}" + ("-" + "-".join(e.replace("train.", "").replace("=", "") for e in extra) if extra else "")
    folder = root / name
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # sweeps is installed (editable here, --target on the GPU machine)
    if args.allow_cpu and not _cuda():
        extra = (*extra, "train.device=cpu")
    processes = []
    for index in range(workers):
        wfolder = folder / f"w{index}"
        wfolder.mkdir(parents=True)
        if mode == "service":
            command = service_worker_command(wfolder, index, objective, args.epochs, precision, extra)
        else:
            command = [sys.executable, __file__, "_bare", "--objective", objective, "--epochs", str(args.epochs), "--precision", precision,
                       "--index", str(index), "--log", str(wfolder / "trials.jsonl"), "--extra", *extra]
        log = open(wfolder / "worker.log", "w")
        processes.append(subprocess.Popen(command, cwd=wfolder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    warmup_s = _wait_for_first_trials(folder, workers, mode, processes, args.warmup)
    window_start = time.time()
    with GpuSampler() as gpu:
        time.sleep(args.window)
    window_end = time.time()
    crashed = [i for i, p in enumerate(processes) if p.poll() is not None]
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    trials = [t for index in range(workers) for t in _trials(folder / f"w{index}", mode)]
    counted = [t for t in trials if window_start <= t["end"] <= window_end]  # completions in the window: unbiased in steady state
    durations = [t["end"] - t["start"] for t in counted]
    row = {
        "arm": name, "objective": objective, "mode": mode, "precision": precision, "workers": workers, "extra": list(extra),
        "warmup_s": warmup_s, "window_s": window_end - window_start, "trials_in_window": len(counted),
        "trials_per_hour": len(counted) * 3600 / (window_end - window_start),
        "trial_s_median": statistics.median(durations) if durations else None,
        "failed_trials": sum(t.get("state") == "FAIL" for t in trials),
        "crashed_workers": {i: _tail(folder / f"w{i}" / "worker.log") for i in crashed},
        **{f"gpu_{k}": v for k, v in gpu.summary().items()},
    }
    if not counted:
        row["log_tail"] = _tail(folder / "w0" / "worker.log")
    return row


def _wait_for_first_trials(folder: Path, workers: int, mode: str, processes: list, limit: float) -> float:
    """Warm-up ends when every worker has finished a trial (imports, CUDA context, stores and the
    first trial's one-off costs are behind it), or after ``limit`` s; returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit and all(p.poll() is None for p in processes):
        if all(_finished_count(folder / f"w{i}", mode) >= 1 for i in range(workers)):
            break
        time.sleep(0.25)
    return time.monotonic() - start


def _finished_count(folder: Path, mode: str) -> int:
    if mode == "bare":
        path = folder / "trials.jsonl"
        return path.read_text().count("\n") if path.exists() else 0
    import sqlite3

    try:
        with sqlite3.connect(f"file:{folder}/optuna.db?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'FAIL')").fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def _trials(folder: Path, mode: str) -> list[dict[str, Any]]:
    if mode == "bare":
        path = folder / "trials.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip().endswith("}")]
    import optuna

    try:
        study = optuna.load_study(study_name="gpu-bench", storage=f"sqlite:///{folder}/optuna.db")
    except Exception:
        return []
    return [
        {"start": t.datetime_start.timestamp(), "end": t.datetime_complete.timestamp(), "state": t.state.name}
        for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete and t.state.name in ("COMPLETE", "FAIL")
    ]


def _tail(path: Path, lines: int = 4) -> str:
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) if path.exists() else ""


def _mnist1d() -> list[str]:
    """``["mnist1d"]`` where that objective (the harder real-training one) and its package are installed."""
    import importlib.util

    from sweeps.config.compose import builtin_config_dir

    found = (builtin_config_dir() / "objective" / "mnist1d.yaml").exists() and importlib.util.find_spec("mnist1d") is not None
    return ["mnist1d"] if found else []


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ----------------------------------------------------------------------------------------------
# Checks: precision numerics, reproducibility, compile cost (each in a fresh process).


def checks_worker(args: argparse.Namespace) -> None:
    """Prints one JSON object: what ``args.check`` measured."""
    import importlib

    from sweeps.config.compose import compose_config
    from sweeps.train.reporter import recording_reporter
    from sweeps.train.training import train

    def trial(*overrides: str) -> tuple[float, dict[str, float]]:
        cfg = compose_config([f"objective={args.objective}", f"train.epochs={args.epochs}", *overrides, *args.extra])
        module = importlib.import_module(str(cfg.objective.target).partition(":")[0])
        start = time.perf_counter()
        result = train(module.make_task(cfg.objective), cfg.train, recording_reporter("val_acc"))
        _sync()
        return time.perf_counter() - start, result.metrics

    out: dict[str, Any] = {"check": args.check, "objective": args.objective}
    if args.check == "precision":
        trial()  # warm-up: CUDA context, cuBLAS handles, data cache
        for precision in ("fp32", "bf16", "fp16"):
            try:
                seconds, metrics = trial(f"train.precision={precision}")
                out[precision] = {"seconds": seconds, **metrics}
            except Exception as err:  # fp16 on a CPU-only harness check
                out[precision] = {"error": f"{type(err).__name__}: {err}"}
    elif args.check == "repeat":  # the same trial twice in one process (settings from --extra)
        runs = [trial()[1] for _ in range(2)]
        out.update({
            "extra": args.extra, "val_loss": [r["val_loss"] for r in runs], "val_acc": [r["val_acc"] for r in runs],
            "abs_diff_val_loss": abs(runs[0]["val_loss"] - runs[1]["val_loss"]), "abs_diff_val_acc": abs(runs[0]["val_acc"] - runs[1]["val_acc"]),
        })
    elif args.check == "compile":
        eager = [trial("train.compile=false")[0] for _ in range(2)]
        compiled = [trial("train.compile=true") for _ in range(3)]
        out.update({
            "eager_first_s": eager[0], "eager_steady_s": eager[1],
            "compiled_first_s": compiled[0][0], "compiled_steady_s": statistics.median(c[0] for c in compiled[1:]),
            "compile_one_off_s": compiled[0][0] - eager[1], "val_acc_eager_vs_compiled": [trial("train.compile=false")[1]["val_acc"], compiled[-1][1]["val_acc"]],
        })
    print("CHECK " + json.dumps(out))


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_check(args: argparse.Namespace, check: str, objective: str, timeout: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    extra = [*extra, *(["train.device=cpu"] if args.allow_cpu and not _cuda() else [])]
    command = [sys.executable, __file__, "_check", "--check", check, "--objective", objective, "--epochs", str(args.epochs), "--extra", *extra]
    env = dict(os.environ)
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"check": check, "objective": objective, "error": f"did not finish within {timeout:.0f} s (the budget)"}
    for line in done.stdout.splitlines():
        if line.startswith("CHECK "):
            return json.loads(line[6:])
    return {"check": check, "objective": objective, "error": (done.stderr or done.stdout).strip().splitlines()[-3:]}


# ----------------------------------------------------------------------------------------------
# The plan, in priority order, and the report.


def plan(args: argparse.Namespace) -> list[tuple]:
    """Arms and checks in priority order, so that a budget cut drops the least important: the first
    objective's baseline, bare run and packing curve (largest k first); every other objective at 1
    and the largest k (and bare, for the second); bf16 at 1 and the largest k; the precision check;
    the determinism checks; the rest (bf16 at the other k, bare runs of later objectives, compile)."""
    first, *others = args.objectives
    ks = sorted(k for k in args.per_gpu if k != 1)[::-1]
    top = max(args.per_gpu)
    bf16 = "bf16" in args.precisions
    items: list[tuple] = [("arm", first, "fp32", 1, "service"), ("arm", first, "fp32", 1, "bare")]
    items += [("arm", first, "fp32", k, "service") for k in ks]
    for position, objective in enumerate(others):
        items += [("arm", objective, "fp32", k, "service") for k in dict.fromkeys([1, top])]
        if position == 0:
            items.append(("arm", objective, "fp32", 1, "bare"))
    if bf16:
        items += [("arm", first, "bf16", k, "service") for k in dict.fromkeys([1, top])]
    items.append(("check", "precision", first))
    # CUDA determinism: each setting in its own process (cuBLAS reads its workspace setting once)
    items += [("check", "repeat", first, ("train.deterministic=true",)), ("check", "repeat", first, ("train.deterministic=false",))]
    if bf16:
        items += [("arm", first, "bf16", k, "service") for k in ks if k != top]
    items += [("arm", objective, "fp32", 1, "bare") for objective in others[1:]]
    items.append(("check", "compile", first))
    return items


def report(rows: list[dict[str, Any]]) -> None:
    from common import table

    for objective in dict.fromkeys(r["objective"] for r in rows):
        mine = [r for r in rows if r["objective"] == objective]
        base = next((r for r in mine if r["mode"] == "service" and r["precision"] == "fp32" and r["workers"] == 1), None)
        base_rate = base["trials_per_hour"] if base else None
        table(
            f"{objective}: trials per hour with k trials per GPU (ratio vs one fp32 trial per GPU)",
            ["arm", "workers", "trials/h", "ratio", "GPU util % (mean)", "GPU mem MiB (max)", "trial s (median)", "in window", "failed"],
            [[
                f"{r['mode']} {r['precision']}" + (f" {' '.join(r['extra'])}" if r["extra"] else ""), r["workers"], r["trials_per_hour"],
                r["trials_per_hour"] / base_rate if base_rate and r["mode"] == "service" else None, r["gpu_util_mean"], r["gpu_memory_max_mib"], r["trial_s_median"],
                r["trials_in_window"], r["failed_trials"] + len(r["crashed_workers"]),
            ] for r in mine],
        )
        found = overheads(rows).get(objective)
        if found:
            print(f"{objective}: tracking overhead per trial {found['overhead_s'] * 1000:.0f} ms = {found['overhead_share']:.1%} of a service trial "
                  f"(k=1 fp32, by throughput: {found['service_trial_s']:.3f} s vs {found['bare_trial_s']:.3f} s bare per trial; "
                  f"by the trials' own spans: {found['span_overhead_s'] * 1000:.0f} ms)")


def report_checks(checks: list[dict[str, Any]]) -> None:
    for found in checks:
        name, objective = found["check"], found["objective"]
        if "error" in found:
            print(f"check {name} ({objective}): {found['error']}")
        elif name == "precision":
            print(f"check precision ({objective}, one trial each): " + "; ".join(
                f"{p} " + (f"val_acc {found[p]['val_acc']:.4f} val_loss {found[p]['val_loss']:.4f} in {found[p]['seconds']:.2f} s" if "error" not in found[p] else found[p]["error"][:80])
                for p in ("fp32", "bf16", "fp16")))
        elif name == "repeat":
            print(f"check repeat ({objective}, {' '.join(found['extra'])}): the same trial twice differs by {found['abs_diff_val_loss']:.3g} in val_loss, "
                  f"{found['abs_diff_val_acc']:.3g} in val_acc")
        elif name == "compile":
            print(f"check compile ({objective}): first trial {found['compiled_first_s']:.1f} s compiled vs {found['eager_first_s']:.1f} s eager (one-off "
                  f"{found['compile_one_off_s']:.1f} s over a steady eager trial); steady {found['compiled_steady_s']:.2f} s vs {found['eager_steady_s']:.2f} s")


def overheads(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Service minus bare seconds per trial at k=1 fp32: by throughput (everything a worker does per
    trial, the loop between trials included) and by the median span of a trial (Optuna's start to end)."""
    out = {}
    for objective in dict.fromkeys(r["objective"] for r in rows):
        base = next((r for r in rows if r["objective"] == objective and r["mode"] == "service" and r["precision"] == "fp32" and r["workers"] == 1), None)
        bare = next((r for r in rows if r["objective"] == objective and r["mode"] == "bare"), None)
        if base and bare and base["trials_per_hour"] and bare["trials_per_hour"] and base["trial_s_median"] and bare["trial_s_median"]:
            service_s, bare_s = 3600 / base["trials_per_hour"], 3600 / bare["trials_per_hour"]
            out[objective] = {
                "service_trial_s": service_s, "bare_trial_s": bare_s, "overhead_s": service_s - bare_s, "overhead_share": (service_s - bare_s) / service_s,
                "span_overhead_s": base["trial_s_median"] - bare["trial_s_median"],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="bench", choices=["bench", "_bare", "_check"], help=argparse.SUPPRESS)
    parser.add_argument("--objectives", nargs="+", default=None)
    parser.add_argument("--per-gpu", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=30.0, help="at most this many seconds for every worker to finish its first trial")
    parser.add_argument("--expected-warmup", type=float, default=12.0, help="seconds an arm's warm-up is expected to take (for the budget)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds; arms and checks that no longer fit are skipped")
    parser.add_argument("--quick", action="store_true", help="k = 1, 2; 6 s windows; one objective")
    parser.add_argument("--allow-cpu", action="store_true", help="run the harness on the CPU (to test it); numbers mean nothing for GPUs")
    # worker-process arguments
    parser.add_argument("--objective"), parser.add_argument("--precision"), parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--log"), parser.add_argument("--check"), parser.add_argument("--extra", nargs="*", default=[])
    args = parser.parse_args()
    if args.command == "_bare":
        return bare_worker(args)
    if args.command == "_check":
        return checks_worker(args)
    if not args.allow_cpu and not _cuda():
        print("benchmarks/gpu.py: no CUDA GPU visible (torch.cuda.is_available() is False): nothing to measure; run it on a GPU machine (benchmarks/gpu_run.sh)")
        sys.exit(1)
    bench(args)


def bench(args: argparse.Namespace) -> None:
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import print_header, write_json

    if args.quick:
        args.per_gpu, args.window = [1, 2], 6.0
    args.objectives = args.objectives or (["tiny_transformer"] if args.quick else ["tiny_transformer", "digits_mlp", *_mnist1d()])
    command = print_header("GPU workers: trials per hour and GPU utilisation at k trials per GPU, fp32 vs bf16")
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU harness check)"
    print(f"  GPU: {gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}; window {args.window:g} s after each worker's first trial (at most {args.warmup:g} s); budget {args.budget:g} s")
    started = time.monotonic()
    rows, checks, skipped = [], [], []
    with tempfile.TemporaryDirectory(prefix="sweeps-gpu-bench-") as scratch:
        for item in plan(args):
            needed = (args.expected_warmup + args.window + 3) if item[0] == "arm" else {"compile": 60}.get(item[1], 25)
            if time.monotonic() - started + needed > args.budget:
                skipped.append(" ".join(map(str, item)))
                continue
            if item[0] == "arm":
                _, objective, precision, workers, mode = item
                row = run_arm(args, Path(scratch), objective, precision, workers, mode)
                rows.append(row)
                print(f"  {row['arm']}: {row['trials_per_hour']:.0f} trials/h, GPU {row['gpu_util_mean'] if row['gpu_util_mean'] is None else round(row['gpu_util_mean'])} %"
                      + (f", crashed workers: {row['crashed_workers']}" if row["crashed_workers"] else "") + (f", log: {row.get('log_tail')}" if "log_tail" in row else ""), flush=True)
            else:
                check, objective, extra = item[1], item[2], (item[3] if len(item) > 3 else ())
                checks.append(run_check(args, check, objective, timeout=max(30.0, args.budget - (time.monotonic() - started) + 30), extra=extra))
                print(f"  check {check}: {json.dumps(checks[-1])[:400]}", flush=True)
    report(rows)
    report_checks(checks)
    for line in skipped:
        print(f"skipped (budget): {line}")
    name = "gpu_cpu_check" if not torch.cuda.is_available() else ("gpu_quick" if args.quick else "gpu")
    write_json(name, {"gpu": gpu, "cuda": torch.version.cuda, "settings": {k: getattr(args, k) for k in ("objectives", "per_gpu", "precisions", "epochs", "window", "warmup", "budget")},
                      "arms": rows, "tracking_overhead": overheads(rows), "checks": checks, "skipped": skipped, "elapsed_s": time.monotonic() - started}, command)


if __name__ == "__main__":
    main()
