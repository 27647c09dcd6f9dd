"""Experiment tracking. The training loop reports through the small ``Tracker`` protocol
(:mod:`gatrec.train.tracker`, re-exported here), so it never imports MLflow itself
(``gatrec.tracking.mlflow_log.MlflowTracker`` is the implementation)."""

from __future__ import annotations

from gatrec.train.tracker import Tracker

__all__ = ["Tracker", "metric_key", "metric_name"]


def metric_key(name: str) -> str:
    """MLflow metric names allow only [/\\w.\\- :]: ``ndcg@20`` becomes ``ndcg_at_20``."""
    return name.replace("@", "_at_")


def metric_name(key: str) -> str:
    """The inverse of :func:`metric_key`: ``ndcg_at_20`` -> ``ndcg@20``."""
    return key.replace("_at_", "@")
