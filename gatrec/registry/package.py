"""Read a training run folder and assemble the pickle-free artifact folder of the pyfunc model."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema

import gatrec.log
from gatrec.data.dataset import Dataset
from gatrec.errors import DataError
from gatrec.registry import baseline
from gatrec.registry.pyfunc import POPULARITY_FILE, SEEN_FILE

log = gatrec.log.get(__name__)

MODEL_FILES = ("user_embeddings.npy", "item_embeddings.npy", "model.json", "user_ids.json", "item_ids.json")
OPTIONAL_FILES = ("item_bias.npy",)

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "user_id", required=False),
                   ColSpec(Array("string"), "history", required=False),
                   ColSpec("long", "k", required=False)]),
    outputs=Schema([ColSpec(Array("string"), "item_ids"), ColSpec(Array("double"), "scores"),
                    ColSpec("string", "source")]),
)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError("missing from the run folder", file=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=path, line=exc.lineno) from None


@dataclass
class TrainedRun:
    """A ``gatrec train`` run folder: metrics.json plus the exported ``model/``."""

    path: Path
    metrics: dict[str, Any]
    model_meta: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> TrainedRun:
        path = Path(path)
        metrics = _read_json(path / "metrics.json")
        mfile = path / "metrics.json"
        for split in ("valid", "test"):
            if not isinstance(metrics.get(split), dict):
                raise DataError("expected a mapping of metric name to value", file=mfile, field=split)
        for name in MODEL_FILES:
            if not (path / "model" / name).is_file():
                raise DataError("missing from the exported model", file=path / "model" / name)
        return cls(path=path, metrics=metrics, model_meta=_read_json(path / "model" / "model.json"))

    def _data(self, key: str, meta_key: str) -> Any:
        value = (self.metrics.get("data") or {}).get(key)
        return value if value not in (None, "") else self.model_meta.get(meta_key)

    @property
    def data_digest(self) -> str | None:
        return self._data("digest", "data_digest")

    @property
    def split_protocol(self) -> str | None:
        return self._data("split_protocol", "split_protocol")

    @property
    def model_type(self) -> str:
        return str(self.model_meta.get("model") or self.metrics.get("model") or "unknown")

    def dataset(self) -> Dataset:
        raw = self._data("path", "data_path")
        if not raw:
            raise DataError("no prepared-data path recorded", file=self.path / "metrics.json", field="data.path")
        candidates = [Path(raw), self.path / raw]
        found = next((p for p in candidates if (p / "manifest.json").is_file()), None)
        if found is None:
            raise DataError(f"prepared data {raw!r} not found (needed for the seen items and the "
                            "popularity baseline)", file=self.path / "metrics.json", field="data.path")
        data = Dataset.load(found)
        if self.data_digest and data.digest != self.data_digest:
            raise DataError(f"prepared data at {found} has digest {data.digest}, the run was trained on "
                            f"{self.data_digest}", file=self.path / "metrics.json", field="data.digest")
        return data

    def metric_values(self, split: str) -> dict[str, float]:
        return {k: float(v) for k, v in self.metrics[split].items()
                if isinstance(v, int | float) and not isinstance(v, bool)}


def pop_baseline(run: TrainedRun, data: Dataset) -> dict[str, dict[str, float]]:
    """Popularity metrics on the run's splits: recorded with the run if present, else computed."""
    recorded = (run.metrics.get("baseline") or {}).get("pop")
    if isinstance(recorded, dict) and all(isinstance(recorded.get(s), dict) for s in ("valid", "test")):
        return {s: {k: float(v) for k, v in recorded[s].items()} for s in ("valid", "test")}
    names = sorted({*run.metric_values("valid"), *run.metric_values("test")})
    log.info("computing the popularity baseline", data=str(data.path), metrics=",".join(names))
    return baseline.popularity_metrics(data, names)


def build_artifacts(run: TrainedRun, data: Dataset, out: Path) -> None:
    """Fill ``out`` with everything GatrecRecommender.load_folder reads, checking shapes on the way."""
    src = run.path / "model"
    out.mkdir(parents=True, exist_ok=True)
    users = np.load(src / "user_embeddings.npy", mmap_mode="r")
    items = np.load(src / "item_embeddings.npy", mmap_mode="r")
    user_ids = _read_json(src / "user_ids.json")
    item_ids = _read_json(src / "item_ids.json")
    checks = [(users.ndim == 2 and users.shape[0] == len(user_ids), "user_embeddings.npy",
               f"shape {users.shape} does not match {len(user_ids)} user ids"),
              (items.ndim == 2 and items.shape[0] == len(item_ids), "item_embeddings.npy",
               f"shape {items.shape} does not match {len(item_ids)} item ids"),
              (users.shape[-1] == items.shape[-1], "user_embeddings.npy", "dimension differs from the items'"),
              (len(user_ids) == data.n_users and len(item_ids) == data.n_items, "model.json",
               f"{len(user_ids)} users x {len(item_ids)} items, prepared data has "
               f"{data.n_users} x {data.n_items}")]
    for ok, name, msg in checks:
        if not ok:
            raise DataError(msg, file=src / name)
    for name in (*MODEL_FILES, *OPTIONAL_FILES):
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    seen = data.csr("train")
    np.savez(out / SEEN_FILE, indptr=seen.indptr.astype(np.int64), indices=seen.indices.astype(np.int32))
    np.save(out / POPULARITY_FILE, data.item_popularity.astype(np.float32))


def input_example(run: TrainedRun) -> pd.DataFrame:
    user_ids = _read_json(run.path / "model" / "user_ids.json")
    item_ids = _read_json(run.path / "model" / "item_ids.json")
    return pd.DataFrame({"user_id": [str(user_ids[0])], "history": [[str(i) for i in item_ids[:2]]],
                         "k": [10]})
