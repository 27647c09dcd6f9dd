"""MLflow runs for the gatrec steps: params, per-epoch and final metrics, system metrics, dataset inputs,
artifacts and provenance tags.

MLflow's own defaults apply: ``MLFLOW_TRACKING_URI`` (unset: MLflow's default, ``sqlite:///mlflow.db`` in
the working directory with artifacts under ``./mlruns``), and inside ``mlflow run`` (``MLFLOW_RUN_ID``
set) the first run opened goes into that run. A training run folder remembers its MLflow run in
``RUNDIR/mlflow_run_id``, so a killed training started again with the same ``--out`` continues the same
MLflow run.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatrec import log as glog
from gatrec.errors import GatrecError
from gatrec.tracking import metric_key
from gatrec.tracking.connection import check_reachable
from gatrec.tracking.context import code_tags, redact_uri, system_metrics_wanted

log = glog.get(__name__)

DEFAULT_EXPERIMENT = "gatrec"


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model_params": {"dim": 64}}`` → ``{"model_params.dim": 64}``."""
    out: dict[str, Any] = {}
    for key, val in d.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping):
            out.update(flatten(val, f"{name}."))
        else:
            out[name] = val
    return out


def param_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened config with lists as ``a,b,c`` (MLflow params are strings)."""
    return {k: (",".join(map(str, v)) if isinstance(v, list | tuple) else v) for k, v in flatten(config).items()}


@contextlib.contextmanager
def tracking_errors(hint: str = "use --no-mlflow to run without it") -> Iterator[None]:
    """Turn MLflow's own exceptions (store unreachable, bad URI, ...) into a GatrecError the CLI prints."""
    try:
        yield
    except GatrecError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("mlflow"):
            raise GatrecError(f"MLflow: {getattr(exc, 'message', exc)} ({hint})") from exc
        raise


