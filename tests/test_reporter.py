"""The reporter: records, fans out, and stops the trial when told to."""

from __future__ import annotations

import math

import pytest

from sweeps.train.reporter import Diverged, MetricMissing, Pruned, TrialReporter

pytestmark = pytest.mark.unit


def test_reports_reach_the_sink_and_the_prune_check_in_order() -> None:
    seen, checked = [], []
    reporter = TrialReporter("val_acc", should_prune=lambda e, v: checked.append((e, v)) or False, sink=lambda e, m: seen.append((e, dict(m))))
    reporter.report(1, val_acc=0.5, val_loss=1.0)
    reporter.report(2, val_acc=0.7, val_loss=0.8)
    assert seen == [(1, {"val_acc": 0.5, "val_loss": 1.0}), (2, {"val_acc": 0.7, "val_loss": 0.8})]
    assert checked == [(1, 0.5), (2, 0.7)]
    assert reporter.last_epoch == 2


def test_prune_check_saying_stop_raises_pruned_with_the_epoch() -> None:
    reporter = TrialReporter("val_acc", should_prune=lambda e, v: e >= 3)
    reporter.report(1, val_acc=0.1)
    reporter.report(2, val_acc=0.2)
    with pytest.raises(Pruned) as caught:
        reporter.report(3, val_acc=0.3)
    assert (caught.value.epoch, caught.value.value, caught.value.outcome) == (3, 0.3, "pruned")


def test_non_finite_metric_is_divergence_not_a_value() -> None:
    reporter = TrialReporter("val_loss", should_prune=lambda e, v: pytest.fail("NaN must not reach the pruner"))
    with pytest.raises(Diverged) as caught:
        reporter.report(2, val_loss=math.nan, lr=0.5)
    assert (caught.value.epoch, caught.value.lr) == (2, 0.5)


def test_missing_metric_names_what_was_reported() -> None:
    with pytest.raises(MetricMissing, match="not reported by the objective, which reported: accuracy"):
        TrialReporter("val_acc").report(1, accuracy=0.5)


def test_rung_value_is_what_the_pruner_judges() -> None:
    checked = []
    reporter = TrialReporter("val_acc", should_prune=lambda e, v: checked.append(v) or False)
    reporter.report(1, val_acc=0.5, rung_val_acc=0.8)
    reporter.report(2, val_acc=0.6)
    assert checked == [0.8, 0.6]
    assert reporter.history[0]["val_acc"] == 0.5  # the raw value is still recorded
