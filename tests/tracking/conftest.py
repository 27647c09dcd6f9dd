"""Fixtures for the tracking tests: a private SQLite tracking store per test (copied from one migrated
template, since MLflow's schema migrations take seconds), MLflow's process-wide state reset around each
test, and the tiny clustered dataset of the training tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from trackstore import Store, write_prepared

from gatrec.tracking.context import PACKAGE_DIR


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates + migrates the schema
    return db


def _reset_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    from mlflow.tracking import fluent

    while mlflow.active_run() is not None:
        mlflow.end_run()
    # set_experiment() stores the experiment in the environment and in a module global.
    for var in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    monkeypatch.setattr(fluent, "_active_experiment_id", None)


@pytest.fixture
def store(template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A fresh tracking store in ``tmp_path`` via MLFLOW_TRACKING_URI; artifacts go to tmp_path/mlruns."""
    root = tmp_path / "tracking"
    root.mkdir()
    shutil.copy(template_db, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")  # MLflow's default is 10 s
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    monkeypatch.delenv("GATREC_MODEL_NAME", raising=False)
    monkeypatch.delenv("GATREC_NO_MLFLOW", raising=False)
    monkeypatch.chdir(root)
    _reset_mlflow(monkeypatch)
    yield Store(uri, root)
    _reset_mlflow(monkeypatch)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared dataset (read-only for the tests)."""
    return write_prepared(tmp_path_factory.mktemp("tracking-data") / "data", n_users=60, n_items=40)


@pytest.fixture(scope="session")
def git_head() -> str | None:
    """The commit of this checkout, or None outside a git checkout."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
