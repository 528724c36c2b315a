"""Curve diagnosis: synthetic edge cases, real curves from the real trainer, and the sweep report.

Real LRs, measured with the default trainer (AdamW, batch 64, warmup + cosine): digits_mlp is good
at 1e-3..3e-2, flat at 1e-6/1e-5, explodes without NaN from 0.3 and ends at chance at 100;
tiny_transformer is good at 3e-3..1e-2, flat at 1e-6, collapses to chance at 0.1..0.3 (no NaN); SGD on
digits at a constant lr 3 NaNs (the trainer raises Diverged). Runs are shrunk: digits 6 epochs, tiny 4
epochs on 1000 sequences.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import objectives.digits_mlp as digits_mlp
import objectives.tiny_transformer as tiny_transformer
from sweeps.config.compose import builtin_config_dir, compose_config
from sweeps.errors import ConfigError
from sweeps.results.curve_diagnosis import VERDICTS, Curves, Diagnosis, Thresholds, diagnose, loss_exploded
from sweeps.results.sweep_diagnosis import diagnose_sweep, plot_sweep_diagnosis
from sweeps.train.reporter import Diverged, recording_reporter
from sweeps.train.training import train

pytestmark = pytest.mark.unit

# ----------------------------------------------------------------------------------------------
# Synthetic curves: one per row of the LR notes' "Reading curves" table, plus the edge cases.


def decaying(steps: int = 300, start: float = 2.3, end: float = 0.2, noise: float = 0.02, seed: int = 0) -> list[float]:
    """A healthy curve: exponential decay from ``start`` towards ``end`` with multiplicative batch noise."""
    rng = np.random.default_rng(seed)
    trend = end + (start - end) * np.exp(-np.arange(steps) / (steps / 6))
    return (trend * (1 + noise * rng.standard_normal(steps))).tolist()


def with_spike(losses: list[float], at: int, factor: float) -> list[float]:
    return [x * factor if i == at else x for i, x in enumerate(losses)]


def epochs(train_losses: list[float], val_losses: list[float], val_acc: float = 0.9) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "train_loss": t, "val_loss": v, "val_acc": val_acc} for i, (t, v) in enumerate(zip(train_losses, val_losses))]


RNG = np.random.default_rng(1)
CHANCE_10 = math.log(10)
COLLAPSE = [2.31, 2.6, 3.0, 3.4, 3.1, 2.8, 2.6] + (CHANCE_10 + 0.01 * RNG.standard_normal(193)).tolist()  # Adam, lr far too high

SYNTHETIC = [
    # id, curves, verdict, evidence keys, words of the advice
    ("nan_at_step_0", Curves([math.nan, 2.3, 2.2]), "diverged", {"diverged_at_step"}, ["10x", "warmup", "clipping"]),
    ("trainer_stopped", Curves(epochs=epochs([2.3], [2.3]), diverged_at_step=17), "diverged", {"diverged_at_step"}, ["10x"]),
    ("explodes_without_nan", Curves(decaying()[:20] + [80.0] + decaying()[20:]), "diverged", {"explode_step", "peak_to_start"}, ["10x"]),
    ("ends_above_start", Curves(np.linspace(2.3, 3.5, 200).tolist()), "diverged", {"progress", "end_loss"}, ["10x"]),
    ("chance_collapse", Curves(COLLAPSE, epochs=epochs([2.9, 2.31], [2.31, 2.30], val_acc=0.1), n_classes=10),
     "diverged", {"end_to_chance", "rise", "val_acc", "chance_acc"}, ["lower the LR ~10x"]),
    ("learned_then_back_to_chance", Curves(decaying(100, end=0.3) + [CHANCE_10] * 100, n_classes=10), "diverged", {"min_to_chance"}, ["10x"]),
    ("single_spike_recovers", Curves(with_spike(decaying(), 100, 3.0)), "healthy", {"progress", "noise_to_start"}, ["none"]),
    ("constant", Curves([2.3] * 200), "plateau", {"progress"}, ["raise the LR 3-10x", "schedule"]),
    ("flat_with_noise_at_chance", Curves((CHANCE_10 + 0.01 * RNG.standard_normal(200)).tolist(), epochs=epochs([2.3], [2.3], 0.1), n_classes=10),
     "plateau", {"progress"}, ["raise the LR"]),
    ("slow_steady_decrease", Curves(np.linspace(2.3, 2.0, 300).tolist()), "slow", {"progress"}, ["raise the LR 3-10x"]),
    ("noisy_no_progress", Curves(np.clip(1.5 + 0.5 * RNG.standard_normal(300), 0.05, None).tolist()), "oscillating",
     {"noise_to_start", "noise_to_drop"}, ["lower the LR 2-5x", "momentum", "clip"]),
    ("rises_then_crawls", Curves([2.3, 2.5, 2.7, 2.8, 2.8, 2.7] + np.linspace(2.6, 2.4, 194).tolist()), "oscillating", {"rise"}, ["lower the LR"]),
    ("overfitting", Curves(decaying(), epochs=epochs([1.0, 0.5, 0.3, 0.2, 0.1, 0.05], [1.0, 0.7, 0.6, 0.65, 0.75, 0.9])),
     "overfitting", {"val_loss_min", "val_loss_min_epoch", "val_rise", "train_fall"}, ["weight_decay", "stop earlier"]),
    ("healthy", Curves(decaying(), step_lrs=[3e-3] * 300), "healthy", {"progress", "peak_lr"}, ["none"]),
    ("empty", Curves(), "healthy", {"steps"}, ["too few points"]),
    ("very_short", Curves([2.3, 2.2, 2.0]), "healthy", {"steps"}, ["too few points"]),
    ("epoch_losses_only", Curves(epochs=epochs([2.3, 2.3, 2.3, 2.3, 2.3, 2.3, 2.3, 2.3, 2.3], [2.3] * 9)), "plateau", {"epochs"}, ["raise"]),
]


@pytest.mark.parametrize("curves, verdict, keys, advice", [case[1:] for case in SYNTHETIC], ids=[case[0] for case in SYNTHETIC])
def test_synthetic_curves(curves: Curves, verdict: str, keys: set[str], advice: list[str]) -> None:
    diagnosis = diagnose(curves)
    assert diagnosis.verdict == verdict, diagnosis
    assert keys <= set(diagnosis.evidence), diagnosis.evidence
    assert all(word in diagnosis.advice for word in advice), diagnosis.advice


def test_chance_collapse_is_not_the_low_lr_plateau_it_resembles() -> None:
    """Both end at ln(10) with accuracy at chance; only the collapse rose above its start first."""
    flat = Curves(COLLAPSE[7:], epochs=epochs([2.31], [2.30], val_acc=0.1), n_classes=10)
    assert diagnose(Curves(COLLAPSE, epochs=flat.epochs, n_classes=10)).verdict == "diverged"
    assert diagnose(flat).verdict == "plateau"


def test_advice_names_the_lr_it_implies() -> None:
    assert "peak lr 0.3 -> ~0.03" in diagnose(Curves(COLLAPSE, [0.3] * len(COLLAPSE), n_classes=10)).advice
    assert "peak lr 1e-06 -> ~1e-05" in diagnose(Curves([2.3] * 50, [1e-6] * 50)).advice


def test_loss_exploded_is_the_trainer_guard() -> None:
    assert loss_exploded(math.nan, 2.3) and loss_exploded(math.inf, 2.3) and loss_exploded(-math.inf, 2.3)
    assert loss_exploded(23.1, 2.3) and not loss_exploded(22.9, 2.3)  # default factor 10
    assert loss_exploded(5.0, 2.3, factor=2.0) and not loss_exploded(1e9, 0.0)  # no ratio from a zero start


def test_diagnosis_modules_import_neither_torch_nor_the_stores() -> None:
    code = "import sys, sweeps.results.curve_diagnosis, sweeps.results.sweep_diagnosis; print(sorted({'torch', 'optuna', 'mlflow', 'matplotlib'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_evidence_text_is_one_short_line() -> None:
    text = diagnose(SYNTHETIC[4][1]).evidence_text()
    assert text.startswith("steps=200 ") and "end_to_chance=" in text and "\n" not in text
    long = Diagnosis("healthy", {f"key_{i}": i / 7 for i in range(200)})
    assert len(long.evidence_text()) < 500


# ----------------------------------------------------------------------------------------------
# Thresholds and their config group.


def test_thresholds_from_mapping_override_and_reject_unknown_keys() -> None:
    assert Thresholds.from_mapping({"explode_factor": 4}).explode_factor == 4
    with pytest.raises(ConfigError) as caught:
        Thresholds.from_mapping({"explode_factor": 4, "spike_factor": 3})
    assert caught.value.key == "diagnosis.spike_factor" and "explode_factor" in str(caught.value)
    with pytest.raises(ConfigError, match=r"diagnosis.slow_progress=-1: must be a finite number > 0"):
        Thresholds.from_mapping({"slow_progress": -1})
    with pytest.raises(ConfigError, match=r"diagnosis.plateau_progress=0.5: must be < diagnosis.slow_progress"):
        Thresholds(plateau_progress=0.5)


def test_config_group_mirrors_the_defaults_and_composes() -> None:
    path = builtin_config_dir() / "diagnosis" / "default.yaml"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert all("#" in line for line in lines)  # one commented line per key
    # explode_factor follows train.diverge_factor (the trainer's guard): one knob for both
    assert OmegaConf.to_container(OmegaConf.load(path), resolve=False)["explode_factor"] == "${train.diverge_factor}"
    assert Thresholds.from_mapping(compose_config([]).diagnosis) == Thresholds()
    composed = compose_config(["diagnosis.rise_margin=0.1", "train.diverge_factor=20"]).diagnosis
    assert Thresholds.from_mapping(composed).rise_margin == 0.1 and Thresholds.from_mapping(composed).explode_factor == 20


def test_stricter_thresholds_change_the_verdict() -> None:
    slow = Curves(np.linspace(2.3, 2.0, 300).tolist())
    assert diagnose(slow, Thresholds(plateau_progress=0.2)).verdict == "plateau"


# ----------------------------------------------------------------------------------------------
# Real curves from the real trainer.

OBJECTIVES = {"digits_mlp": digits_mlp, "tiny_transformer": tiny_transformer}


@lru_cache(maxsize=None)
def real_curves(objective: str, *overrides: str) -> Curves:
    """Train once (CPU-sized runs); a ``Diverged`` stop becomes ``diverged_at_step``."""
    cfg = compose_config([f"objective={objective}", *overrides])
    n_classes = 10 if objective == "digits_mlp" else int(cfg.objective.vocab)
    reporter = recording_reporter("val_acc")
    try:
        result = train(OBJECTIVES[objective].make_task(cfg.objective), cfg.train, reporter)
    except Diverged as stop:
        return Curves(epochs=tuple(reporter.history), diverged_at_step=stop.step, n_classes=n_classes)
    return Curves(tuple(result.step_losses), tuple(result.step_lrs), tuple(reporter.history), n_classes=n_classes)


DIGITS = ("train.epochs=6",)
TINY = ("train.epochs=4", "objective.train_limit=1000", "objective.n_val=200")  # 64 steps
DIGITS_OVERFIT = ("objective.train_limit=100", "objective.hidden=256", "train.weight_decay=0", "train.lr=1e-2", "train.epochs=30")
TINY_OVERFIT = ("objective.train_limit=64", "objective.n_val=200", "train.batch_size=16", "train.weight_decay=0", "train.lr=1e-2", "train.epochs=25")

REAL = [
    # objective, overrides, accepted verdicts
    pytest.param("digits_mlp", (*DIGITS, "train.lr=100"), {"diverged", "oscillating"}, id="digits-adamw-lr100-explodes-to-chance"),
    pytest.param("digits_mlp", (*DIGITS, "train.optimizer=sgd", "train.schedule=constant", "train.lr=3"), {"diverged"}, id="digits-sgd-lr3-nan"),
    pytest.param("digits_mlp", (*DIGITS, "train.lr=1e-6"), {"plateau", "slow"}, id="digits-lr1e-6"),
    pytest.param("digits_mlp", (*DIGITS, "train.lr=1e-2"), {"healthy"}, id="digits-lr1e-2"),
    pytest.param("digits_mlp", DIGITS_OVERFIT, {"overfitting"}, id="digits-100-examples-overfit"),
    pytest.param("tiny_transformer", (*TINY, "train.lr=0.3"), {"diverged", "oscillating"}, id="tiny-lr0.3-collapse"),
    pytest.param("tiny_transformer", (*TINY, "train.lr=1e-6"), {"plateau", "slow"}, id="tiny-lr1e-6"),
    pytest.param("tiny_transformer", (*TINY, "train.lr=1e-2"), {"healthy"}, id="tiny-lr1e-2"),
    pytest.param("tiny_transformer", TINY_OVERFIT, {"overfitting"}, id="tiny-64-sequences-overfit"),
]


@pytest.mark.parametrize("objective, overrides, accepted", REAL)
def test_real_curves(objective: str, overrides: tuple[str, ...], accepted: set[str]) -> None:
    diagnosis = diagnose(real_curves(objective, *overrides))
    assert diagnosis.verdict in accepted, diagnosis


def test_real_adam_collapse_is_told_apart_from_the_real_low_lr_plateau() -> None:
    """tiny_transformer at lr 0.3 never NaNs: it ends at ln(16) with accuracy near chance, like lr 1e-6."""
    collapse = diagnose(real_curves("tiny_transformer", *TINY, "train.lr=0.3"))
    flat = diagnose(real_curves("tiny_transformer", *TINY, "train.lr=1e-6"))
    assert collapse.verdict == "diverged" and flat.verdict == "plateau"
    assert abs(collapse.evidence["end_to_chance"] - 1) < 0.1 and collapse.evidence["rise"] > 0.05
    assert abs(flat.evidence["end_loss"] / math.log(16) - 1) < 0.1  # same loss level, opposite cause


# ----------------------------------------------------------------------------------------------
# Sweep level.

# A digits-like sweep (values from the real runs above): flat at low LR, good 1e-3..0.1, diverged above.
SWEEP = [
    (0, 1e-5, 0.119, "plateau"), (1, 3e-5, 0.20, "slow"), (2, 1e-4, 0.356, "slow"), (3, 1e-3, 0.881, "healthy"),
    (4, 3e-3, 0.967, "healthy"), (5, 1e-2, 0.972, "healthy"), (6, 3e-2, 0.967, "healthy"), (7, 0.1, 0.964, "healthy"),
    (8, 0.3, None, "diverged"), (9, 1.0, None, "diverged"), (10, 3.0, 0.10, "diverged"),
]


def test_sweep_counts_boundary_window_and_recommendations() -> None:
    report = diagnose_sweep(SWEEP, "maximize")
    assert {v: n for v, n in report.counts.items() if n} == {"plateau": 1, "slow": 2, "healthy": 5, "diverged": 3}
    assert set(report.counts) == set(VERDICTS)
    assert report.lr_ranges["diverged"] == (0.3, 3.0) and report.lr_ranges["slow"] == (3e-5, 1e-4)
    assert report.divergence_boundary == pytest.approx(math.sqrt(0.1 * 0.3))
    assert report.best.number == 5 and report.stable_window == (3e-3, 0.1)
    assert report.stable_window[0] <= report.best.lr <= report.stable_window[1]
    (line,) = report.recommendations  # one edit of search.lr, both bounds, with its evidence and counts
    assert line.startswith("change search.lr.low 1e-5 → 0.003 and search.lr.high 3 → 0.1 (search.lr='tag(log, interval(0.003, 0.1))'): ")
    assert "all 3 trials above the divergence boundary (lr ≈ 0.17) diverged (the highest LR that trained: 0.1)" in line
    assert "none of the 4 trials with lr < 0.003 came within 2% of the best" in line


def test_sweep_markdown_and_plot(tmp_path) -> None:
    report = diagnose_sweep(SWEEP, "maximize")
    markdown = report.to_markdown()
    assert "| verdict | trials | lr min | lr max |" in markdown
    assert "| diverged | 3 | 0.3 | 3 |" in markdown and "| slow | 2 | 3e-5 | 1e-4 |" in markdown
    assert "divergence boundary: lr ≈ 0.17" in markdown and "search.lr.high" in markdown
    png = plot_sweep_diagnosis(SWEEP, report, tmp_path / "plots" / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_sweep_best_at_the_top_edge_and_minimize_window() -> None:
    lrs = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
    rising = diagnose_sweep([(i, lr, loss, "healthy") for i, (lr, loss) in enumerate(zip(lrs, [0.5, 0.4, 0.3, 0.25, 0.2]))], "minimize")
    assert rising.best.lr == 1e-2 and rising.divergence_boundary is None and rising.stable_window == (1e-2, 1e-2)
    assert any("top edge" in r and "search.lr.high 0.01 → 0.03" in r for r in rising.recommendations)
    valley = diagnose_sweep([(i, lr, loss, "healthy") for i, (lr, loss) in enumerate(zip(lrs, [0.25, 0.203, 0.2, 0.21, 0.3]))], "minimize")
    assert valley.best.lr == 1e-3 and valley.stable_window == (3e-4, 1e-3)  # <= 0.2 * 1.02
    flat = diagnose_sweep([(i, lr, acc, "healthy") for i, (lr, acc) in enumerate(zip(lrs, [0.955, 0.96, 0.97, 0.965, 0.955]))], "maximize")
    assert flat.stable_window == (1e-4, 1e-2) and flat.recommendations[0].startswith("no change needed")


def test_sweep_boundary_with_a_stray_divergence_and_when_all_diverge() -> None:
    noisy = [(0, 1e-3, 0.9, "healthy"), (1, 1e-2, None, "diverged"), (2, 3e-2, 0.9, "healthy"), (3, 0.1, None, "diverged"), (4, 0.3, None, "diverged")]
    assert diagnose_sweep(noisy, "maximize").divergence_boundary == pytest.approx(math.sqrt(3e-2 * 0.1))
    everything = diagnose_sweep([(0, 1.0, None, "diverged"), (1, 3.0, None, "diverged")], "maximize")
    assert everything.divergence_boundary is None and everything.stable_window is None
    assert everything.recommendations == ["all 2 trials diverged (lr 1 – 3): lower search.lr.low and search.lr.high ~10x"]
    with pytest.raises(ConfigError, match="sweep.direction"):
        diagnose_sweep(noisy, "up")


# ----------------------------------------------------------------------------------------------
# Advice that never contradicts itself, and verdicts read against the sweep (issue 17), on curves
# recorded with the real trainer (tests/data/diagnosis_curves.json: default config, 9 epochs).

RECORDED = json.loads((Path(__file__).parent / "data" / "diagnosis_curves.json").read_text())["curves"]


def recorded(name: str) -> Curves:
    c = RECORDED[name]
    return Curves(c["step_losses"], c["step_lrs"], c["epochs"], c["diverged_at_step"], c["n_classes"])


def row(number: int, lr: float, name: str, value: float | None = None) -> tuple:
    """A sweep row as ``sweeps.results.study_report.diagnosis_rows`` builds it from a trial's diagnosis."""
    found = diagnose(recorded(name))
    final = RECORDED[name]["epochs"][-1]["val_acc"] if value is None else value
    return (number, lr, final, found.verdict, found.evidence.get("near_chance", 0) >= 1, found.evidence.get("tail_drop", 0) >= Thresholds().still_falling)