def get_or_create_experiment(client: Any, name: str, tags: Mapping[str, str] | None = None) -> str:
    """The id of experiment ``name``, created (with ``tags``) if missing; safe when another process creates
    it at the same moment."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name, tags=dict(tags) if tags else None)
    except MlflowException as exc:  # another process created it first
        if (exp := client.get_experiment_by_name(name)) is None:
            raise exc from None
        return exp.experiment_id


class MlflowTracker:
    """One MLflow run, as a context manager; the run ends FAILED (KILLED on Ctrl-C) if the block raises.

    Which run: inside ``mlflow run`` the run it made; else ``run_id``; else, when ``resume``, the run
    recorded in ``run_dir`` if the tracking store still has it; else a new run in ``experiment``.
    """

    def __init__(self, experiment: str | None = None, run_name: str | None = None,
                 tags: Mapping[str, str] | None = None, *, run_id: str | None = None,
                 run_dir: str | Path | None = None, resume: bool = True):
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.run_name, self.tags = run_name, {**code_tags(), **(tags or {})}
        from gatrec.train.export import RunFolder

        self.requested_run_id, self.resume = run_id, resume
        self.run_dir = RunFolder(Path(run_dir)) if run_dir is not None else None
        self.run_id: str | None = None
        self.resumed = False  # reopened an existing run
        self.foreign = False  # ... one given by ``run_id``, of another step: its tags and params are left alone

    def _existing_run(self) -> str | None:
        """The id of the run to reopen, or None for a new one."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        # mlflow's own start_run consumes MLFLOW_RUN_ID the same way: only the first run uses it.
        if run_id := os.environ.pop("MLFLOW_RUN_ID", None):
            return run_id
        if self.requested_run_id:
            return self.requested_run_id  # an unknown id fails loudly in start_run
        run_id = self.run_dir.mlflow_run_id() if self.run_dir is not None and self.resume else None
        if run_id is None:
            return None
        try:
            run = MlflowClient().get_run(run_id)
        except MlflowException:
            log.warning("the run folder's MLflow run is not in this tracking store; starting a new run",
                        run_dir=str(self.run_dir.path), run_id=run_id)
            return None
        if run.info.lifecycle_stage == "deleted":
            log.warning("the run folder's MLflow run was deleted; starting a new run", run_id=run_id)
            return None
        return run_id

    def __enter__(self) -> MlflowTracker:
        import mlflow

        check_reachable()  # seconds, not MLflow's minutes of retries, when the server is down
        system = system_metrics_wanted()
        nested = mlflow.active_run() is not None  # called from code that has a run open: a child run
        if run_id := self._existing_run():
            self.resumed, self.foreign = True, run_id == self.requested_run_id
            # Point the fluent API at the run's own experiment: start_run refuses a run of another one.
            mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
            run = mlflow.start_run(run_id=run_id, tags=None if self.foreign else self.tags, nested=nested,
                                   log_system_metrics=False if self.foreign else system)
        else:
            mlflow.set_experiment(self.experiment)
            run = mlflow.start_run(run_name=self.run_name, tags=self.tags, nested=nested,
                                   log_system_metrics=system)
        self.run_id = run.info.run_id
        if self.run_dir is not None:
            self.run_dir.record_mlflow_run(self.run_id)
        log.info("mlflow run", run_id=self.run_id, resumed=self.resumed,
                 tracking_uri=redact_uri(mlflow.get_tracking_uri()))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        import mlflow

        status = "FINISHED" if exc_type is None else "KILLED" if exc_type is KeyboardInterrupt else "FAILED"
        mlflow.end_run(status=status)

    # ------------------------------------------------------------------ generic logging

    def log_params(self, config: Mapping[str, Any]) -> None:
        """Flattened ``config``. In a reopened run (a resume; ``mlflow run``, which logs its -P parameters)
        keys already there are kept: MLflow refuses to change a param."""
        import mlflow

        values = param_values(config)
        if self.resumed:
            have = mlflow.MlflowClient().get_run(self.run_id).data.params
            if changed := sorted(k for k in values if k in have and have[k] != str(values[k])):
                log.warning("params already logged with other values are kept", run_id=self.run_id,
                            params={k: (have[k], values[k]) for k in changed})
            values = {k: v for k, v in values.items() if k not in have}
        if values:
            mlflow.log_params(values)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numbers only (bools and None are skipped); names pass through :func:`metric_key`."""
        import mlflow

        values = {metric_key(k): float(v) for k, v in metrics.items()
                  if isinstance(v, int | float) and not isinstance(v, bool)}
        if values:
            mlflow.log_metrics(values, step=step)

    def log_file(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path or path.name)
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path)

    # ------------------------------------------------------------------ training

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self.log_metrics(metrics, step=epoch)

    def log_dataset(self, ds: Any) -> None:
        """The train/valid/test splits of a :class:`gatrec.data.dataset.Dataset` as run inputs."""
        from gatrec.tracking.datasets import log_splits

        log_splits({s: ds.split(s) for s in ("train", "valid", "test")}, ds.path, ds.digest)

    def _logged(self, key: str) -> dict[int, float]:
        from mlflow import MlflowClient

        return {m.step: m.value for m in MlflowClient().get_metric_history(self.run_id, key)}

    def _log_once(self, metrics: Mapping[str, float], step: int) -> None:
        """Log the values not already logged at ``step``: a resumed or rerun training adds no duplicates."""
        from mlflow import MlflowClient

        present = MlflowClient().get_run(self.run_id).data.metrics
        fresh = {k: v for k, v in metrics.items() if k not in present or self._logged(k).get(step) != v}
        self.log_metrics(fresh, step=step)

    def log_result(self, result: dict[str, Any], run_dir: str | Path) -> None:
        """Final ``valid_*``/``test_*`` metrics, best epoch and speed; any epoch a kill kept from MLflow;
        ``mlflow_run_id`` into metrics.json; metrics.json, config.yaml, model/ and the plots as artifacts."""
        import mlflow

        from gatrec.train.export import RunFolder

        run = RunFolder(Path(run_dir))
        history = result.get("history") or []
        logged = set(self._logged("loss")) if history else set()
        for entry in history:  # checkpointed, then killed before it reached MLflow
            if entry["epoch"] not in logged:
                self.log_epoch(entry["epoch"], {k: v for k, v in entry.items() if k != "epoch"})
        final = {f"{split}_{metric_key(k)}": float(v)
                 for split in ("valid", "test") for k, v in (result.get(split) or {}).items()}
        final.update(best_epoch=float(result["best_epoch"]), epochs_run=float(result["epochs_run"]),
                     seconds_per_epoch=float(result["seconds_per_epoch"] or 0.0))
        # At the best epoch's step, so valid_* lies on the per-epoch curve of the same name.
        self._log_once(final, step=int(result["best_epoch"]))

        result.update(mlflow_run_id=self.run_id, mlflow_tracking_uri=redact_uri(mlflow.get_tracking_uri()))
        run.record_mlflow_run(self.run_id, result["mlflow_tracking_uri"])
        for path in (run.metrics_file, run.config_file, run.model_dir):
            self.log_file(path)
        self._log_plots(result)

    def _log_plots(self, result: Mapping[str, Any]) -> None:
        import mlflow

        from gatrec.tracking import plots

        metric = (result.get("config") or {}).get("metric", "ndcg@20")
        with tempfile.TemporaryDirectory(prefix="gatrec-plots-") as tmp:
            if result.get("history"):
                plots.training_curve(result["history"], metric, Path(tmp) / "training_curve.png",
                                     best_epoch=result.get("best_epoch"))
            plots.metrics_at_k({s: result.get(s) or {} for s in ("valid", "test")}, Path(tmp) / "metrics_at_k.png")
            mlflow.log_artifacts(tmp, "plots")
