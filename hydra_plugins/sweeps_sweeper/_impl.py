"""The sweep behind ``hydra/sweeper=sweeps``: ask the study, launch each trial as its own job, no batches.

``n_jobs`` slots (threads of the sweeper) each loop: ask the study for a trial and its params (the
service's sampler, under the study's total), turn the params into Hydra overrides, and launch that
one job through the configured launcher (``initial_job_idx`` = the trial number, so the job knows its
trial as ``hydra.job.num``). A slot refills as soon as its job returns, whether it completed or was
pruned: no batch waits for its slowest trial (hydra#1954). The job itself records the trial's
outcome in both stores (``_job.TrialJob``); with Hydra's basic launcher the jobs run one after
another in this process. At the end the parent run gets its summary and report, and the best trial
is exported as a config the app runs as is: ``python app.py --config-dir <export_dir> +experiment=best``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import FrozenTrial

from hydra_plugins.sweeps_sweeper._job import TrialJob
from hydra_plugins.sweeps_sweeper._settings import WHERE, local_config
from sweeps.config.sections import Sections
from sweeps.errors import ConfigError
from sweeps.results.export import provenance
from sweeps.run.foreign import TrialAsker, close_foreign_sweep, fail_unfinished, open_foreign_sweep
from sweeps.run.launcher import check_shared_stores
from sweeps.search.space import parse_key_space
from sweeps.train.reporter import MetricMissing

log = logging.getLogger(__name__)
OVERRIDES_ATTR = "sweeps.overrides"  # user attr: the job's overrides (fixed + sampled)
SERIAL_LAUNCHERS = ("hydra._internal.core_plugins.basic_launcher.BasicLauncher",)
PLAIN_STRING = re.compile(r"[A-Za-z_][\w\-./]*")


class SweepsSweeperImpl:
    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.aborted: str | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=TrialJob(task_function), config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        """Bad settings: one line naming the key, exit status 2, nothing created in either store."""
        try:
            return self._sweep(arguments)
        except ConfigError as err:
            print(f"sweeps: error: {err}", file=sys.stderr)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> None:
        hydra = self.config.hydra
        cfg = local_config(self.settings, str(hydra.job.name), str(hydra.runtime.cwd))
        search, adds, fixed = split_overrides(self.settings, arguments)
        check_keys(search, adds, self.config)
        space = parse_key_space(search, f"{WHERE}params")
        settings = Sections.of(cfg)
        if settings.sweep.sampler == "grid":
            space.grid()
        slots = 1 if _class_name(self.launcher) in SERIAL_LAUNCHERS else int(settings.sweep.workers)
        try:
            check_shared_stores(slots, storage=settings.storage, tracking=settings.tracking)
        except ConfigError as err:
            key = {"storage.url": f"{WHERE}storage", "tracking.uri": f"{WHERE}tracking_uri"}.get(err.key, err.key)
            raise ConfigError(key, err.value, err.problem, err.allowed) from None
        sweep = open_foreign_sweep(cfg, space, search)
        asker = TrialAsker(sweep)
        status = "KILLED"  # stays KILLED if the sweep is interrupted
        try:
            workers = [threading.Thread(target=self._slot, args=(asker, fixed, adds), name=f"sweeps-slot-{index}") for index in range(slots)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            status = "FAILED" if self.aborted else "FINISHED"
        except BaseException:
            self.stop.set()
            raise
        finally:
            asker.close()
            export_dir = Path(str(self.settings.get("export_dir") or Path(str(hydra.sweep.dir)) / "best"))
            result = close_foreign_sweep(sweep, status, lambda best: export_best(sweep.study, best, settings, export_dir, self.config), self.aborted)
        if self.aborted:
            log.error("sweeps: sweep aborted: %s", self.aborted)
            sys.exit(1)
        best = result.best
        if best is not None:
            log.info("Best trial %d: %s=%.6g; run it: python %s --config-dir %s +experiment=best",
                     best.number, settings.sweep.metric, best.value, Path(sys.argv[0]).name, export_dir)

    def _slot(self, asker: TrialAsker, fixed: list[str], adds: dict[str, str]) -> None:
        """One job slot: ask, launch, repeat until the study's total (or a stop)."""
        while not self.stop.is_set():
            asked = asker.next_trial()
            if asked is None:
                return
            trial, values = asked
            overrides = [*fixed, *(f"{adds.get(key, '')}{key}={format_value(value)}" for key, value in values.items())]
            trial.set_user_attr(OVERRIDES_ATTR, overrides)
            try:
                (job,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
            except Exception as err:  # the launcher lost the job (a killed worker process, a cluster error)
                self._failed(asker, trial.number, err)
                continue
            if job.status != JobStatus.COMPLETED:  # a completed job has told its trial's outcome already
                self._failed(asker, trial.number, job._return_value)

    def _failed(self, asker: TrialAsker, number: int, error: BaseException) -> None:
        """A job that failed before its trial opened leaves it RUNNING: fail it (it counts); a
        metric the app never reports stops the sweep (no other trial would do better)."""
        log.warning("trial %d failed: %s: %s", number, type(error).__name__, error)
        fail_unfinished(asker.sweep.study, number, f"{type(error).__name__}: {error}")
        if isinstance(error, MetricMissing):
            self.aborted = f"{asker.sweep.plan.sections.sweep.metric} {str(error).strip(chr(39) + chr(34))}"
            self.stop.set()


def split_overrides(settings: Mapping[str, Any], arguments: Sequence[str]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """``(search specs by key, "+"/"++" prefix by key, fixed overrides)`` from ``params``, ``search``
    and the command line: sweep expressions (``x=interval(0, 1)``, ``x=1,2,3``) are searched, plain
    values are passed to every job, as hydra-optuna-sweeper does."""
    parser = OverridesParser.create()
    search: dict[str, Any] = {}
    adds: dict[str, str] = {}
    fixed: list[str] = []
    params = OmegaConf.to_container(settings["params"], resolve=True) if OmegaConf.is_config(settings.get("params")) else (settings.get("params") or {})
    texts = [f"{key}={value}" for key, value in params.items()] + list(arguments)
    for text in texts:
        override = parser.parse_override(text)
        if not override.is_sweep_override():
            fixed.append(text)
            continue
        key, value = override.key_or_group, text.partition("=")[2]
        if isinstance(override.value(), ChoiceSweep) and override.value().simple_form:
            value = f"choice({value})"
        search[key] = value
        if override.is_add() or override.is_force_add():
            adds[key] = "++" if override.is_force_add() else "+"
    extra = settings.get("search") or {}
    search.update(OmegaConf.to_container(extra, resolve=True) if OmegaConf.is_config(extra) else dict(extra))
    return search, adds, fixed


def check_keys(search: Mapping[str, Any], adds: Mapping[str, str], config: DictConfig) -> None:
    """Every searched key exists in the app's config (or is a config group, or is added with +)."""
    choices = config.hydra.runtime.choices
    for name, spec in search.items():
        key = spec.get("key", name) if isinstance(spec, Mapping) else name
        if name in adds or key in choices or OmegaConf.select(config, key, default=_MISSING) is not _MISSING:
            continue
        raise ConfigError(f"{WHERE}params.{name}", spec if isinstance(spec, str) else dict(spec), "no such key in the app's config",
                          f"an existing key, or +{name} to add one")


def format_value(value: Any) -> str:
    """A sampled value as Hydra override text (strings quoted unless plainly a word)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if PLAIN_STRING.fullmatch(text) and text.lower() not in ("true", "false", "null"):
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def export_best(study: optuna.Study, best: FrozenTrial, settings: Sections, folder: Path, config: DictConfig) -> str:
    """Write the best trial as ``<folder>/experiment/best.yaml`` (``# @package _global_``: the
    app runs it with ``--config-dir <folder> +experiment=best``) and ``<folder>/overrides.txt``; the
    provenance (study, trial, run id, value, git commit) heads both. Returns the YAML."""
    overrides = list(best.user_attrs.get(OVERRIDES_ATTR, []))
    origin = provenance(study, best, settings.storage.url, settings.sweep.metric)
    origin = {k: v for k, v in origin.items() if v is not None}
    header = [f"# {key}: {value}" for key, value in origin.items()]
    groups = set(config.hydra.runtime.choices)
    parser = OverridesParser.create()
    values = OmegaConf.create()
    defaults: list[dict[str, Any]] = []
    for text in overrides:
        override = parser.parse_override(text)
        if override.key_or_group in groups:  # a config group's option: a defaults-list override
            defaults.append({f"override /{override.key_or_group}": override.value()})
        elif not override.is_delete():
            OmegaConf.update(values, override.key_or_group, override.value(), merge=True)
    body = ({"defaults": defaults} if defaults else {}) | OmegaConf.to_container(values)
    text = "\n".join(["# @package _global_", f"# best trial of sweeps study {study.study_name}", *header,
                      f"# run it: python <app> --config-dir {folder} +experiment=best", yaml.safe_dump(body, sort_keys=False)])
    (folder / "experiment").mkdir(parents=True, exist_ok=True)
    (folder / "experiment" / "best.yaml").write_text(text)
    (folder / "overrides.txt").write_text("\n".join([*header, *overrides]) + "\n")
    return text


def _class_name(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


_MISSING = object()
