"""Shared by the tracking tests and their conftest: the repo root, the training tests' dataset writer and a
handle on a test's tracking store. (A plain module: test files cannot import a conftest.)"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

REPO = Path(__file__).resolve().parents[2]

# The training tests' dataset writer (users with cluster tastes, leave-one-out split), loaded by path:
# every test folder's conftest is a module named `conftest`.
_spec = importlib.util.spec_from_file_location("gatrec_train_fixtures", REPO / "tests" / "train" / "conftest.py")
_train_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_train_fixtures)
write_prepared = _train_fixtures.write_prepared


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