def test_recorded_low_lr_is_slow_only_while_still_falling() -> None:
    slow = diagnose(recorded("tiny_transformer,train.lr=1e-5"))
    assert slow.verdict == "slow" and slow.evidence["tail_drop"] >= 0.01 and slow.evidence["near_chance"] == 1
    finished = diagnose(recorded("digits_mlp,train.lr=1e-2"))
    assert finished.verdict == "healthy" and finished.evidence["tail_drop"] < 0.01
    # the same low-progress curve with its second half flattened reads as a plateau, not slow
    losses = list(recorded("tiny_transformer,train.lr=1e-5").step_losses)
    half = len(losses) // 2
    flat = Curves(losses[:half] + [losses[half]] * (len(losses) - half), n_classes=16)
    assert diagnose(flat).verdict == "plateau"


def test_recorded_high_lr_at_chance_is_a_collapse_against_the_sweep() -> None:
    """tiny_transformer at lr 0.126 ends at ln(16) with accuracy 0.15: one curve may read it as a low-LR
    plateau; above the best trial's LR the sweep calls it diverged, below it the same level stays slow."""
    collapse = diagnose(recorded("tiny_transformer,train.lr=0.126"))
    assert collapse.verdict == "diverged"
    best = row(1, 1e-2, "digits_mlp,train.lr=1e-2", value=0.80)
    low = row(0, 1e-5, "tiny_transformer,train.lr=1e-5")
    assert low[3:5] == ("slow", True)
    as_if_slow = (2, 0.126, 0.147, "slow", True, True)  # what a curve that never rose above its start gives
    report = diagnose_sweep([low, best, as_if_slow, (3, 0.3, None, "diverged")], "maximize")
    assert report.counts["diverged"] == 2 and report.counts["slow"] == 1
    assert any("trial #2 (lr 0.13): slow → diverged" in line for line in report.rereads)
    assert "Verdicts read against the sweep" in report.to_markdown()


