"""Log a trained run as a pickle-free pyfunc and create a registry version aliased ``candidate``."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

import gatrec.log
from gatrec.errors import DataError, GatrecError
from gatrec.registry import pyfunc
from gatrec.registry.gate import BASELINE_PREFIX, metric_tag
from gatrec.registry.names import CANDIDATE_ALIAS, model_name
from gatrec.registry.package import SIGNATURE, build_artifacts, input_example, load_run, pop_baseline
from gatrec.tracking import metric_key
from gatrec.tracking.mlflow_log import get_or_create_experiment
from gatrec.train.export import RunFolder

log = gatrec.log.get(__name__)

REGISTER_EXPERIMENT = "gatrec"
PYFUNC_FILE = Path(pyfunc.__file__).resolve()
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def _fetch_run(client: MlflowClient, run_id: str, dest: Path) -> Path:
    """Download metrics.json and model/ logged by a training run (the RUNDIR layout)."""
    try:
        client.get_run(run_id)
        for path in ("metrics.json", "model"):
            client.download_artifacts(run_id, path, str(dest))
    except MlflowException as exc:
        raise GatrecError(f"cannot fetch metrics.json and model/ of MLflow run {run_id}: {exc.message}") from None
    return dest


def _tracking_run(client: MlflowClient, run_id: str | None) -> str | None:
    """The training run to log into, if the current tracking server knows it."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id).info.run_id
    except MlflowException:
        log.warning("training run not found on this tracking server; logging into a new run", run_id=run_id)
        return None


def _experiment_id(client: MlflowClient) -> str:
    return get_or_create_experiment(client, os.environ.get("MLFLOW_EXPERIMENT_NAME") or REGISTER_EXPERIMENT)


def _run(client: MlflowClient, run_id: str | None, model_type: str) -> contextlib.AbstractContextManager:
    """The MLflow run to log into; reuses it if the caller (e.g. ``train --register``) has it active."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        return contextlib.nullcontext(active)
    if run_id:
        return mlflow.start_run(run_id=run_id, nested=active is not None)
    return mlflow.start_run(experiment_id=_experiment_id(client), run_name=f"register-{model_type}",
                            nested=active is not None)


def version_tags(run: RunFolder, pop: dict[str, dict[str, float]]) -> dict[str, str]:
    tags = {"validation_status": "pending", "model_type": run.model_type,
            "data_digest": str(run.data_record("digest") or ""),
            "split_protocol": str(run.data_record("split_protocol") or "")}
    metrics = run.metrics()
    for split in ("valid", "test"):
        for metric, value in run.metric_values(split).items():
            tags[metric_tag(split, metric)] = repr(value)
        for metric, value in pop.get(split, {}).items():
            tags[metric_tag(split, metric, BASELINE_PREFIX)] = repr(value)
    for key in ("best_epoch", "epochs_run"):
        if key in metrics:
            tags[key] = str(metrics[key])
    data = metrics.get("data") or {}
    for key in ("path", "n_users", "n_items"):
        if key in data:
            tags[f"data_{key}"] = str(data[key])
    return tags


def register_run(run_dir_or_id: str | Path, name: str | None = None, *,
                 client: MlflowClient | None = None) -> ModelVersion:
    """Log the run's model as a pyfunc and register it as a new ``candidate`` version of ``name``."""
    client = client or MlflowClient()
    name = model_name(name)
    with tempfile.TemporaryDirectory(prefix="gatrec-register-") as tmp:
        source = str(run_dir_or_id)
        if Path(source).is_dir():
            run = load_run(source)
            run_id = _tracking_run(client, run.metrics().get("mlflow_run_id"))
        elif _RUN_ID.match(source):
            run = load_run(_fetch_run(client, source, Path(tmp) / "run"))
            run_id = source
        else:
            raise DataError("neither a run folder nor an MLflow run id", file=source)
        data = run.dataset()
        pop = pop_baseline(run, data)
        artifacts = Path(tmp) / "model"  # its name becomes the folder inside the logged model
        build_artifacts(run, data, artifacts)
        tags = version_tags(run, pop)
        with _run(client, run_id, run.model_type) as active:
            if not run_id:  # a fresh run: give it the metrics the version is judged on
                mlflow.log_metrics({f"{s}.{metric_key(m)}": v for s in ("valid", "test")
                                    for m, v in run.metric_values(s).items()})
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_FILE), artifacts={"model": str(artifacts)},
                signature=SIGNATURE, input_example=input_example(run), code_paths=pyfunc.code_paths(Path(tmp)),
                pip_requirements=[f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}",
                                  f"pandas=={pd.__version__}"])
            run_id = active.info.run_id
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CANDIDATE_ALIAS, version.version)
    log.info("registered", name=name, version=version.version, run_id=run_id, model=run.model_type,
             alias=CANDIDATE_ALIAS)
    return client.get_model_version(name, version.version)
