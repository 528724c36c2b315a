"""What a user sees in the terminal: a live progress bar during a sweep, tables after it."""

from __future__ import annotations

import time
from collections import Counter

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sweeps.run.outcome import Outcome, counts_toward_total, outcome_counts, outcome_of
from sweeps.search.space import SearchSpace


class SweepProgress:
    """A rich progress bar fed by an Optuna trial callback: done / pruned / failed / best / elapsed."""

    def __init__(self, console: Console, total: int, direction: str) -> None:
        self.total = total
        self.maximize = direction == "maximize"
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[summary]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.task_id = self.progress.add_task("sweep", total=total, summary="", start=False)
        self.started = time.monotonic()

    def __enter__(self) -> SweepProgress:
        self.progress.start()
        self.progress.start_task(self.task_id)
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_trial_end(self, study: optuna.Study, _trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        outcomes = outcome_counts(t for t in trials if counts_toward_total(t))
        finished = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = (max if self.maximize else min)(finished) if finished else None
        summary = (
            f"complete {outcomes['complete']} · pruned {outcomes['pruned'] + outcomes['diverged']}"
            f" · failed {outcomes['failed']} · best {'-' if best is None else f'{best:.4f}'}"
        )
        self.progress.update(self.task_id, completed=sum(outcomes.values()), summary=summary)

    def show_existing(self, study: optuna.Study) -> None:
        """Count the trials a resumed study already holds."""
        self.on_trial_end(study, None)  # type: ignore[arg-type]

    def on_open(self, study: optuna.Study) -> None:
        """Once the sweep is open: what ``lr_find=auto`` measured and chose, then the trials so far."""
        if found := study.user_attrs.get("lr_find"):
            self.progress.console.print(range_test_line(found), soft_wrap=True)
        self.show_existing(study)


def applied_params(trial: FrozenTrial, space: SearchSpace | None) -> dict:
    """The values the trial trained with, by param name (a ``zero_prob`` draw below ``low`` is 0)."""
    if space is None:
        return dict(trial.params)
    by_name = {p.name: p for p in space.params}
    return {name: by_name[name].applied_value(raw) if name in by_name else raw for name, raw in trial.params.items()}


def trials_table(study: optuna.Study, space: SearchSpace, metric: str, top: int = 10) -> Table:
    """The top ``top`` completed trials by value, with their sampled params."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING]
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=maximize)
    table = Table(title=f"top trials of {study.study_name} by {metric}")
    param_names = [p.name for p in space.params]
    for column in ("#", metric, "epochs", *param_names, "diagnosis"):
        table.add_column(column, justify="left" if column == "diagnosis" else "right")
    for trial in complete[:top]:
        table.add_row(*_row(trial, param_names, space))
    return table


def range_test_table(report) -> Table:
    """Suggestions of an LR range test and the search bounds they give."""
    result = report.result
    table = Table(title=f"LR range test: {result.steps_run} steps, {result.stop_reason}")
    table.add_column("reading")
    table.add_column("lr", justify="right")
    table.add_column("meaning")
    s = result.suggestion
    rule = report.rule
    uses = {reading: f" (search.lr.{end} = {reading}{div})" for end, reading, div in (("low", "steepest", rule[1]), ("high", rule[2], rule[3]))}
    table.add_row("steepest", _format(s.steepest), "loss falls fastest per decade: a safe, productive LR" + uses.get("steepest", ""))
    table.add_row("min_loss", _format(s.min_loss), "lowest smoothed loss: the top of the useful range; LRs near it may "
                  "diverge over a full run" + uses.get("min_loss", ""))
    table.add_row("edge", _format(s.edge), ("loss explodes here" if s.diverged else "never diverged: a lower bound of the edge") + uses.get("edge", ""))
    table.add_row("search", f"{report.low:.3g} – {report.high:.3g}", escape(f"search.lr bounds: [{rule[0]}{rule[1]}, {rule[2]}{rule[3]}]"))
    return table


def range_test_line(found: dict) -> str:
    """``lr_find=auto``: the readings and the bounds it chose (``found`` is the study's ``lr_find`` attr,
    set once per study: a resumed sweep shows the same test)."""
    readings = ", ".join(f"{name} {found[name]:.3g}" for name in ("steepest", "min_loss", "edge") if name in found)
    return (f"LR range test: {readings} → search.lr {found['search_low']:.3g} – {found['search_high']:.3g}"
            f"  (tags sweeps.lr_find.* and lr_find.png on the parent run)")


def rerun_command(verb: str, overrides: list[str], drop: tuple[str, ...], add: list[str]) -> str:
    """``sweeps <verb>`` with the user's overrides (minus keys starting with ``drop``) and ``add``,
    shell-quoted; a password in a store URL shows as ``***``."""
    import shlex

    from sweeps.track.redact import redact

    kept = [redact(o) for o in overrides if not o.lstrip("+~").split("=", 1)[0].startswith(drop)]
    return " ".join(["sweeps", verb, *(shlex.quote(o) for o in [*kept, *add])])


def counts_line(study: optuna.Study) -> str:
    states = outcome_counts(study.get_trials(deepcopy=False))
    return " · ".join(f"{name} {count}" for name, count in sorted(states.items()))


def best_config_yaml(config) -> str:
    return OmegaConf.to_yaml(OmegaConf.masked_copy(config, ["train", "objective"]), resolve=True)


def print_results(console: Console, plan, result) -> None:
    """After ``sweeps run``: the top trials, the counts by outcome, the failures, the best trial's
    config, the sweep's advice and how to browse the runs (``plan`` a ``SweepPlan``, ``result`` its ``SweepResult``)."""
    from sweeps.run.sweep import best_config
    from sweeps.track.redact import redact

    metric, uri = plan.sections.sweep.metric, plan.sections.tracking.uri
    console.print(trials_table(result.study, plan.space, metric))
    console.print(f"trials: {counts_line(result.study)}")
    for line in failure_lines(result.study):
        console.print(f"[red]{escape(line)}[/red]")
    best = result.best
    if best is None:
        console.print("[yellow]no trial completed[/yellow]")
        return
    console.print(f"[bold]best trial {best.number}[/bold]: {metric}={best.value:.4f} (MLflow run {best.user_attrs.get('mlflow_run_id')})")
    console.print(best_config_yaml(best_config(plan, best)))
    if result.report is not None and result.report.diagnosis is not None:
        for line in result.report.diagnosis.recommendations:
            console.print(f"[bold]advice:[/bold] {line}")
    store = "" if uri == "sqlite:///mlflow.db" else f" tracking.uri={redact(uri)}"
    console.print(f"browse: sweeps ui{store}   (then open http://127.0.0.1:5000)")


def _row(trial: FrozenTrial, param_names: list[str], space: SearchSpace) -> list[str]:
    epochs = trial.user_attrs.get("epochs", max(trial.intermediate_values, default=0))
    applied = applied_params(trial, space)
    values = [_format(applied.get(name, "")) for name in param_names]
    return [str(trial.number), _format(trial.value), str(epochs), *values, trial.user_attrs.get("diagnosis", "")]


def _format(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def status_rows(study: optuna.Study, space: SearchSpace | None = None) -> list[dict]:
    """One dict per trial: what ``sweeps status`` shows (and prints as JSON): ``params`` as applied
    (what the trial trained with), ``raw_params`` as Optuna recorded them."""
    try:
        best_number = study.best_trial.number
    except ValueError:
        best_number = None
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "outcome": outcome_of(trial).value,
                "value": trial.value,
                "epochs": trial.user_attrs.get("epochs", max(trial.intermediate_values, default=0)),
                "params": applied_params(trial, space),
                "raw_params": dict(trial.params),
                "diagnosis": trial.user_attrs.get("diagnosis"),
                "error": trial.user_attrs.get("error"),  # a failed trial's exception, one line
                "mlflow_run_id": trial.user_attrs.get("mlflow_run_id"),
                "best": trial.number == best_number,
            }
        )
    return rows


