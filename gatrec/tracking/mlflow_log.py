"""Minimal MLflow logging of a training run: params, per-epoch metrics, final metrics and artifacts.

MLflow's own defaults apply: ``MLFLOW_TRACKING_URI`` (or MLflow's default store when unset), and inside
``mlflow run`` (``MLFLOW_RUN_ID`` set) everything goes into that run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gatrec import log as glog
from gatrec.tracking import metric_key

log = glog.get(__name__)

DEFAULT_EXPERIMENT = "gatrec"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model_params": {"dim": 64}}`` → ``{"model_params.dim": 64}``; lists become strings."""
    out: dict[str, Any] = {}
    for key, val in d.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping):
            out.update(flatten(val, f"{name}."))
        else:
            out[name] = val
    return out


class MlflowTracker:
    """Use as a context manager around training; the run ends FAILED if the block raises."""

    def __init__(self, experiment: str | None = None, run_name: str | None = None,
                 tags: Mapping[str, str] | None = None):
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.run_name, self.tags = run_name, dict(tags or {})
        self.run_id: str | None = None

    def __enter__(self) -> MlflowTracker:
        import mlflow

        if not os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run` the run (and experiment) exist
            mlflow.set_experiment(self.experiment)
        run = mlflow.start_run(run_name=self.run_name, tags=self.tags or None)
        self.run_id = run.info.run_id
        log.info("mlflow run", run_id=self.run_id, tracking_uri=mlflow.get_tracking_uri())
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import mlflow

        mlflow.end_run(status="FINISHED" if exc_type is None else "FAILED")

    def log_params(self, config: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: (",".join(map(str, v)) if isinstance(v, list) else v)
                           for k, v in flatten(config).items()})

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics({metric_key(k): float(v) for k, v in metrics.items() if v is not None}, step=epoch)

    def log_result(self, result: Mapping[str, Any], run_dir: str | Path) -> None:
        """Final ``valid_*``/``test_*`` metrics, best epoch and speed; metrics.json + config.yaml as artifacts."""
        import mlflow

        final = {f"{split}_{metric_key(k)}": float(v)
                 for split in ("valid", "test") for k, v in (result.get(split) or {}).items()}
        final.update(best_epoch=float(result["best_epoch"]), epochs_run=float(result["epochs_run"]),
                     seconds_per_epoch=float(result["seconds_per_epoch"] or 0.0))
        # At the best epoch's step, so valid_* lies on the per-epoch curve of the same name.
        mlflow.log_metrics(final, step=int(result["best_epoch"]))
        run_dir = Path(run_dir)
        for name in ("metrics.json", "config.yaml"):
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name))
