"""Find the objective a config names: ``objective.target = "package.module:function"``.

Built-in objectives live in ``objectives/`` and are chosen with ``objective=<name>``; a user's own
is chosen by import path (``objective=custom objective.target=mypkg.mymod:train``). Either way it is
a plain ``(cfg, reporter) -> float`` callable that imports neither Optuna nor MLflow. Its module may
define ``check_config(cfg)``, raising ``ConfigError`` for what no trial could run without (data,
packages, ranges): it runs before a sweep creates anything.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable

from omegaconf import DictConfig

from sweeps.errors import ConfigError
from sweeps.train.reporter import Reporter

Objective = Callable[[DictConfig, Reporter], float]


def import_from_workdir(module_name: str):
    """``importlib.import_module``, with the working directory on the path as in a Hydra app or pytest.

    ``sweeps`` is a console script: Python puts its ``bin/`` folder on ``sys.path``, not the folder
    it runs in, so ``objective.target=mypkg.train:train`` run next to ``mypkg/`` would fail without
    ``PYTHONPATH=.``. The working directory goes last: an installed package of the same name wins.
    """
    workdir = os.getcwd()
    if workdir not in sys.path and "" not in sys.path:
        sys.path.append(workdir)
    return importlib.import_module(module_name)


def objective_hook(target: str, name: str) -> Callable | None:
    """The optional function ``name`` (``make_task``, ``evaluate_test``, ...) of the module that
    ``objective.target`` (``package.module:function``) names, or None when it offers none."""
    module_name = target.partition(":")[0] if ":" in target else target.rpartition(".")[0]
    hook = getattr(import_from_workdir(module_name), name, None) if module_name else None
    return hook if callable(hook) else None


def load_objective(cfg: DictConfig) -> Objective:
    """Import ``cfg.objective.target``; check the study's metric is one the objective reports."""
    target = str(cfg.objective.get("target") or "")
    module_name, _, attribute = target.partition(":") if ":" in target else target.rpartition(".")
    if not module_name or not attribute:
        raise ConfigError("objective.target", target, "expected 'package.module:function'")
    try:
        module = import_from_workdir(module_name)
    except ImportError as err:
        raise ConfigError("objective.target", target, f"cannot import {module_name} ({err})") from None
    objective = getattr(module, attribute, None)
    if not callable(objective):
        raise ConfigError("objective.target", target, f"{module_name} has no callable {attribute!r}")
    metrics = cfg.objective.get("metrics")
    if metrics is not None and cfg.sweep.metric not in metrics:
        raise ConfigError("sweep.metric", cfg.sweep.metric, f"not reported by objective {cfg.objective.name}", ", ".join(metrics))
    check = getattr(module, "check_config", None)  # optional: what the objective needs (data, packages)
    if callable(check):
        check(cfg)
    return objective
