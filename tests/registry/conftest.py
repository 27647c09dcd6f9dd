"""Fixtures for the model lifecycle tests: synthetic run folders (tests/kit.py) and an embedded SQLite
tracking store; the PostgreSQL cluster and the real ``mlflow server`` come from tests/servers.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kit import make_run_dir


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """``make_run(ndcg=0.3, recall=0.4, digest="d1", split="user-temporal", seed=0)`` -> RUNDIR."""

    def factory(root: Path | None = None, **kwargs) -> Path:
        return make_run_dir(root or tmp_path, **kwargs)

    return factory


@pytest.fixture(scope="session")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An embedded SQLite tracking store shared by the session (tests use distinct model names)."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-sqlite")
    uri = f"sqlite:///{root}/mlflow.db"
    # Give the experiments we log models into an artifact root inside the temp folder
    # (the default, ./mlruns, would be relative to wherever the test runs).
    MlflowClient(uri).create_experiment("gatrec", artifact_location=(root / "artifacts").as_uri())
    return uri


@pytest.fixture
def model_name() -> str:
    return f"gatrec-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def use_tracking(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Point this process (and CLI subprocesses started with os.environ) at a tracking URI."""
    import mlflow

    def use(uri: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mlflow.set_tracking_uri(uri)

    yield use
    mlflow.set_tracking_uri(None)
