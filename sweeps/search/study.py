"""Optuna side of a sweep: storage, sampler, pruner, and the study's trial total.

``sweep.n_trials`` is the study's total, not a per-invocation count: re-running a sweep continues
until that many trials have *finished* (complete, pruned, or failed by the objective). Trials that
died with their worker (stale heartbeat) or were interrupted are not counted: they are retried or
replaced.
"""

from __future__ import annotations

import optuna
import sqlalchemy

from sweeps.config.sections import PRUNERS, SAMPLERS, StorageSection, SweepSection
from sweeps.config.validation import check_sqlite_location
from sweeps.errors import ConfigError
from sweeps.errors import first_line as _first_line
from sweeps.run.outcome import OUTCOME_ATTR, counts_toward_total  # noqa: F401  (also imported from here)
from sweeps.search.db_retry import ReconnectingStorage
from sweeps.search.hyperband import pruning_epochs, report_epochs  # noqa: F401  (also imported from here)
from sweeps.search.seeding import PerTrialSeededSampler, reseed_grid
from sweeps.search.space import SearchSpace
from sweeps.search.sqlite_tuning import tune_sqlite_connections
from sweeps.track.redact import redact  # noqa: F401  (also imported from here)


def check_storage(url: str, create: bool = True) -> None:
    """Fail fast with a clear line when the storage cannot be reached or written; creates nothing.

    ``create=False`` (read-only verbs): an SQLite file must exist already, it is never created."""
    if not url:
        raise ConfigError("storage.url", url, "empty: storage=postgres reads SWEEPS_STORAGE_URL, which is not set",
                          "export SWEEPS_STORAGE_URL=postgresql+psycopg://user:password@host:5432/optuna")
    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.port  # noqa: B018  (a port that is not a number raises here, not deep in the driver)
    except (sqlalchemy.exc.ArgumentError, ValueError) as err:
        raise ConfigError("storage.url", url, f"not a database URL ({_first_line(err)})", "sqlite:///optuna.db, postgresql+psycopg://user@host:5432/db") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ConfigError("storage.url", url, "an in-memory SQLite database cannot hold a study", "sqlite:///path/to/file.db")
        check_sqlite_location("storage.url", url, database, create)
        return
    try:
        engine = sqlalchemy.create_engine(url, connect_args=_connect_timeout(parsed))
        with engine.connect() as connection:
            missing = _missing_privilege(connection) if parsed.get_backend_name() == "postgresql" else None
        engine.dispose()
    except Exception as err:  # the driver's own error says why (refused, auth, missing database)
        raise ConfigError("storage.url", redact(url), f"cannot connect ({_first_line(err)})") from None
    if missing:
        raise ConfigError("storage.url", redact(url), f"role {parsed.username or '(default)'} cannot {missing} in database {parsed.database}",
                          "GRANT the role those privileges, or use a database it owns")


def _missing_privilege(connection: sqlalchemy.engine.Connection) -> str | None:
    """What the connected PostgreSQL role lacks to hold a study, or None: the study tables must be
    writable when they exist, creatable when they do not (a role without grants used to fail deep in
    Optuna's schema setup, a 336-line traceback)."""
    query = sqlalchemy.text
    if connection.execute(query("SELECT to_regclass('studies') IS NOT NULL")).scalar():
        for table in ("studies", "trials", "trial_params", "trial_values", "study_user_attributes", "trial_user_attributes"):
            if connection.execute(query("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar() and not connection.execute(
                query("SELECT has_table_privilege(:t, 'SELECT, INSERT, UPDATE, DELETE')"), {"t": table}
            ).scalar():
                return f"read and write table {table}"
        return None
    if not connection.execute(query("SELECT has_schema_privilege(current_schema(), 'CREATE')")).scalar():
        return "create the study tables (no CREATE on its schema)"
    return None


def make_storage(storage: StorageSection) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats, so a trial whose worker died is failed and retried."""
    tune_sqlite_connections()
    engine_kwargs = {"pool_pre_ping": True} if not storage.url.startswith("sqlite") else {}
    return ReconnectingStorage(  # every call survives a dropped connection for up to grace_period
        url=storage.url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=storage.heartbeat_interval,
        grace_period=storage.grace_period,
        retry_deadline=float(storage.grace_period),
        **_retry_stale_trials(storage.max_retry),
    )


def _retry_stale_trials(max_retry: int) -> dict[str, object]:
    """Re-enqueue a dead worker's trial; Optuna 4.9 renamed the callback and its argument."""
    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)}
    return {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=max_retry)}


