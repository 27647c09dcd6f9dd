"""The gatrec recommender as an MLflow pyfunc, logged as "models from code" (no pickle).

MLflow copies this file into the logged model and executes it at load time, so it must stay
self-contained and import-light (numpy, pandas, mlflow only: no torch, no gatrec imports) for
``mlflow models serve`` to start fast in any environment. Everything the model needs ships as
plain artifacts in one folder (``context.artifacts["model"]``):

    item_embeddings.npy, user_embeddings.npy   float32, scores are user_emb @ item_emb.T (+ bias)
    item_bias.npy (optional)                   float32 [n_items]
    user_ids.json, item_ids.json               original ids, index = internal id
    seen.npz                                   CSR of training items per user (indptr, indices)
    popularity.npy                             training interaction count per item
    model.json                                 model type, dim, data digest, ...

Input rows carry ``user_id`` (original id) and/or ``history`` (original item ids) and ``k``
(default 10). Known users are scored with their embedding; unknown users with the mean embedding
of their known history items; with neither, items are ranked by training popularity. The user's
training items and the given history are never recommended.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULT_K = 10
SEEN_FILE = "seen.npz"
POPULARITY_FILE = "popularity.npy"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and value == ""


class GatrecRecommender(PythonModel):
    """Top-K recommendation from exported embeddings; see the module docstring for the contract."""

    def load_context(self, context: Any) -> None:
        folder = context.artifacts["model"]
        self.load_folder(folder)

    def load_folder(self, folder: str | os.PathLike) -> None:
        path = os.fspath(folder)

        def _json(name: str) -> Any:
            with open(os.path.join(path, name), encoding="utf-8") as fh:
                return json.load(fh)

        self.item_emb = np.load(os.path.join(path, "item_embeddings.npy")).astype(np.float32, copy=False)
        self.user_emb = np.load(os.path.join(path, "user_embeddings.npy")).astype(np.float32, copy=False)
        bias_path = os.path.join(path, "item_bias.npy")
        self.item_bias = np.load(bias_path).astype(np.float32) if os.path.exists(bias_path) else None
        self.meta = _json("model.json")
        self.user_ids = [str(u) for u in _json("user_ids.json")]
        self.item_ids = np.asarray([str(i) for i in _json("item_ids.json")], dtype=object)
        self.user_index = {u: n for n, u in enumerate(self.user_ids)}
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        with np.load(os.path.join(path, SEEN_FILE)) as seen:
            self.seen_indptr, self.seen_indices = seen["indptr"], seen["indices"]
        self.popularity = np.load(os.path.join(path, POPULARITY_FILE)).astype(np.float64)

    def _rows(self, frame: pd.DataFrame) -> list[tuple[np.ndarray | None, list[int], int, str]]:
        """Per row: (query vector or None for popularity, excluded item indices, k, source)."""
        out = []
        n_items = len(self.item_ids)
        for row in frame.to_dict("records"):
            user = row.get("user_id")
            history = row.get("history")
            history = [] if history is None or (np.ndim(history) == 0 and _is_missing(history)) else list(history)
            hist_idx = [self.item_index[str(i)] for i in history if str(i) in self.item_index]
            k = row.get("k")
            k = DEFAULT_K if _is_missing(k) else int(k)
            if k < 1:
                raise ValueError(f"k must be >= 1, got {k}")
            k = min(k, n_items)
            uidx = None if _is_missing(user) else self.user_index.get(str(user))
            if uidx is not None:
                seen = self.seen_indices[self.seen_indptr[uidx]:self.seen_indptr[uidx + 1]]
                out.append((self.user_emb[uidx], [*seen.tolist(), *hist_idx], k, "user"))
            elif hist_idx:
                out.append((self.item_emb[hist_idx].mean(axis=0), hist_idx, k, "history"))
            else:
                out.append((None, hist_idx, k, "popularity"))
        return out

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if "user_id" not in frame.columns and "history" not in frame.columns:
            raise ValueError("input needs a 'user_id' and/or a 'history' column")
        rows = self._rows(frame)
        results: list[dict[str, Any]] = []
        for vec, excluded, k, source in rows:
            if vec is None:
                scores = self.popularity.copy()
            else:
                scores = (self.item_emb @ vec).astype(np.float64)
                if self.item_bias is not None:
                    scores += self.item_bias
            if excluded:
                scores[np.asarray(excluded, dtype=np.int64)] = -np.inf
            k = min(k, int(np.isfinite(scores).sum()))
            # A stable full sort (cheap at catalogue sizes) breaks ties by lower item index, so
            # results are deterministic even for popularity scores full of ties.
            top = np.argsort(-scores, kind="stable")[:k]
            results.append({"item_ids": self.item_ids[top].tolist(), "scores": scores[top].tolist(),
                            "source": source})
        return pd.DataFrame(results, columns=["item_ids", "scores", "source"])


# MLflow executes this file under a generated module name when it loads the logged model
# ("models from code"); only then register the model object, not on a normal package import.
if not __name__.startswith("gatrec."):
    import mlflow.models

    mlflow.models.set_model(GatrecRecommender())
