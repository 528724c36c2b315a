"""An objective that always raises, as one with a missing dataset or a bug would (test_failures.py)."""

from __future__ import annotations

from omegaconf import DictConfig

from sweeps.train.reporter import Reporter


def missing_data(cfg: DictConfig, reporter: Reporter) -> float:
    raise FileNotFoundError(f"no dataset at /data/{cfg.objective.get('dataset', 'digits')}.npz")
