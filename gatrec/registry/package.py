"""Read a training run folder and assemble the pickle-free artifact folder of the pyfunc model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema

import gatrec.log
from gatrec.data.dataset import Dataset
from gatrec.errors import DataError
from gatrec.registry import baseline
from gatrec.registry.pyfunc import POPULARITY_FILE, SEEN_FILE
from gatrec.train.export import EXPORT_FILES, RunFolder, read_json

log = gatrec.log.get(__name__)

OPTIONAL_FILES = ("item_bias.npy",)

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "user_id", required=False),
                   ColSpec(Array("string"), "history", required=False),
                   ColSpec("long", "k", required=False),
                   ColSpec("boolean", "exclude_seen", required=False),
                   ColSpec(Array("string"), "exclude", required=False)]),
    outputs=Schema([ColSpec(Array("string"), "item_ids"), ColSpec(Array("double"), "scores"),
                    ColSpec("string", "source")]),
)


def load_run(path: str | Path) -> RunFolder:
    """A finished run folder: metrics.json readable and every export file present."""
    run = RunFolder.at(path)
    run.metrics()
    run.require_export()
    return run


def pop_baseline(run: RunFolder, data: Dataset) -> dict[str, dict[str, float]]:
    """Popularity metrics at the metrics the run reports, on the data it was trained on (computed here:
    training records no baseline, so the first champion is judged against this)."""
    names = sorted({*run.metric_values("valid"), *run.metric_values("test")})
    log.info("computing the popularity baseline", data=str(data.path), metrics=",".join(names))
    return baseline.popularity_metrics(data, names, mask_valid=bool(run.config().get("mask_valid_at_test", False)))


def build_artifacts(run: RunFolder, data: Dataset, out: Path) -> None:
    """Fill ``out`` with everything GatrecRecommender.load_folder reads, checking shapes on the way."""
    src = run.model_dir
    out.mkdir(parents=True, exist_ok=True)
    users = np.load(src / "user_embeddings.npy", mmap_mode="r")
    items = np.load(src / "item_embeddings.npy", mmap_mode="r")
    user_ids = read_json(src / "user_ids.json", what="the exported model")
    item_ids = read_json(src / "item_ids.json", what="the exported model")
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
    for name in (*EXPORT_FILES, *OPTIONAL_FILES):
        if (src / name).is_file():
            shutil.copy2(src / name, out / name)
    seen = data.csr("train")
    np.savez(out / SEEN_FILE, indptr=seen.indptr.astype(np.int64), indices=seen.indices.astype(np.int32))
    np.save(out / POPULARITY_FILE, data.item_popularity.astype(np.float32))


def input_example(run: RunFolder) -> pd.DataFrame:
    user_ids = read_json(run.model_dir / "user_ids.json")
    item_ids = read_json(run.model_dir / "item_ids.json")
    return pd.DataFrame({"user_id": [str(user_ids[0])], "history": [[str(i) for i in item_ids[:2]]],
                         "k": [10]})
