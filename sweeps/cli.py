"""The ``sweeps`` command: verbs, flags, exit codes. Logic lives in the modules it calls.

Exit codes: 0 done, 2 bad input (one line on stderr naming the key, the value and what is
allowed; nothing written), 130 interrupted (re-run the same command to continue).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Optional

import typer
from rich.console import Console

from sweeps.errors import ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Learning-rate-first hyperparameter sweeps: Hydra + Optuna + MLflow.")
OVERRIDES = typer.Argument(None, help="Hydra overrides: key=value, group=option, +key=value", show_default=False)
CONFIG_DIR = typer.Option(None, "--config-dir", "-cd", help="Extra folder of config groups (e.g. your own objective/*.yaml)")
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.callback()
def _commands() -> None:
    """Learning-rate-first hyperparameter sweeps: Hydra + Optuna + MLflow."""


@app.command(context_settings=EXTRA_ARGS)
def run(overrides: Optional[list[str]] = OVERRIDES, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Run a sweep (or resume it up to sweep.n_trials) and print the best trials.

    With sweep.workers=N, N local worker processes share the study (PostgreSQL and an MLflow server).
    """
    from sweeps.config import compose_config
    from sweeps.console import SweepProgress
    from sweeps.launcher import check_shared_stores
    from sweeps.signals import graceful_stop
    from sweeps.sweep import plan_sweep, run_sweep

    console = Console()
    plan = plan_sweep(compose_config(overrides or [], config_dir))
    cfg = plan.cfg
    workers = int(cfg.sweep.workers)
    check_shared_stores(cfg, workers)
    with graceful_stop() as stop:
        with SweepProgress(console, int(cfg.sweep.n_trials), str(cfg.sweep.direction)) as progress:
            if workers > 1:
                result = _run_local_workers(plan, workers, progress, stop, config_dir)
            else:
                result = run_sweep(plan, callbacks=[progress.on_trial_end], on_open=progress.show_existing, stop=stop)
    if result.aborted:
        raise ConfigError("sweep.metric", cfg.sweep.metric, result.aborted)
    _print_results(console, plan, result)
    if stop.requested():
        _stopped(stop)


