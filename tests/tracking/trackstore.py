"""Shared by the tracking tests and their conftest: the repo root, the test kit's dataset writer and a
handle on a test's tracking store. (A plain module: test files cannot import a conftest.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.kit import write_prepared  # noqa: F401  (re-exported for the tracking tests)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

REPO = Path(__file__).resolve().parents[2]

@dataclass
class Store:
    uri: str
    root: Path

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str = "gatrec") -> list[Run]:
        """The runs of ``experiment``, newest first."""
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        return [] if exp is None else client.search_runs([exp.experiment_id])
