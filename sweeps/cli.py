"""The ``sweeps`` command: verbs, flags, exit codes. Logic lives in the modules it calls.

Exit codes: 0 done, 2 bad input (one line on stderr naming the key, the value and what is
allowed; nothing written), 130 interrupted (re-run the same command to continue).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any, Optional

import click
import typer

from sweeps.console_width import make_console
from sweeps.errors import ConfigError, StoreUnavailable, SweepFailed
from sweeps.lazy import after_import

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
    from sweeps.config.compose import compose_config

    composed = compose_config(overrides or [], config_dir)  # bad input exits here, before the heavy imports
    from sweeps.console import SweepProgress, print_results
    from sweeps.run.launcher import check_shared_stores, resolve_workers, run_local_workers
    from sweeps.run.signals import graceful_stop
    from sweeps.run.sweep import plan_sweep, run_sweep

    console = make_console()
    plan = plan_sweep(composed)
    settings = plan.sections
    workers, note = resolve_workers(settings, device=str(plan.cfg.train.device))  # auto: sweep.trials_per_gpu per GPU
    if note:
        print(note, file=sys.stderr)
    check_shared_stores(workers, storage=settings.storage, tracking=settings.tracking)
    with graceful_stop() as stop:
        with SweepProgress(console, settings.sweep.n_trials, settings.sweep.direction) as progress:
            if workers > 1:
                result = run_local_workers(plan, workers, stop.requested, progress.on_open, progress.show_existing, config_dir)
            else:
                result = run_sweep(plan, callbacks=[progress.on_trial_end], on_open=progress.on_open, stop=stop)
    if result.aborted:
        raise ConfigError("sweep.metric", settings.sweep.metric, result.aborted)
    print_results(console, plan, result)
    if stop.requested():
        _stopped(stop)


@app.command(context_settings=EXTRA_ARGS)
def preview(
    overrides: Optional[list[str]] = OVERRIDES,
    measure: bool = typer.Option(True, "--measure/--no-measure", help="Time two epochs to express the budget in time"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Before launching: the search space, sampler and pruner, Hyperband's brackets, the budget."""
    from sweeps.config.compose import compose_config
    from sweeps.config.sections import Sections
    from sweeps.search.preview import configured_brackets, estimate_budget, measure_epoch_seconds, preview_tables
    from sweeps.search.space import parse_search_space

    console = make_console()
    cfg = compose_config(overrides or [], config_dir)
    sweep, space = Sections.of(cfg).sweep, parse_search_space(cfg)
    seconds = service = None
    if measure:
        from sweeps.search.service_cost import measure_service_cost

        with console.status("timing the service: start-up, a few instant trials, the report"):
            service = measure_service_cost(cfg)  # first: it times the imports a sweep pays
        with console.status("timing two epochs of the objective"):
            seconds = measure_epoch_seconds(objective=cfg.objective, train=cfg.train)
    budget = estimate_budget(sweep, space, epoch_seconds=seconds, service=service)
    for table in preview_tables(sweep, space, budget, configured_brackets(sweep)):
        console.print(table)


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
    from sweeps.config.compose import compose_config
    from sweeps.run.signals import graceful_stop
    from sweeps.run.sweep import close_sweep, config_from_study, open_sweep, plan_sweep, stored_total, total_reached, work
    from sweeps.search.study import finished_count

    local = compose_config(overrides or [], config_dir)
    plan = plan_sweep(config_from_study(local, overrides or []))
    with graceful_stop() as stop:
        sweep = open_sweep(plan)
        ran, aborted = work(sweep, stop=stop, max_trials=n_trials)
        if aborted:
            raise ConfigError("sweep.metric", plan.sections.sweep.metric, aborted)
        if total_reached(sweep):
            close_sweep(sweep, "FINISHED", ran)
    print(f"worker: ran {ran} trials; study {sweep.study.study_name} has {finished_count(sweep.study)}/{stored_total(sweep.study)} finished")
    if stop.requested():
        _stopped(stop)


