"""One outcome per trial (``sweeps.outcome``): read the same by both stores, the console, ``status``,
``studies``, the sweep's counts and the plots."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.console import counts_line, status_rows, status_table
from sweeps.results.plots import intermediate_values_figure, lr_points
from sweeps.run.outcome import OUTCOME_ATTR, Outcome, counts_toward_total, outcome_of
from sweeps.run.sweep import outcome_counts
from sweeps.search.studies import list_studies


def _trial(state: TrialState, recorded: str | None, lr: float = 1e-2, curve: tuple[float, ...] = (0.3, 0.5)):
    return create_trial(
        state=state,
        value=0.9 if state == TrialState.COMPLETE else None,
        params={"lr": lr},
        distributions={"lr": FloatDistribution(1e-8, 1.0, log=True)},
        intermediate_values=dict(enumerate(curve)) if state != TrialState.WAITING else {},
        user_attrs={OUTCOME_ATTR: recorded} if recorded else {},
    )


# (Optuna state, recorded sweeps.outcome) -> the outcome every view shows, and whether it counts
CASES = [
    (TrialState.COMPLETE, "complete", "complete", True),
    (TrialState.COMPLETE, None, "complete", True),
    (TrialState.PRUNED, "pruned", "pruned", True),
    (TrialState.PRUNED, "diverged", "diverged", True),
    (TrialState.PRUNED, None, "pruned", True),
    (TrialState.FAIL, "failed", "failed", True),
    (TrialState.FAIL, "interrupted", "interrupted", False),
    (TrialState.FAIL, "lost", "lost", False),
    (TrialState.FAIL, None, "lost", False),  # its worker died before recording why (console said "fail", studies "failed")
    (TrialState.FAIL, "complete", "lost", False),  # recorded complete, then died before Optuna heard it
    (TrialState.WAITING, "complete", "waiting", False),  # a retry carries its predecessor's attrs
    (TrialState.RUNNING, None, "running", False),
    (TrialState.COMPLETE, "no-such-outcome", "complete", True),
]


@pytest.mark.parametrize(("state", "recorded", "expected", "counted"), CASES)
def test_outcome_of_a_trial(state: TrialState, recorded: str | None, expected: str, counted: bool) -> None:
    trial = _trial(state, recorded)
    assert (outcome_of(trial).value, counts_toward_total(trial)) == (expected, counted)


def test_each_outcome_maps_to_one_optuna_state_and_one_run_status() -> None:
    table = {o.value: (o.state.name, o.run_status, o.counts_toward_total) for o in Outcome}
    assert table == {
        "complete": ("COMPLETE", "FINISHED", True),
        "pruned": ("PRUNED", "FINISHED", True),
        "diverged": ("PRUNED", "FINISHED", True),
        "failed": ("FAIL", "FAILED", True),
        "interrupted": ("FAIL", "KILLED", False),
        "lost": ("FAIL", "FAILED", False),
        "running": ("RUNNING", "RUNNING", False),
        "waiting": ("WAITING", "SCHEDULED", False),
    }
    with pytest.raises(ValueError, match="unknown trial outcome 'fail'; known: complete, pruned"):
        Outcome.parse("fail")


def test_console_status_studies_counts_and_plots_agree(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="agree", storage=storage, direction="maximize")
    recorded = [("complete", TrialState.COMPLETE), ("complete", TrialState.COMPLETE), ("pruned", TrialState.PRUNED),
                ("diverged", TrialState.PRUNED), ("failed", TrialState.FAIL), ("interrupted", TrialState.FAIL), (None, TrialState.FAIL)]
    study.add_trials([_trial(state, name, lr=10.0 ** -(i + 1)) for i, (name, state) in enumerate(recorded)])
    expected = {"complete": 2, "pruned": 1, "diverged": 1, "failed": 1, "interrupted": 1, "lost": 1}

    assert dict(outcome_counts(study)) == expected  # the parent run's n_<outcome> metrics
    assert counts_line(study) == "complete 2 · diverged 1 · failed 1 · interrupted 1 · lost 1 · pruned 1"  # after a sweep
    rows = status_rows(study)  # sweeps status --json
    assert [row["outcome"] for row in rows] == ["complete", "complete", "pruned", "diverged", "failed", "interrupted", "lost"]
    table = status_table(study, rows, "val_acc", 7)  # sweeps status
    assert list(table.columns[1].cells) == [row["outcome"] for row in rows]
    assert table.caption.startswith("5/7 finished · complete 2 · diverged 1 · failed 1 · interrupted 1 · lost 1 · pruned 1")
    (listed,) = list_studies(storage)  # sweeps studies
    assert dict(listed.outcomes) == expected and listed.finished == 5
    figure = intermediate_values_figure(study.trials, "val_acc")  # the report's learning curves
    legend = sorted(text.get_text() for text in figure.axes[0].get_legend().get_texts())
    assert legend == sorted(f"{name} ({n})" for name, n in expected.items())
    assert [p.outcome for p in lr_points(study.trials)] == ["complete", "complete", "pruned", "diverged"]