def status_table(study: optuna.Study, rows: list[dict], metric: str, total: int) -> Table:
    params = sorted({name for row in rows for name in row["params"]})
    counts = Counter(row["outcome"] for row in rows)
    finished = sum(1 for t in study.get_trials(deepcopy=False) if counts_toward_total(t))
    caption = f"{finished}/{total} finished · " + " · ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items()))
    best = next((row for row in rows if row["best"]), None)
    if best:
        caption += f" · best trial {best['number']}: {metric}={best['value']:.4f}"
    table = Table(title=f"study {study.study_name}", caption=caption)
    errors = any(row.get("error") for row in rows)
    for column in ("#", "state", metric, "epochs", *params, "diagnosis", *(["error"] if errors else [])):
        table.add_column(column, justify="left" if column in ("state", "diagnosis", "error") else "right")
    for row in rows:
        style = "bold green" if row["best"] else None
        table.add_row(
            str(row["number"]), row["outcome"], _format(row["value"]), str(row["epochs"]),
            *[_format(row["params"].get(name, "")) for name in params], row["diagnosis"] or "",
            *([_short(row.get("error") or "")] if errors else []), style=style,
        )
    return table


def failure_lines(study: optuna.Study, limit: int = 5) -> list[str]:
    """Failed trials grouped by error, most frequent first: ``failed: trials 0, 3 (2): RuntimeError: ...``."""
    by_error: dict[str, list[int]] = {}
    for trial in study.get_trials(deepcopy=False):
        if outcome_of(trial) == Outcome.FAILED:
            by_error.setdefault(trial.user_attrs.get("error") or "(no error recorded)", []).append(trial.number)
    ranked = sorted(by_error.items(), key=lambda item: -len(item[1]))[:limit]
    return [f"failed: trial{'s' if len(n) > 1 else ''} {', '.join(map(str, n[:8]))}{' ...' if len(n) > 8 else ''} ({len(n)}): {_short(e, 160)}" for e, n in ranked]


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reproduce_table(results, original: dict[int, float], metric: str, robust) -> Table:
    table = Table(title=f"re-trained on {len(results[0].values)} seeds")
    for column in ("trial", f"sweep {metric}", "mean", "± std", "min", "max"):
        table.add_column(column, justify="right")
    for result in results:
        style = "bold green" if result is robust else None
        table.add_row(
            str(result.trial), f"{original[result.trial]:.4f}", f"{result.mean:.4f}", f"{result.std:.4f}",
            f"{min(result.values):.4f}", f"{max(result.values):.4f}", style=style,
        )
    return table


def studies_table(rows: list, storage: str) -> Table:
    """``sweeps studies``: one row per study, trials by outcome, best value."""
    table = Table(title=f"studies in {storage}")
    outcomes = [o.value for o in Outcome if o != Outcome.WAITING]  # complete ... lost, running
    for column in ("study", "metric", "finished", *outcomes, "best", "best trial", "started"):
        table.add_column(column, justify="left" if column in ("study", "metric", "started") else "right")
    for row in rows:
        target = f"/{row.target}" if row.target else ""
        metric = f"{row.metric or '?'} ({'max' if row.direction == 'maximize' else 'min' if row.direction == 'minimize' else row.direction})"
        table.add_row(
            row.name, metric, f"{row.finished}{target}",
            *(str(row.outcomes.get(name, 0)) for name in outcomes),
            _format(row.best_value) if row.best_value is not None else "–",
            str(row.best_trial) if row.best_trial is not None else "–",
            row.started.strftime("%Y-%m-%d %H:%M") if row.started else "–",
        )  # fmt: skip
    return table
