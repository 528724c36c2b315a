"""The life of one trial across Optuna and MLflow.

sample params -> trial config -> child run -> objective(cfg, reporter) -> outcome in both stores.

The two stores are linked both ways: the MLflow run id is an Optuna user attr, the study name and
trial number are tags of the run. The outcome is decided once, here, and written to both.
"""

from __future__ import annotations

import math
import traceback
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from sweeps.config.sections import Sections
from sweeps.results.curve_diagnosis import Curves, diagnose
from sweeps.run.outcome import OUTCOME_ATTR, Outcome
from sweeps.run.signals import StopFlag
from sweeps.search.space import SearchSpace, apply_params
from sweeps.search.study import pruning_epochs, report_epochs
from sweeps.track.tracker import SweepTracker, flatten, loss_until_blow_up
from sweeps.train.objective import Objective
from sweeps.train.reporter import Diverged, Interrupted, MetricMissing, Pruned, TrialReporter

RUN_ID_ATTR = "mlflow_run_id"


class TrialRunner:
    """The callable given to ``study.optimize``: runs one trial, records its outcome everywhere."""

    def __init__(self, cfg: DictConfig, space: SearchSpace, objective: Objective, tracker: SweepTracker, stop: StopFlag | None = None,
                 sections: Sections | None = None) -> None:
        self.cfg = cfg  # each trial's config: this with the sampled params applied (what the objective gets)
        self.stop = stop or StopFlag()
        self.space = space
        self.objective = objective
        self.tracker = tracker
        settings = sections or Sections.of(cfg)
        self.metric = settings.sweep.metric
        self.thresholds = settings.diagnosis
        self.log_steps = settings.tracking.log_steps
        self.flush_seconds = settings.tracking.flush_seconds
        self.report_epochs = report_epochs(settings.sweep)
        self.pruning_epochs = pruning_epochs(settings.sweep)
        self.pruner_reads = settings.sweep.pruner != "none"
        self.aborted: str | None = None  # why the whole sweep must stop (no other trial would do better)

    def __call__(self, trial: optuna.Trial) -> float:
        trial_cfg = apply_params(self.cfg, self.space.sample(trial))
        run_id = self.tracker.start_trial(trial.number, self._params(trial, trial_cfg), {"sweeps.metric": self.metric})
        trial.set_user_attr(RUN_ID_ATTR, run_id)
        self.buffer = self.tracker.metric_buffer(run_id, self.flush_seconds)
        reporter = TrialReporter(
            metric=self.metric,
            should_prune=lambda epoch, value: self._should_prune(trial, epoch, value),
            sink=self.buffer.add,
            stop_requested=lambda: self.stop.name or None,
            step_sink=self._log_steps if self.log_steps else None,
            rung_epochs=self.pruning_epochs,  # where rung evaluation (cooldown/averaged) is worth it
        )
        self.reporter = reporter
        n_classes = trial_cfg.objective.get("n_classes")  # chance level for the diagnosis
        try:
            value = float(self.objective(trial_cfg, reporter))
        except Pruned as stop:
            tags = {"sweeps.pruned_at_epoch": str(stop.epoch), **self._diagnose(trial, reporter, n_classes)}
            self._end(trial, run_id, Outcome.PRUNED, tags)
            raise optuna.TrialPruned(str(stop)) from None
        except Diverged as stop:
            epoch = stop.epoch if stop.epoch is not None else reporter.last_epoch
            tags = {"sweeps.pruned_at_epoch": str(epoch), "sweeps.diverged_at_step": str(stop.step), "sweeps.diverged_lr": f"{stop.lr:.6g}"}
            trial.set_user_attr("diverged_at_step", stop.step)
            trial.set_user_attr("diverged_lr", stop.lr)
            tags.update(self._diagnose(trial, reporter, n_classes, diverged_at_step=max(stop.step, 0)))
            if not self.log_steps:  # with log_steps they are logged already
                self._log_blow_up(reporter)
            self._end(trial, run_id, Outcome.DIVERGED, tags)
            raise optuna.TrialPruned(str(stop)) from None
        except MetricMissing as err:
            self.aborted = str(err).strip("'\"")
            self._end(trial, run_id, Outcome.FAILED, {"sweeps.error": self.aborted})
            trial.study.stop()
            raise
        except Interrupted as stop:
            self._interrupted(trial, run_id, str(stop))
            trial.study.stop()
            raise
        except (KeyboardInterrupt, SystemExit):
            self._interrupted(trial, run_id, "interrupted")
            raise
        except Exception as err:
            self._end(trial, run_id, Outcome.FAILED, {"sweeps.error": _one_line(err)}, traceback.format_exc())
            raise
        if not math.isfinite(value):
            self._end(trial, run_id, Outcome.DIVERGED, {"sweeps.pruned_at_epoch": str(reporter.last_epoch)})
            raise optuna.TrialPruned(f"objective returned {value}")
        self._end(trial, run_id, Outcome.COMPLETE, self._diagnose(trial, reporter, n_classes), metrics={f"final_{self.metric}": value})
        return value

    def _diagnose(self, trial: optuna.Trial, reporter: TrialReporter, n_classes: int | None, diverged_at_step: int | None = None) -> dict[str, str]:
        """Read the trial's curves; the verdict goes to Optuna user attrs and MLflow tags."""
        curves = Curves(
            step_losses=reporter.step_losses,
            step_lrs=reporter.step_lrs,
            epochs=reporter.history,
            diverged_at_step=diverged_at_step,
            n_classes=n_classes,
        )
        found = diagnose(curves, self.thresholds)
        trial.set_user_attr("diagnosis", found.verdict)
        trial.set_user_attr("diagnosis_detail", {"evidence": {k: float(v) for k, v in found.evidence.items()}, "advice": found.advice})
        return {"diagnosis": found.verdict, "diagnosis.evidence": found.evidence_text(), "diagnosis.advice": found.advice[:500]}

    def _interrupted(self, trial: optuna.Trial, run_id: str, reason: str) -> None:
        """Close the run as KILLED and re-queue the same params: the study loses no configuration."""
        trial.study.enqueue_trial(trial.params, user_attrs={"sweeps.retry_of": trial.number})
        self._end(trial, run_id, Outcome.INTERRUPTED, {"sweeps.error": f"{reason}; re-queued"})

    def _should_prune(self, trial: optuna.Trial, epoch: int, value: float) -> bool:
        """Report to the study only where its pruner reads (each call is a storage round-trip)."""
        if epoch not in self.report_epochs:
            return False
        trial.report(value, epoch)
        return self.pruner_reads and trial.should_prune()

    def _log_blow_up(self, reporter: TrialReporter) -> None:
        """A diverged trial's training loss per step up to the blow-up (``train_loss_step``, ``lr_step``):
        most diverge inside their first epoch, before any epoch metric exists."""
        for step, loss in loss_until_blow_up(reporter.step_losses):
            self.buffer.add(step, {"train_loss_step": loss, "lr_step": reporter.step_lrs[step]})

    def _log_steps(self, first_step: int, losses: list[float], lrs: list[float]) -> None:
        for i, (loss, lr) in enumerate(zip(losses, lrs)):
            self.buffer.add(first_step + i, {"train_loss_step": loss, "lr_step": lr})

    def _params(self, trial: optuna.Trial, trial_cfg: DictConfig) -> dict[str, Any]:
        """Optuna's params as drawn, plus the full trial config as applied (``train.lr``, ...)."""
        applied = flatten(OmegaConf.to_container(trial_cfg, resolve=True))
        keep = {k: v for k, v in applied.items() if k.split(".", 1)[0] in ("train", "objective")}
        return {**trial.params, **keep}

    def _end(
        self, trial: optuna.Trial, run_id: str, outcome: Outcome, tags: dict[str, str], error_text: str | None = None, metrics: dict[str, float] | None = None
    ) -> None:
        trial.set_user_attr(OUTCOME_ATTR, outcome.value)
        trial.set_user_attr("epochs", self.reporter.last_epoch)
        if "sweeps.error" in tags:
            trial.set_user_attr("error", tags["sweeps.error"])
        if error_text:
            self.tracker.log_text(run_id, error_text, "error.txt")
        self.tracker.end_trial(run_id, outcome, tags, metrics, pending=self.buffer.take())


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:500]
