"""Small user-style objectives (plain ``(cfg, reporter) -> float``) for the integration tests."""

from __future__ import annotations

import math
import os
import time

from omegaconf import DictConfig

from sweeps.train.reporter import Reporter


def quadratic(cfg: DictConfig, reporter: Reporter) -> float:
    """Accuracy-like curve peaking at lr = 1e-2; fails for trial configs with batch_size == 16."""
    if cfg.train.batch_size == 16:
        raise RuntimeError("batch_size 16 is not supported by this objective")
    score = 0.0
    for epoch in range(1, cfg.train.epochs + 1):
        score = epoch / cfg.train.epochs * math.exp(-((math.log10(cfg.train.lr) + 2) ** 2))
        reporter.report(epoch, val_acc=score)
    return score


def wrong_metric(cfg: DictConfig, reporter: Reporter) -> float:
    reporter.report(1, accuracy=0.5)
    return 0.5


def interrupt_third_trial(cfg: DictConfig, reporter: Reporter) -> float:
    """Raises KeyboardInterrupt (Ctrl-C) in the middle of the trial whose marker file says so."""
    marker = os.environ.get("SWEEPS_TEST_INTERRUPT_MARKER", "")
    for epoch in range(1, cfg.train.epochs + 1):
        reporter.report(epoch, val_acc=epoch / 10)
        if marker and os.path.exists(marker) and epoch == 2:
            os.remove(marker)
            raise KeyboardInterrupt
    return cfg.train.epochs / 10


def slow(cfg: DictConfig, reporter: Reporter) -> float:
    """One epoch per second, so a test can kill the worker mid-trial."""
    for epoch in range(1, cfg.train.epochs + 1):
        time.sleep(1.0)
        reporter.report(epoch, val_acc=epoch / 10)
    return cfg.train.epochs / 10


def held(cfg: DictConfig, reporter: Reporter) -> float:
    """Holds its last epoch until the file ``release`` exists in the working directory; meanwhile
    ``holding/<pid>`` names the process that runs it, so a test kills a worker that certainly holds a
    RUNNING trial (the trial has reported every epoch but the last to the study)."""
    for epoch in range(1, cfg.train.epochs):
        reporter.report(epoch, val_acc=epoch / 10)
    holding = os.path.join("holding", str(os.getpid()))
    os.makedirs("holding", exist_ok=True)
    open(holding, "w").close()
    try:
        while not os.path.exists("release"):
            time.sleep(0.05)
        reporter.report(cfg.train.epochs, val_acc=cfg.train.epochs / 10)
        return cfg.train.epochs / 10
    finally:
        os.remove(holding)
