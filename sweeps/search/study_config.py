"""A study remembers the config it was made with, so two configs never mix in one study unannounced.

Following the README in order used to append ``search=lr_schedule`` trials to the quick start's
study ("24/20 finished"), and a study resumed with other epochs printed trial 0 with the new
config; ``best --export`` exported the creation config whatever the best trial ran with.

``remember(study, config, allow_change)`` stores the sweep's shareable config on a new study. On an
existing one it compares: settings that do not change what a trial is (the total, workers, GPUs,
seed, failure limit, device, threads, diagnosis thresholds) may differ; anything else (search
space, objective, trainer, metric, sampler, pruner) is refused with one line naming the first
difference and the ways forward: a new ``sweep.study_name``, or ``sweep.allow_config_change=true``.
With that flag the new config becomes the study's (workers read it) and is appended to the study's
list of configs; each trial records which one it ran with (``sweeps.config_version``), so its
exported config is the one it trained with (``config_of_trial``).

Where it is kept: the study's *system* attrs, read and written only through ``stored_config`` and
``store_config``. ``optuna studies`` prints every user attr of every study, so a config there made
each study a multi-kilobyte line (issue 17); the only study user attr left is the short ``lr_find``
(the range test's bounds, when it ran), which a user may well want to see there. Studies made
by the previous release hold it as user attrs: reading falls back to them, and ``remember`` copies
them to system attrs when such a study is resumed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from sweeps.errors import ConfigError

# Study system attrs (user attrs on studies made by the previous release):
CONFIG_ATTR = "sweeps.config"  # the sweep's config minus local settings (stores, device), on the study
VERSIONS_ATTR = "sweeps.config_versions"  # every config the study ran with, oldest first (after a change)
TRIAL_VERSION_ATTR = "sweeps.config_version"  # on a trial: its index in VERSIONS_ATTR
# Keys that may differ between runs of one study: they do not change what a trial trains or means.
VOLATILE = (
    "sweep.n_trials", "sweep.workers", "sweep.gpus", "sweep.trials_per_gpu", "sweep.seed", "sweep.max_failures",
    "sweep.allow_config_change", "sweep.study_name", "sweep.timeout", "train.device", "train.threads", "diagnosis", "hydra",
)  # fmt: skip


# Sections whose keys a newer release may add; a key the study's stored config lacks there is not a change
# (a new search parameter or objective key is).
SETTINGS_SECTIONS = ("train", "sweep", "lr_find")


def flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_changes(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, stored value, new value)`` for every key that differs and is not ``VOLATILE``."""
    old_flat, new_flat = flat(stored), flat(new)
    missing = object()
    changes = []
    for key in sorted(set(old_flat) | set(new_flat)):
        if key == "hydra" or any(key == v or key.startswith(f"{v}.") for v in VOLATILE):
            continue
        before, after = old_flat.get(key, missing), new_flat.get(key, missing)
        if before is missing and key.split(".", 1)[0] in SETTINGS_SECTIONS:
            continue  # a trainer or sweep setting newer than the study (a release added it, e.g. train.precision)
        if before != after:
            changes.append((key, None if before is missing else before, None if after is missing else after))
    return changes


def stored_config(study: optuna.Study | BaseStorage, study_id: int | None = None, *, key: str = CONFIG_ATTR) -> Any:
    """The study's stored config (``key=VERSIONS_ATTR``: its list of configs), or None.

    ``study`` is a study, or a storage with ``study_id`` (readers that have no ``optuna.Study``).
    A study of the previous release keeps it as a user attr, read when no system attr exists.
    """
    storage, study_id = _location(study, study_id)
    value = storage.get_study_system_attrs(study_id).get(key)
    return value if value is not None else storage.get_study_user_attrs(study_id).get(key)


def store_config(study: optuna.Study | BaseStorage, value: Any, study_id: int | None = None, *, key: str = CONFIG_ATTR) -> None:
    """Write the study's config (or with ``key=VERSIONS_ATTR`` its list of configs) as a system attr."""
    storage, study_id = _location(study, study_id)
    storage.set_study_system_attr(study_id, key, value)


def _location(study: optuna.Study | BaseStorage, study_id: int | None) -> tuple[BaseStorage, int]:
    if isinstance(study, optuna.Study):
        return study._storage, study._study_id  # optuna.Study has no public system-attr verbs in 5.1
    if study_id is None:
        raise TypeError("stored_config/store_config on a storage needs study_id")
    return study, study_id


def adopt_legacy_config(study: optuna.Study) -> None:
    """Copy a previous release's config user attrs to system attrs (once, on resume).

    Optuna cannot delete a user attr, so the old ``sweeps.config`` (and ``sweeps.config_versions``)
    user attrs stay behind, frozen at this moment: ``optuna studies`` still prints them for such a
    study, a release before this one still reads them, and this one never reads them again.
    """
    storage, study_id = _location(study, None)
    system, user = storage.get_study_system_attrs(study_id), storage.get_study_user_attrs(study_id)
    for key in (CONFIG_ATTR, VERSIONS_ATTR):
        if system.get(key) is None and user.get(key) is not None:
            storage.set_study_system_attr(study_id, key, user[key])


def remember(study: optuna.Study, config: Mapping[str, Any], allow_change: bool) -> int:
    """Store or check the study's config (module docstring); returns the version trials run with."""
    adopt_legacy_config(study)
    stored = stored_config(study)
    if stored is None:
        store_config(study, dict(config))
        return 0
    versions = stored_config(study, key=VERSIONS_ATTR) or [stored]
    changes = config_changes(stored, config)
    if not changes:
        return len(versions) - 1
    key, before, after = changes[0]
    if not allow_change:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise ConfigError(
            key, after, f"study {study.study_name!r} was made with {key}={before!r}{more}",
            "a new sweep.study_name, or sweep.allow_config_change=true (each trial then records its config)",
        )
    updated = dict(config)
    store_config(study, [*versions, updated], key=VERSIONS_ATTR)
    store_config(study, updated)
    return len(versions)


def config_of_trial(study: optuna.Study, trial: FrozenTrial, default: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stored config ``trial`` ran with: its recorded version, else ``default``."""
    versions = stored_config(study, key=VERSIONS_ATTR)
    if not versions:
        return default
    index = int(trial.user_attrs.get(TRIAL_VERSION_ATTR, 0))
    return versions[index] if 0 <= index < len(versions) else default