@app.command(context_settings=EXTRA_ARGS)
def create(overrides: Optional[list[str]] = OVERRIDES, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Create the study and its MLflow parent run without running trials (then start workers)."""
    from sweeps.config.compose import compose_config
    from sweeps.run.sweep import open_sweep, plan_sweep
    from sweeps.search.study import redact

    plan = plan_sweep(compose_config(overrides or [], config_dir))
    sweep = open_sweep(plan)
    print(f"study {sweep.study.study_name} on {redact(plan.sections.storage.url)}, MLflow parent run {sweep.parent_run_id}")
    print(f"start workers: sweeps worker sweep.study_name={sweep.study.study_name}")


STUDY_ARGS = typer.Argument(None, help="[STUDY] then Hydra overrides (storage.url=..., tracking.uri=...)", show_default=False)


def _open_study_config(args: Optional[list[str]], config_dir: Optional[str]):
    """``[study] overrides...`` → (the study, its stored config with this machine's stores)."""
    import optuna

    from sweeps.config.compose import compose_config
    from sweeps.run.sweep import config_from_study

    args = list(args or [])
    if args and "=" not in args[0]:
        args[0] = f"sweep.study_name={args[0]}"
    local = compose_config(args, config_dir)
    cfg = config_from_study(local, args)
    return optuna.load_study(study_name=str(cfg.sweep.study_name), storage=str(cfg.storage.url)), cfg


@app.command(context_settings=EXTRA_ARGS)
def status(args: Optional[list[str]] = STUDY_ARGS, as_json: bool = typer.Option(False, "--json", help="Machine-readable output"), config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Trials of a study (also while it runs): state, value, params, epochs, diagnosis; counts; best."""
    import json

    from sweeps.console import status_rows, status_table

    study, cfg = _open_study_config(args, config_dir)
    from sweeps.search.space import parse_search_space

    rows = status_rows(study, parse_search_space(cfg))
    if as_json:
        best = next((r for r in rows if r["best"]), None)
        print(json.dumps({"study": study.study_name, "n_trials": int(cfg.sweep.n_trials), "trials": rows, "best": best}, indent=1, default=str))
        return
    make_console().print(status_table(study, rows, str(cfg.sweep.metric), int(cfg.sweep.n_trials)))


@app.command(context_settings=EXTRA_ARGS)
def extend(
    study_name: str = typer.Argument(..., help="The study"),
    n_trials: int = typer.Argument(..., help="Its new total number of trials"),
    overrides: Optional[list[str]] = OVERRIDES,
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Set a study's total (sweep.n_trials); running workers take it up before their next trial."""
    from sweeps.run.sweep import extend as extend_study

    study, _cfg = _open_study_config([study_name, *(overrides or [])], config_dir)
    previous = extend_study(study, n_trials)
    print(f"study {study.study_name}: total {previous} -> {n_trials}; running workers continue to it, or run: sweeps worker sweep.study_name={study.study_name}")


@app.command(context_settings=EXTRA_ARGS)
def best(
    args: Optional[list[str]] = STUDY_ARGS,
    export: Optional[str] = typer.Option(None, "--export", help="Write the best trial's complete config (YAML) here"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Transfer the config to this batch size"),
    scaling: Optional[str] = typer.Option(None, "--scaling", help="LR scaling rule: linear (SGD default), sqrt (Adam default), none"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """The best trial's complete config, with provenance; optionally moved to another batch size."""
    from omegaconf import OmegaConf

    from sweeps.results.export import best_export, export_config
    from sweeps.run.sweep import shareable_config

    study, cfg = _open_study_config(args, config_dir)
    metric = str(cfg.sweep.metric)
    best = best_export(study, shareable_config(cfg), storage_url=str(cfg.storage.url), metric=metric, batch_size=batch_size, scaling=scaling)
    if (change := best.origin.get("batch_size_transfer")) is not None:
        print(f"batch size {change['from_batch_size']} -> {change['to_batch_size']} ({change['rule']} rule): "
              f"lr {change['lr'][0]:.4g} -> {change['lr'][1]:.4g}, warmup_frac {change['warmup_frac'][0]:.3g} -> {change['warmup_frac'][1]:.3g}")
    print(f"best trial {best.trial.number} of {study.study_name}: {metric}={best.trial.value:.4f} (MLflow run {best.origin['mlflow_run_id']})")
    if export:
        path = export_config(best.config, best.origin, export)
        print(f"exported to {path}; run it with: sweeps train --config {path}")
    else:
        print(OmegaConf.to_yaml(OmegaConf.masked_copy(best.config, ["train", "objective"])))


@app.command("train", context_settings=EXTRA_ARGS)
def train_command(
    overrides: Optional[list[str]] = OVERRIDES,
    config: Optional[str] = typer.Option(None, "--config", help="An exported config (sweeps best --export) to train as is"),
    checkpoint: bool = typer.Option(False, "--checkpoint", help="Save the trained model as an MLflow artifact"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Production training: full epochs, no pruning, its own MLflow run linked to the source trial."""
    from sweeps.config.compose import training_config

    cfg = training_config(overrides or [], config, config_dir)  # bad input exits here, before torch loads
    from sweeps.results.production import train_from_config

    origin = cfg.get("provenance") or {}
    console = make_console()
    with console.status(f"training {cfg.objective.name} for {cfg.train.epochs} epochs"):
        done, experiment = train_from_config(cfg, checkpoint)
    console.print(f"{cfg.sweep.metric}={done.value:.4f}  MLflow run {done.run_id} (experiment {experiment})")
    if done.test:  # the objective's held-out test split, read once here and never by a sweep
        console.print("test split: " + "  ".join(f"{k}={v:.4f}" for k, v in done.test.items()))
    if origin:
        console.print(f"source: trial {origin.get('trial')} of {origin.get('study')}, {origin.get('metric')}={origin.get('value')}")


@app.command(context_settings=EXTRA_ARGS)
def reproduce(
    args: Optional[list[str]] = STUDY_ARGS,
    top: int = typer.Option(3, "--top", help="How many of the best configs"),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per config (the trial's own seed first)"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Re-train the top configs on several seeds: mean ± std each, and the most robust one."""
    from rich.progress import Progress

    from sweeps.console import reproduce_table

    for flag, count in (("--top", top), ("--seeds", seeds)):
        if count < 1:
            raise ConfigError(flag, count, "must be a positive integer")
    study, cfg = _open_study_config(args, config_dir)
    from sweeps.results.reproduce import reproduce as retrain
    from sweeps.results.reproduce import top_trials

    chosen = top_trials(study, str(cfg.sweep.direction), top)
    console = make_console()
    with Progress(console=console) as progress:
        task = progress.add_task("re-training", total=len(chosen) * seeds)
        done = retrain(study, cfg, chosen, seeds, advance=lambda: progress.advance(task))
    robust, metric = done.robust, str(cfg.sweep.metric)
    console.print(reproduce_table(done.results, {t.number: t.value for t in chosen}, metric, robust))
    console.print(f"most robust: trial {robust.trial} ({metric} {robust.mean:.4f} ± {robust.std:.4f} over {seeds} seeds); MLflow run {done.run_id}")


def _published_report(args: Optional[list[str]], config_dir: Optional[str]) -> tuple[Any, Any, str]:
    """The study's report, drawn again and logged on its parent run: (the study, the report, the parent run id)."""
    study, cfg = _open_study_config(args, config_dir)
    from sweeps.config.sections import Sections
    from sweeps.results.study_report import publish_study_report
    from sweeps.search.space import parse_search_space

    return study, *publish_study_report(study, sections=Sections.of(cfg), space=parse_search_space(cfg))


@app.command(context_settings=EXTRA_ARGS)
def report(args: Optional[list[str]] = STUDY_ARGS, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Redraw the study's plots on its parent MLflow run (also while it runs)."""
    study, written, parent = _published_report(args, config_dir)
    plots = written.plots
    print(f"wrote {len(plots.paths())} files to run {parent} (plots/, diagnosis/)" + (f"; skipped: {', '.join(plots.skipped)}" if plots.skipped else ""))


@app.command(context_settings=EXTRA_ARGS)
def diagnose(args: Optional[list[str]] = STUDY_ARGS, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Where the LR is safe: verdict counts per LR range, divergence boundary, stable window, advice."""
    from rich.markdown import Markdown

    study, written, parent = _published_report(args, config_dir)
    found = written.diagnosis
    if found is None:
        raise ConfigError("sweep.study_name", study.study_name, "has no diagnosed trial with an lr parameter")
    make_console().print(Markdown(found.to_markdown()))
    print(f"saved to MLflow run {parent}: diagnosis/report.md, diagnosis/lr_diagnosis.png")


@app.command(context_settings=EXTRA_ARGS)
def studies(overrides: Optional[list[str]] = OVERRIDES, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """Every study in the storage (storage.url): trials by outcome, the best value, when it started."""
    from sweeps.config.compose import compose_config
    from sweeps.console import studies_table
    from sweeps.search.studies import list_studies
    from sweeps.track.redact import redact

    url = str(compose_config(overrides or [], config_dir).storage.url)
    rows = list_studies(url)
    if not rows:
        print(f"no studies in {redact(url)}")
        return
    make_console().print(studies_table(rows, redact(url)))


@app.command(context_settings=EXTRA_ARGS)
def delete(
    study: str = typer.Argument(..., help="The study to delete"),
    overrides: Optional[list[str]] = OVERRIDES,
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Delete a study from both stores (its Optuna trials and its MLflow experiment), after asking."""
    from sweeps.config.compose import compose_config
    from sweeps.search.studies import delete_study, plan_delete

    cfg = compose_config(overrides or [], config_dir)
    plan = plan_delete(str(cfg.storage.url), str(cfg.tracking.uri), study)
    print(f"to delete: {plan.describe()}")
    if not yes and not typer.confirm("delete both?", default=False):
        print("nothing deleted")
        raise typer.Exit(1)
    delete_study(plan)
    print(f"deleted study {study}" + (" and its MLflow experiment (in MLflow's trash until `mlflow gc`)" if plan.experiment_id else ""))


@app.command(context_settings=EXTRA_ARGS)
def ui(
    overrides: Optional[list[str]] = OVERRIDES,
    port: int = typer.Option(5000, "--port"),
    dashboard: bool = typer.Option(False, "--dashboard", help="Also start optuna-dashboard on the study storage (port + 1)"),
    config_dir: Optional[str] = CONFIG_DIR,
) -> None:
    """Start the MLflow UI for the configured tracking store on 127.0.0.1 and print its URL.

    One server worker, no job runner, quiet; the server is ended with this command (Ctrl-C, SIGTERM).
    """
    from sweeps.config.compose import compose_config
    from sweeps.config.sections import Sections
    from sweeps.track.ui import serve_tracking

    settings = Sections.of(compose_config(overrides or [], config_dir))
    code = serve_tracking(settings.tracking.uri, port, dashboard_storage=settings.storage.url if dashboard else None, say=lambda line: print(line, flush=True))
    if code:
        raise typer.Exit(code)


def _stopped(stop) -> None:
    print(f"sweeps: stopped by {stop.name}; the running trial was re-queued; re-run to continue", file=sys.stderr)
    sys.exit(stop.exit_code)  # not typer.Exit: main reads an exit code of 130 from typer as a second Ctrl-C


@app.command("lr-find", context_settings=EXTRA_ARGS)
def lr_find(overrides: Optional[list[str]] = OVERRIDES, config_dir: Optional[str] = CONFIG_DIR) -> None:
    """LR range test on the configured objective: suggestions table, plot, MLflow run."""
    from pathlib import Path

    from sweeps.config.compose import compose_config
    from sweeps.config.sections import Sections
    from sweeps.console import range_test_table, rerun_command
    from sweeps.lr.runner import objective_task, record_range_test, run_range_test
    from sweeps.track.tracker import SweepTracker, check_tracking

    console = make_console()
    cfg = compose_config(overrides or [], config_dir)
    settings = Sections.of(cfg)
    objective_task(cfg.objective)
    check_tracking(settings.tracking.uri)
    ramp = settings.lr_find
    with console.status(f"LR range test: {ramp.lr_min:g} → {ramp.lr_max:g} over {ramp.steps} steps"):
        report = run_range_test(objective=cfg.objective, train=cfg.train, settings=ramp)
    tracker = SweepTracker.from_section(settings.tracking, settings.sweep.study_name)
    run_id, plot = record_range_test(tracker, report, plot_dir=Path.cwd())
    console.print(range_test_table(report))
    kept = f" ({plot.stem.rsplit('-', 1)[0]}.png exists: kept)" if plot.name != "lr_find.png" else ""
    console.print(f"plot: {plot}{kept}   MLflow run: {run_id}")
    bounds = f"search.lr=tag(log, interval({report.low:.3g}, {report.high:.3g}))"
    console.print(f"use it: {rerun_command('run', list(overrides or []), ('search.lr', 'lr_find'), [bounds])}   (or lr_find=auto)", soft_wrap=True)


def main() -> None:
    _quiet_libraries()
    try:
        code = app(standalone_mode=False)
        if code == 130:  # typer turns a KeyboardInterrupt (a second Ctrl-C) into exit code 130
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except ConfigError as err:
        print(f"sweeps: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("sweeps: interrupted; re-run the same command to continue the study", file=sys.stderr)
        sys.exit(130)
    except SweepFailed as err:  # sweep.max_failures trials failed in a row
        print(f"sweeps: error: {err}", file=sys.stderr)
        sys.exit(1)
    except StoreUnavailable as err:  # retried with backoff for storage.grace_period first
        print(f"sweeps: error: {err}; re-run the same command once the database is back", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as err:  # click usage errors carry their own exit code
        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


def _quiet_libraries() -> None:
    """Tables and a progress bar instead of walls of library logs."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow configures its loggers
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Optuna sets its own log level when imported; importing it here would cost a refused typo
    # seconds, so its verbosity is set right after its first import, wherever that happens.
    after_import("optuna", _quiet_optuna)


def _quiet_optuna(optuna) -> None:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Failed trials are counted in the progress bar and carry their error in MLflow (sweeps.error,
    # error.txt): Optuna's per-trial warnings with tracebacks would only bury the progress view.
    optuna.logging.set_verbosity(optuna.logging.ERROR)


if __name__ == "__main__":
    main()
