"""What the training loop reports to: the small ``Tracker`` protocol, so that it never imports MLflow
(``gatrec.tracking.mlflow_log.MlflowTracker`` implements it; a sweep's trial tracker too)."""

from __future__ import annotations

from typing import Protocol


class Tracker(Protocol):
    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch values (loss, validation metric, seconds), with the epoch as the step."""
