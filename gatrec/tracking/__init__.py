"""Experiment tracking. The training loop reports through the small ``Tracker`` protocol, so it never
imports MLflow itself (``gatrec.tracking.mlflow_log.MlflowTracker`` is the implementation)."""

from __future__ import annotations

from typing import Protocol


class Tracker(Protocol):
    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Per-epoch values (loss, validation metric, seconds), with the epoch as the step."""


def metric_key(name: str) -> str:
    """MLflow metric names allow only [/\\w.\\- :]: ``ndcg@20`` becomes ``ndcg_at_20``."""
    return name.replace("@", "_at_")
