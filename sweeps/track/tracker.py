"""MLflow side of a sweep: one experiment per study, a parent run per sweep, a child run per trial.

Everything goes through ``MlflowClient`` with explicit run ids (never the process-global fluent
API), and every run is ended with an explicit status: a trial's run with the one its outcome maps
to (``sweeps.outcome``: complete, pruned and diverged end FINISHED and the ``sweeps.outcome`` tag
tells them apart; failed and lost FAILED; interrupted KILLED).

Metrics are written with ``log_batch``, one call per epoch: a single ``log_metric`` call costs a
few milliseconds on an SQL store, more than an epoch of a small model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from sweeps.config.sections import TrackingSection
from sweeps.errors import ConfigError
from sweeps.run.outcome import OUTCOME_ATTR, Outcome
from sweeps.search.sqlite_tuning import tune_sqlite_connections
from sweeps.track.redact import redact  # every param, tag and text artifact: no password in the store

ROLE_TAG = "sweeps.role"
OUTCOME_STATUS = {o.value: o.run_status for o in Outcome}  # sweeps.outcome name -> MLflow run status
NOTE_TAG = "mlflow.note.content"  # the description the MLflow UI shows above the runs table
KIND_TAG = "mlflow.experimentKind"  # model training, not GenAI: the UI's runs view, not its traces view
EXPERIMENT_NOTE = (
    "One parent run per sweep (params: search space, sampler, pruner, budget; metrics: best trial), "
    "one child run per trial (`trial-0007`). Pruned and diverged trials end FINISHED: read the "
    "`sweeps.outcome` tag (complete, pruned, diverged, failed, interrupted, lost). Useful columns: "
    "metrics `val_acc`, `final_val_acc`; param `lr`; tags `sweeps.outcome`, `diagnosis`."
)
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000


def check_tracking(uri: str) -> None:
    """Fail fast with a clear line when the tracking store cannot be reached; creates nothing."""
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        from sweeps.config.validation import check_sqlite_location

        database = uri.split(":///", 1)[-1]
        if not database:
            raise ConfigError("tracking.uri", uri, "no database file", "sqlite:///mlflow.db")
        check_sqlite_location("tracking.uri", uri, database)  # the folder and the file writable
    elif scheme in ("http", "https"):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
        except Exception as err:
            raise ConfigError("tracking.uri", uri, f"tracking server not reachable ({type(err).__name__})") from None
    elif scheme.startswith(("postgresql", "mysql", "mssql")):
        from sweeps.search.study import check_storage

        try:
            check_storage(uri)
        except ConfigError as err:
            raise ConfigError("tracking.uri", err.value, err.problem) from None
    elif scheme not in ("", "file"):
        raise ConfigError("tracking.uri", uri, "unsupported scheme", "sqlite:///mlflow.db, http://host:5000, postgresql://..., a folder")


def write_batches(client: MlflowClient, run_id: str, metrics: Sequence[Metric], tags: Sequence[RunTag] = ()) -> None:
    """``metrics`` (and ``tags``, with the last batch) in as few ``log_batch`` calls as MLflow's
    1000-entity cap allows: each call is one commit on an SQL store."""
    batch = list(metrics)
    while len(batch) + len(tags) > MAX_METRICS_PER_BATCH:
        client.log_batch(run_id, metrics=batch[:MAX_METRICS_PER_BATCH], synchronous=True)
        batch = batch[MAX_METRICS_PER_BATCH:]
    if batch or tags:
        client.log_batch(run_id, metrics=batch, tags=list(tags), synchronous=True)


class MetricBuffer:
    """Metrics of one run, written in as few ``log_batch`` calls as possible.

    An SQL store commits every call (13 ms each on SQLite here, more than an epoch of a small
    model), so epochs are buffered and flushed every ``flush_seconds`` (the MLflow UI is at most
    that far behind), when MLflow's 1000-metric batch limit is reached, and when the run ends.
    """

    def __init__(self, client: MlflowClient, run_id: str, flush_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.run_id = run_id
        self.flush_seconds = flush_seconds
        self.clock = clock  # seconds, for the flush interval only (metric timestamps are wall time)
        self.pending: list[Metric] = []
        self.last_flush = clock()

    def add(self, step: int, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.pending.extend(Metric(key, float(value), now, step) for key, value in metrics.items() if math.isfinite(float(value)))
        if len(self.pending) >= MAX_METRICS_PER_BATCH or self.clock() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        write_batches(self.client, self.run_id, self.take())
        self.last_flush = self.clock()

    def take(self) -> list[Metric]:
        """Hand over what is pending (the caller writes it, e.g. with the run's last batch)."""
        pending, self.pending = self.pending, []
        return pending


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}`` (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def sweep_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The parent run's params: the search space, sampler, pruner and budget, as the UI shows them.

    ``cfg`` is the resolved sweep config as plain containers. Each search parameter is one param
    (``search.lr`` = ``tag(log, interval(1e-4, 0.3))``); a mapping spec is written inline.
    """
    sweep, train = cfg["sweep"], cfg.get("train") or {}
    params: dict[str, Any] = {
        "objective": (cfg.get("objective") or {}).get("name"),
        "sampler": sweep["sampler"],
        "pruner": sweep["pruner"],
        "n_trials": sweep["n_trials"],
        "epochs": train.get("epochs"),
        "metric": sweep["metric"],
        "direction": sweep["direction"],
        "seed": sweep.get("seed"),
    }
    for section in (sweep["sampler"], sweep["pruner"]):  # that algorithm's own knobs (tpe.*, hyperband.*)
        for key, value in (sweep.get(section) or {}).items() if isinstance(sweep.get(section), Mapping) else ():
            params[f"{section}.{key}"] = value
    if sweep.get("timeout") is not None:
        params["timeout"] = sweep["timeout"]
    for name, spec in (cfg.get("search") or {}).items():
        params[f"search.{name}"] = spec if isinstance(spec, str) else ", ".join(f"{k}: {v}" for k, v in spec.items())
    return {k: v for k, v in params.items() if v is not None}


def best_trial_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """``{"train.lr": 0.008, "train.batch_size": 32, "train.schedule": "wsd"}`` ->
    ``{"best.lr": 0.008, "best.batch_size": 32.0}``: the best trial's numeric values (as applied) as
    parent-run metrics, sortable and chartable across sweeps."""
    return {
        f"best.{key.rsplit('.', 1)[-1]}": float(value)
        for key, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def trial_run_name(number: int) -> str:
    """``trial-0007``: sorts in trial order in the MLflow runs table."""
    return f"trial-{int(number):04d}"


def production_run_name(provenance: Mapping[str, Any] | None) -> str:
    """``train-from-trial-0007`` for a config exported from a trial, plain ``train`` otherwise."""
    trial = (provenance or {}).get("trial")
    return f"train-from-{trial_run_name(trial)}" if trial is not None else "train"


def loss_until_blow_up(losses: Sequence[float], limit: int = MAX_METRICS_PER_BATCH - 100) -> list[tuple[int, float]]:
    """``(step, loss)`` pairs of a diverged trial's training loss, for the run's ``train_loss_step``.

    A trial that blows up inside its first epoch has reported nothing; its per-step loss is what
    shows the blow-up. Long histories are thinned evenly to ``limit`` points, keeping the last
    finite step (the one the UI should show at the top of the curve).
    """
    finite = [(step, loss) for step, loss in enumerate(losses) if math.isfinite(loss)]
    if len(finite) <= limit:
        return finite
    stride = math.ceil(len(finite) / limit)
    thinned = finite[::stride]
    return thinned if thinned[-1] == finite[-1] else [*thinned, finite[-1]]


def find_experiment(uri: str, name: str) -> tuple[str | None, int]:
    """The live experiment ``name`` in the store at ``uri`` and its number of runs (deleted ones too);
    ``(None, 0)`` when there is none. Creates nothing (``sweeps delete`` asks before it touches a store)."""
    from mlflow.entities import ViewType

    tune_sqlite_connections()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        return None, 0
    n_runs, token = 0, None
    while True:
        page = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000, page_token=token)
        n_runs += len(page)
        token = page.token
        if not token:
            return experiment.experiment_id, n_runs


def retire_experiment(uri: str, experiment_id: str, new_name: str) -> None:
    """Rename the experiment to ``new_name``, then delete it: its old name is free for a new study at
    once, and MLflow keeps it restorable until ``mlflow gc``."""
    tune_sqlite_connections()
    client = MlflowClient(tracking_uri=uri)
    client.rename_experiment(experiment_id, new_name)
    client.delete_experiment(experiment_id)


class SweepTracker:
    """The MLflow record of one study: experiment, parent run, child runs."""

    def __init__(self, uri: str, study_name: str, artifact_location: str | None = None) -> None:
        tune_sqlite_connections()  # before the client opens its first connection
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.study_name = study_name
        self.experiment_id = self._experiment(study_name, artifact_location)
        self.parent_run_id: str | None = None

    @classmethod
    def from_section(cls, tracking: TrackingSection, experiment: str) -> SweepTracker:
        """The tracker of the ``tracking`` section for the experiment ``experiment`` (a study's name)."""
        return cls(tracking.uri, experiment, tracking.artifact_location)

    def _experiment(self, name: str, artifact_location: str | None) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = None
            if artifact_location and urlparse(self.uri).scheme not in ("http", "https"):
                location = Path(artifact_location).expanduser().resolve().as_uri()
            return self.client.create_experiment(name, artifact_location=location, tags={"sweeps.study_name": name, NOTE_TAG: EXPERIMENT_NOTE, KIND_TAG: "custom_model_development"})
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def find_parent(self) -> str | None:
        """The study's parent run id, if it has one in this store."""
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'parent'", max_results=1, order_by=["attributes.start_time ASC"]
        )
        return found[0].info.run_id if found else None

    def open_parent(self, tags: Mapping[str, str]) -> str:
        """Find the study's parent run (a resumed sweep reuses it) or create it; mark it RUNNING."""
        found = self.find_parent()
        if found:
            self.parent_run_id = found
            self.client.update_run(self.parent_run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=self.study_name, tags={ROLE_TAG: "parent", "sweeps.study_name": self.study_name}
            )
            self.parent_run_id = run.info.run_id
        self.set_tags(self.parent_run_id, tags)
        return self.parent_run_id

    def log_new_params(self, run_id: str, params: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
        """Log the params the run does not have yet; returns ``{key: (logged, now)}`` for changed ones.

        MLflow params are immutable, and a resumed sweep may raise ``sweep.n_trials``: the first
        value stays as the param and the caller records the new one as a tag.
        """
        existing = self.client.get_run(run_id).data.params
        values = {key: str(value)[:MAX_PARAM_LENGTH] for key, value in params.items()}
        self.log_params(run_id, {k: v for k, v in values.items() if k not in existing})
        return {k: (existing[k], v) for k, v in values.items() if k in existing and existing[k] != v}

    def close_parent(self, status: str, metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
        assert self.parent_run_id is not None, "open_parent() first"
        self.log_metrics(self.parent_run_id, None, metrics)
        self.set_tags(self.parent_run_id, tags)
        self.end_run(self.parent_run_id, status)

    def start_run(self, name: str, tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
        """A run in the study's experiment, nested under ``parent_run_id`` when given."""
        nesting = {MLFLOW_PARENT_RUN_ID: parent_run_id} if parent_run_id else {}
        run = self.client.create_run(self.experiment_id, run_name=name, tags={"sweeps.study_name": self.study_name, **nesting, **tags})
        return run.info.run_id

    def start_trial(self, number: int, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """A child run under the parent, with the trial's params and identifying tags."""
        run_id = self.start_run(
            trial_run_name(number),
            {ROLE_TAG: "trial", "sweeps.trial_number": str(number), "sweeps.state": "RUNNING", **tags},
            self.parent_run_id,
        )
        self.log_params(run_id, params)
        return run_id

    def end_trial(
        self, run_id: str, outcome: Outcome | str, tags: Mapping[str, str], metrics: Mapping[str, float] | None = None, pending: Sequence[Metric] = ()
    ) -> None:
        """Close a child run with the status its outcome maps to; never leaves it RUNNING.

        ``pending`` (a trial's buffered epoch metrics), the final ``metrics`` and the outcome tags go
        in one ``log_batch`` where they fit (each call is a commit), then the status.
        """
        outcome = Outcome.parse(outcome)
        now = int(time.time() * 1000)
        final = [Metric(key, float(value), now, 0) for key, value in (metrics or {}).items()]
        all_tags = [RunTag(k, redact(str(v))) for k, v in {OUTCOME_ATTR: outcome.value, "sweeps.state": outcome.state.name, **tags}.items()]
        write_batches(self.client, run_id, [*pending, *final], all_tags)
        self.end_run(run_id, outcome.run_status)

    def end_run(self, run_id: str, status: str) -> None:
        """End any run with an explicit MLflow status (FINISHED, FAILED, KILLED); a trial's run ends
        through ``end_trial``, which maps its outcome to the status."""
        self.client.set_terminated(run_id, status=status)

    def metric_buffer(self, run_id: str, flush_seconds: float = 5.0) -> MetricBuffer:
        """A ``MetricBuffer`` writing to ``run_id`` through this tracker's client."""
        return MetricBuffer(self.client, run_id, flush_seconds)

    def log_metrics(self, run_id: str, step: int | None, metrics: Mapping[str, float]) -> None:
        """Metrics of one step, NaN and inf dropped as ``MetricBuffer`` drops them, in batches of
        MLflow's 1000-metric limit."""
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in metrics.items() if math.isfinite(float(value))]
        if batch:
            write_batches(self.client, run_id, batch)

    def log_artifact(self, run_id: str, path: str | Path, folder: str | None = None) -> None:
        """Upload the file ``path`` to the run's artifacts, under ``folder`` when given."""
        self.client.log_artifact(run_id, str(path), folder)

    def log_metric_history(self, run_id: str, history: Iterable[tuple[int, Mapping[str, float]]]) -> None:
        """Many steps at once, in batches of MLflow's 1000-metric limit."""
        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for step, metrics in history for key, value in metrics.items() if math.isfinite(value)]
        write_batches(self.client, run_id, batch)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(key, redact(str(value))[:MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + MAX_PARAMS_PER_BATCH], synchronous=True)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, redact(str(v))) for k, v in tags.items()], synchronous=True)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, redact(text), artifact_file)

    def running_trial_runs(self) -> dict[str, str]:
        """``{run_id: trial number}`` of child runs still marked RUNNING."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = 'trial' and attributes.status = 'RUNNING'", max_results=50000
        )
        return {run.info.run_id: run.data.tags.get("sweeps.trial_number", "?") for run in runs}

    def reap(self, finished: Iterable[tuple[str, str, str]]) -> int:
        """Close runs whose trial has ended but whose worker died before saying so.

        ``finished`` yields ``(run_id, outcome, reason)`` for trials the study knows are over.
        Returns how many runs were corrected.
        """
        running = self.running_trial_runs()
        corrected = 0
        for run_id, outcome, reason in finished:
            if run_id in running:
                self.end_trial(run_id, outcome, {"sweeps.reaped": reason})
                corrected += 1
        return corrected