@app.command(context_settings=EXTRA_ARGS)
def worker(
    overrides: Optional[list[str]] = OVERRIDES,
    n_trials: Optional[int] = typer.Option(None, "--n-trials", help="Stop after this many trials of this worker"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Join an existing study and run its trials until the study's total is reached.

    The study (sweep.study_name, SWEEPS_STUDY_NAME) on storage.url (SWEEPS_STORAGE_URL) holds the
    sweep's config; only this machine's settings (stores, train.device, train.threads) are overrides.
    """
    from sweeps.config import compose_config
    from sweeps.signals import graceful_stop
    from sweeps.study import finished_count
    from sweeps.sweep import close_sweep, config_from_study, open_sweep, plan_sweep, total_reached, work

    local = compose_config(overrides or [], config_dir)
    plan = plan_sweep(config_from_study(local, overrides or []))
    with graceful_stop() as stop:
        sweep = open_sweep(plan)
        ran, aborted = work(sweep, stop=stop, max_trials=n_trials)
        if aborted:
            raise ConfigError("sweep.metric", plan.cfg.sweep.metric, aborted)
        if total_reached(sweep):
            close_sweep(sweep, "FINISHED", ran)
    print(f"worker: ran {ran} trials; study {sweep.study.study_name} has {finished_count(sweep.study)}/{plan.cfg.sweep.n_trials} finished")
    if stop.requested():
        _stopped(stop)


@app.command(context_settings=EXTRA_ARGS)
def create(overrides: Optional[list[str]] = OVERRIDES, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Create the study and its MLflow parent run without running trials (then start workers)."""
    from sweeps.config import compose_config
    from sweeps.study import redact
    from sweeps.sweep import open_sweep, plan_sweep

    plan = plan_sweep(compose_config(overrides or [], config_dir))
    sweep = open_sweep(plan)
    print(f"study {sweep.study.study_name} on {redact(str(plan.cfg.storage.url))}, MLflow parent run {sweep.parent_run_id}")
    print(f"start workers: sweeps worker sweep.study_name={sweep.study.study_name}")


def _run_local_workers(plan, workers: int, progress, stop, config_dir: Optional[str]):
    """Create/resume the sweep here, run ``workers`` worker processes on it, watch, close."""
    from sweeps.launcher import LocalWorkers, assign_workers, gpu_ids
    from sweeps.sweep import close_sweep, open_sweep, total_reached

    cfg = plan.cfg
    sweep = open_sweep(plan)
    progress.show_existing(sweep.study)
    common = [f"storage.url={cfg.storage.url}", f"tracking.uri={cfg.tracking.uri}", f"sweep.study_name={sweep.study.study_name}", f"train.device={cfg.train.device}"]
    local = LocalWorkers(assign_workers(workers, gpu_ids(cfg.sweep.gpus), cfg.train.threads), common, config_dir)
    codes = local.wait(lambda: progress.on_trial_end(sweep.study, None), stop.requested)
    report = local.failure_report(codes)
    if report:
        print(report, file=sys.stderr)
    return close_sweep(sweep, "FINISHED" if total_reached(sweep) else "KILLED")


def _print_results(console: Console, plan, result) -> None:
    from sweeps.console import best_config_yaml, counts_line, trials_table
    from sweeps.sweep import best_config

    cfg = plan.cfg
    console.print(trials_table(result.study, [p.name for p in plan.space.params], str(cfg.sweep.metric)))
    console.print(f"trials: {counts_line(result.study)}")
    best = result.best
    if best is None:
        console.print("[yellow]no trial completed[/yellow]")
        return
    console.print(f"[bold]best trial {best.number}[/bold]: {cfg.sweep.metric}={best.value:.4f} (MLflow run {best.user_attrs.get('mlflow_run_id')})")
    console.print(best_config_yaml(best_config(plan, best)))
    console.print(f"browse: mlflow ui --backend-store-uri {cfg.tracking.uri}")


def _stopped(stop) -> None:
    print(f"sweeps: stopped by {stop.name}; the running trial was re-queued; re-run to continue", file=sys.stderr)
    raise typer.Exit(stop.exit_code)


@app.command("lr-find", context_settings=EXTRA_ARGS)
def lr_find(overrides: Optional[list[str]] = OVERRIDES, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """LR range test on the configured objective: suggestions table, plot, MLflow run."""
    from pathlib import Path

    from sweeps.config import compose_config
    from sweeps.console import range_test_table
    from sweeps.range_test import objective_task, record_range_test, run_range_test
    from sweeps.tracking import SweepTracker, check_tracking

    console = Console()
    cfg = compose_config(overrides or [], config_dir)
    objective_task(cfg)
    check_tracking(str(cfg.tracking.uri))
    with console.status(f"LR range test: {cfg.lr_find.lr_min:g} → {cfg.lr_find.lr_max:g} over {cfg.lr_find.steps} steps"):
        report = run_range_test(cfg)
    tracker = SweepTracker(str(cfg.tracking.uri), str(cfg.sweep.study_name), cfg.tracking.get("artifact_location"))
    run_id, plot = record_range_test(tracker, report, plot_dir=Path.cwd())
    console.print(range_test_table(report))
    console.print(f"plot: {plot}   MLflow run: {run_id}")
    console.print(f"use it: sweeps run search.lr='tag(log, interval({report.low:.3g}, {report.high:.3g}))'   (or lr_find=auto)")


def main() -> None:
    _quiet_libraries()
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except ConfigError as err:
        print(f"sweeps: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("sweeps: interrupted; re-run the same command to continue the study", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:  # click usage errors carry their own exit code
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


def _quiet_libraries() -> None:
    """Tables and a progress bar instead of walls of library logs."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore", category=FutureWarning)
    import mlflow  # noqa: F401  (configures its loggers on import; quiet them after)
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Failed trials are counted in the progress bar and carry their error in MLflow (sweeps.error,
    # error.txt): Optuna's per-trial warnings with tracebacks would only bury the progress view.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for name in ("alembic", "mlflow", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