def test_recorded_digits_far_below_the_best_is_slow_not_healthy() -> None:
    """digits at lr 1.8e-4 ends at val_acc 0.72, its loss still falling; the best reaches 0.967."""
    alone = diagnose(recorded("digits_mlp,train.lr=1.8e-4"))
    assert alone.verdict == "healthy"  # one curve: it progressed 26 % and is smooth
    report = diagnose_sweep([row(0, 1.8e-4, "digits_mlp,train.lr=1.8e-4"), row(1, 1e-2, "digits_mlp,train.lr=1e-2")], "maximize")
    assert report.counts["slow"] == 1 and report.counts["healthy"] == 1
    close = diagnose_sweep([(0, 1e-3, 0.96, "slow", False, True), (1, 1e-2, 0.967, "healthy", False, False)], "maximize")
    assert close.counts["slow"] == 0  # within 10 % of the best: not slow, whatever its curve says


@pytest.mark.parametrize(
    "rows",
    [
        # the case: a single trial in the window, the boundary just above it
        [(0, 1e-4, 0.5, "slow"), (1, 3e-4, 0.6, "slow"), (2, 1e-3, 0.8, "healthy"), (3, 0.0081, 0.97, "healthy"), (4, 0.03, None, "diverged"), (5, 0.1, None, "diverged")],
        # best at the bottom edge and divergence above
        [(0, 1.1e-4, 0.97, "healthy"), (1, 3e-4, 0.9, "healthy"), (2, 1e-3, 0.8, "healthy"), (3, 0.1, None, "diverged"), (4, 0.2, None, "diverged")],
        # best at the top edge, a cluster of poor trials below
        [(0, 1e-4, 0.5, "slow"), (1, 2e-4, 0.55, "slow"), (2, 3e-4, 0.6, "slow"), (3, 0.29, 0.97, "healthy")],
    ],
)
def test_one_recommendation_per_parameter_and_never_an_empty_range(rows: list[tuple]) -> None:
    report = diagnose_sweep(rows, "maximize", lr_bounds=(1e-4, 0.3))
    changes = [line for line in report.recommendations if line.startswith("change ")]
    assert len(changes) == 1 and all("search.lr" not in line for line in report.recommendations if line not in changes)
    low, high = (float(x) for x in changes[0].split("interval(")[1].split("))")[0].split(", "))
    assert high >= 3 * low * 0.999  # at least half a decade, low < high
    assert all("trials" in part or "sits at" in part for part in changes[0].split(": ", 1)[1].split("; "))


def test_a_claim_needs_more_than_one_trial() -> None:
    rows = [(0, 1e-3, 0.9, "healthy"), (1, 0.01, 0.97, "healthy"), (2, 0.06, 0.96, "healthy"), (3, 0.126, None, "diverged")]
    report = diagnose_sweep(rows, "maximize", lr_bounds=(1e-4, 0.3))
    assert report.divergence_boundary == pytest.approx(math.sqrt(0.06 * 0.126))
    assert not any(line.startswith("change") and "search.lr.high" in line for line in report.recommendations)
    assert any("1 of 1 trial with lr > 0.087 diverged: too few to move search.lr.high (needs 2)" in line for line in report.recommendations)


def test_rereads_are_listed_by_trial_number() -> None:
    rows = [(0, 1.8e-4, 0.72, "healthy", False, True), (1, 1e-2, 0.967, "healthy", False, False), (2, 0.126, 0.147, "slow", True, True)]
    report = diagnose_sweep(rows, "maximize")
    assert report.reread_verdicts == {0: "slow", 2: "diverged"}
    assert report.reread_notes[2].startswith("trial #2 (lr 0.13): slow → diverged")
