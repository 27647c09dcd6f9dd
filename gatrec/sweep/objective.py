"""One trial: suggest settings from the space, run the real training loop, report each validation epoch.

The loop only knows the ``Tracker`` protocol; :class:`TrialTracker` is the one that reports to Optuna and
raises ``optuna.TrialPruned`` when the pruner says so (as Optuna's own PyTorch examples prune inside the
training loop). A trial retried after its worker died (heartbeat) trains in the original trial's run folder,
so it resumes from that trial's last checkpoint.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from gatrec import log as glog
from gatrec.data.dataset import Dataset
from gatrec.sweep.spec import SearchSpace
from gatrec.tracking import Tracker

log = glog.get(__name__)

# Trial attributes (user attrs) the sweep reads back: where a trial's model lives.
RUN_ID_ATTR, RUN_DIR_ATTR = "mlflow_run_id", "run_dir"
STATE_TAG = "optuna.state"


class TrialTracker:
    """A ``Tracker`` for one trial: forwards every epoch to ``inner`` (the trial's MLflow run), reports the
    validation ``metric`` to the Optuna trial and stops the loop with ``TrialPruned`` when told to."""

    def __init__(self, trial: optuna.Trial, metric: str, inner: Tracker | None = None):
        self.trial, self.metric, self.inner = trial, metric, inner
        self.curve: list[tuple[int, float]] = []

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.inner is not None:
            self.inner.log_epoch(epoch, metrics)
        value = metrics.get(f"valid_{self.metric}")
        if value is None:  # not an evaluation epoch
            return
        self.curve.append((epoch, float(value)))
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: valid {self.metric} {value:.5f}")


@dataclass
class Objective:
    """``objective(trial) -> best validation metric`` of a training with the trial's settings."""

    data: Dataset
    space: SearchSpace
    out: Path  # the sweep folder: trial run folders go to out/trials/
    overrides: dict[str, Any] = field(default_factory=dict)  # command-line settings (epochs, seed)
    parent_run_id: str | None = None  # the sweep's MLflow run; None = no MLflow
    experiment: str | None = None
    threads: int | None = None
    keep_checkpoints: bool = False

    def run_dir(self, trial: optuna.Trial, frozen: optuna.trial.FrozenTrial) -> Path:
        """A retried trial (heartbeat) reuses its first attempt's folder, so it resumes from its checkpoint."""
        number = frozen.system_attrs.get("failed_trial", trial.number)
        return self.out / "trials" / f"trial-{number:04d}"

    def __call__(self, trial: optuna.Trial) -> float:
        from gatrec.train.loop import train

        # The retry callback's marks (system attrs) are only readable from the stored trial.
        frozen = trial.study._storage.get_trial(trial._trial_id)
        values = self.space.suggest(trial)
        config = self.space.config(values, self.overrides)
        run_dir = self.run_dir(trial, frozen)
        trial.set_user_attr(RUN_DIR_ATTR, str(run_dir.resolve()))
        retry = "failed_trial" in frozen.system_attrs
        log.info("trial", number=trial.number, retry_of=frozen.system_attrs.get("failed_trial"), **values)
        try:
            if self.parent_run_id is None:
                result = train(self.data, config, run_dir, tracker=TrialTracker(trial, config.metric),
                               threads=self.threads, overwrite=not retry)
            else:
                result = self._tracked(trial, frozen, config, values, run_dir, retry)
        except optuna.TrialPruned:
            self._drop_checkpoints(run_dir)
            raise
        self._drop_checkpoints(run_dir)
        for split in ("valid", "test"):
            trial.set_user_attr(f"{split}_metrics", result[split])
        trial.set_user_attr("best_epoch", result["best_epoch"])
        return float(result["valid"][config.metric])

    def _drop_checkpoints(self, run_dir: Path) -> None:
        """A finished or pruned trial needs no checkpoint (a failed one keeps it: its retry resumes)."""
        if not self.keep_checkpoints:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)

    def _tracked(self, trial: optuna.Trial, frozen: optuna.trial.FrozenTrial, config: Any,
                 values: dict[str, Any], run_dir: Path, retry: bool) -> dict[str, Any]:
        """Train inside a child run of the sweep's run; its tag ``optuna.state`` says how the trial ended."""
        from mlflow import MlflowClient

        from gatrec.tracking.context import training_tags
        from gatrec.tracking.mlflow_log import MlflowTracker
        from gatrec.train.loop import train

        if dead := frozen.user_attrs.get(RUN_ID_ATTR):  # the attempt whose worker died: close its run
            run = MlflowClient().get_run(dead)
            if run.info.status == "RUNNING":
                MlflowClient().set_terminated(dead, "FAILED")
                MlflowClient().set_tag(dead, STATE_TAG, "FAIL")
        cfg = config.model_dump(mode="json")
        tags = {"mlflow.parentRunId": self.parent_run_id, "optuna.study": trial.study.study_name,
                "optuna.trial_number": str(trial.number), "sweep.worker": f"{socket.gethostname()}:{os.getpid()}",
                **training_tags(cfg, self.data.manifest, self.data.path, run_dir)}
        if (first := frozen.system_attrs.get("failed_trial")) is not None:
            tags["optuna.retry_of"] = str(first)
        # A fresh MLflow run per attempt (the folder's checkpoint resumes, the run does not): one run per trial.
        with MlflowTracker(self.experiment, run_name=f"trial-{trial.number:04d}", tags=tags,
                           resume=False) as tracker:
            trial.set_user_attr(RUN_ID_ATTR, tracker.run_id)
            tracker.log_params({**cfg, **{f"trial.{k}": v for k, v in values.items()}})
            pruned: optuna.TrialPruned | None = None
            try:
                result = train(self.data, config, run_dir, tracker=TrialTracker(trial, config.metric, tracker),
                               threads=self.threads, overwrite=not retry)
            except optuna.TrialPruned as exc:
                # The run itself ends normally (FINISHED): its per-epoch metrics are the partial curve.
                tracker.set_tags({STATE_TAG: "PRUNED"})
                pruned = exc
            except BaseException:
                tracker.set_tags({STATE_TAG: "FAIL"})
                raise
            else:
                tracker.log_result(result, run_dir)
                tracker.set_tags({STATE_TAG: "COMPLETE"})
        if pruned is not None:
            raise pruned
        return result
