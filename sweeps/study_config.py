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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sweeps.errors import ConfigError

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


def remember(study: optuna.Study, config: Mapping[str, Any], allow_change: bool) -> int:
    """Store or check the study's config (module docstring); returns the version trials run with."""
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, dict(config))
        return 0
    versions = study.user_attrs.get(VERSIONS_ATTR) or [stored]
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
    study.set_user_attr(VERSIONS_ATTR, [*versions, updated])
    study.set_user_attr(CONFIG_ATTR, updated)
    return len(versions)


def config_of_trial(user_attrs: Mapping[str, Any], trial: FrozenTrial, default: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stored config ``trial`` ran with: its recorded version, else the study's first config."""
    versions = user_attrs.get(VERSIONS_ATTR)
    if not versions:
        return default
    index = int(trial.user_attrs.get(TRIAL_VERSION_ATTR, 0))
    return versions[index] if 0 <= index < len(versions) else default
