"""The gatrec recommender as an MLflow pyfunc, logged as "models from code" (no pickle).

MLflow copies this file into the logged model and executes it at load time, so it must stay
self-contained and import-light (numpy, pandas, mlflow only: no torch, no gatrec imports) for
``mlflow models serve`` to start fast in any environment. Everything the model needs ships as
plain artifacts in one folder (``context.artifacts["model"]``; the layout is in gatrec/serve/topk.py),
and the ranking itself is gatrec's one scorer, gatrec/serve/topk.py, which the logged model carries as
the module ``gatrec_topk`` (``code_paths``): the pyfunc and the BentoML service rank alike.

Input rows carry ``user_id`` (original id) and/or ``history`` (original item ids), ``k`` (default 10),
and optionally ``exclude_seen`` (default true) and ``exclude`` (item ids never to recommend). Known
users are scored with their embedding; unknown users with the mean embedding of their known history
items; with neither, items are ranked by training popularity. Unless ``exclude_seen`` is false, the
user's training items and the given history are never recommended.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULT_K = 10
SEEN_FILE = "seen.npz"
POPULARITY_FILE = "popularity.npy"
#: The scorer shipped with the logged model, under a name no installed package uses.
CODE_MODULE = "gatrec_topk"
TOPK_FILE = Path(__file__).resolve().parents[1] / "serve" / "topk.py"


def code_paths(folder: Path) -> list[str]:
    """Copy the scorer into ``folder`` as ``gatrec_topk.py``: the ``code_paths`` of ``log_model``."""
    target = folder / f"{CODE_MODULE}.py"
    shutil.copyfile(TOPK_FILE, target)
    return [str(target)]


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value == ""


def _ids(value: Any) -> list[str]:
    if value is None or (np.ndim(value) == 0 and _is_missing(value)):
        return []
    return [str(i) for i in value]


class GatrecRecommender(PythonModel):
    """Top-K recommendation from exported embeddings; see the module docstring for the contract."""

    def load_context(self, context: Any) -> None:
        import gatrec_topk  # on sys.path: MLflow adds the model's code_paths before loading this file

        self.topk = gatrec_topk
        self.catalogue = gatrec_topk.Catalogue(context.artifacts["model"])

    def _query(self, row: dict[str, Any]) -> Any:
        user, k, seen = row.get("user_id"), row.get("k"), row.get("exclude_seen")
        return self.topk.Query(user_id=None if _is_missing(user) else str(user), history=_ids(row.get("history")),
                               k=DEFAULT_K if _is_missing(k) else int(k),
                               exclude_seen=True if _is_missing(seen) else bool(seen),
                               exclude=_ids(row.get("exclude")))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "user_id" not in frame.columns and "history" not in frame.columns:
            raise ValueError("input needs a 'user_id' and/or a 'history' column")
        rankings = self.catalogue.recommend([self._query(row) for row in frame.to_dict("records")])
        return pd.DataFrame([{"item_ids": r.item_ids, "scores": r.scores, "source": r.source} for r in rankings],
                            columns=["item_ids", "scores", "source"])


# MLflow executes this file under a generated module name when it loads the logged model
# ("models from code"); only then register the model object, not on a normal package import.
if not __name__.startswith("gatrec."):
    import mlflow.models

    mlflow.models.set_model(GatrecRecommender())