def make_sampler(sweep: SweepSection, space: SearchSpace) -> optuna.samplers.BaseSampler:
    """The configured sampler, re-seeded before every trial from ``(sweep.seed, trial number)``
    (``sweeps.search.seeding``): workers and resumed runs never repeat a draw; one worker reproduces.

    TPE runs with ``constant_liar``: another worker's running trial counts as a poor result, so
    parallel workers do not all sample next to the same promising point. ``gp`` is Optuna's
    GPSampler (a Gaussian process with log-EI; running trials are its pending points)."""
    seed = sweep.seed
    if sweep.sampler == "tpe":
        return PerTrialSeededSampler(seed, lambda trial_seed: _at_rung(sweep, optuna.samplers.TPESampler(
            seed=trial_seed, n_startup_trials=sweep.tpe.n_startup_trials, multivariate=sweep.tpe.multivariate,
            constant_liar=True,
        )))
    if sweep.sampler == "random":
        return PerTrialSeededSampler(seed, lambda trial_seed: optuna.samplers.RandomSampler(seed=trial_seed))
    if sweep.sampler == "gp":
        # GPSampler fits COMPLETE trials and treats RUNNING ones as pending points of a batch
        # acquisition (optuna/samplers/_gp/sampler.py), so parallel workers need no liar; torch and
        # scipy load on its first model fit, not here.
        return PerTrialSeededSampler(seed, lambda trial_seed: _at_rung(sweep, optuna.samplers.GPSampler(
            seed=trial_seed, n_startup_trials=sweep.gp.n_startup_trials, warn_independent_sampling=False,
        )))
    if sweep.sampler == "grid":
        grid = space.grid()
        return PerTrialSeededSampler(seed, lambda _seed: optuna.samplers.GridSampler(grid, seed=seed), reseed_grid)
    raise ConfigError("sweep.sampler", sweep.sampler, "unknown value", ", ".join(SAMPLERS))


def _at_rung(sweep: SweepSection, sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
    """``sweep.rung_model.min_trials`` set, with Hyperband: the model is fitted at the highest rung
    holding that many trials (BOHB, ``sweeps.search.rung_sampler``); null: on complete trials only."""
    if sweep.rung_model_min_trials is None or sweep.pruner != "hyperband":
        return sampler
    from sweeps.search.rung_sampler import RungModelSampler

    return RungModelSampler(sampler, pruning_epochs(sweep), sweep.max_epochs, int(sweep.rung_model_min_trials))


def make_pruner(sweep: SweepSection) -> optuna.pruners.BasePruner:
    """Hyperband up to ``train.epochs`` (``sweep.max_epochs``), the median rule, or no pruning."""
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=sweep.hyperband.min_resource,
            max_resource=sweep.max_epochs,
            reduction_factor=sweep.hyperband.reduction_factor,
        )
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=sweep.median.n_startup_trials, n_warmup_steps=sweep.median.n_warmup_steps)
    if sweep.pruner == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError("sweep.pruner", sweep.pruner, "unknown value", ", ".join(PRUNERS))


def open_study(*, sweep: SweepSection, storage: StorageSection, space: SearchSpace) -> optuna.Study:
    """Create the study, or resume it by name; a resumed study must keep its direction."""
    rdb = make_storage(storage)
    name, direction = sweep.study_name, sweep.direction
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(rdb, include_best_trial=False)}
    if name in existing and existing[name].direction.name.lower() != direction:
        raise ConfigError(
            "sweep.direction", direction, f"study {name!r} exists with direction {existing[name].direction.name.lower()}"
        )
    return optuna.create_study(
        storage=rdb,
        study_name=name,
        direction=direction,
        sampler=make_sampler(sweep, space),
        pruner=make_pruner(sweep),
        load_if_exists=True,
    )


def finished_count(study: optuna.Study) -> int:
    return sum(counts_toward_total(t) for t in study.get_trials(deepcopy=False))


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials of dead workers FAIL now (Optuna does it lazily, at the next trial's start)."""
    import warnings

    with warnings.catch_warnings():  # "experimental since v2.9.0": a line a user cannot act on
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _connect_timeout(parsed: sqlalchemy.engine.URL) -> dict[str, int]:
    return {"connect_timeout": 5} if parsed.get_backend_name() in ("postgresql", "mysql") else {}
