"""Suite-wide settings: CLI steps do not log to MLflow unless a test asks for it (the tracking tests
unset GATREC_NO_MLFLOW and point MLFLOW_TRACKING_URI at a store in their tmp_path), so no test writes
into MLflow's default store in the current folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_default_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATREC_NO_MLFLOW", "1")
