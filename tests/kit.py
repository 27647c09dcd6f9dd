"""The test kit: prepared (and featured) dataset folders written directly, in the layouts of
docs/ARCHITECTURE.md, for tests that need data but not `gatrec prepare` / `gatrec embed` themselves.

``write_prepared`` makes users with cluster tastes: each user belongs to one of ``n_clusters`` groups and
mostly interacts with that group's items, with some globally popular items mixed in, so personalised
models can learn the groups and popularity cannot. The split is leave-one-out (last interaction test,
the one before valid). ``write_features`` adds a feature folder as `gatrec embed` leaves it, and
``write_run`` a ``gatrec train`` run folder (random embeddings, declared metrics) trained on such data.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_prepared(folder: Path, *, n_users: int = 120, n_items: int = 60, n_clusters: int = 4,
                   per_user: int = 12, noise: float = 0.05, seed: int = 0, ratings: bool = False,
                   split: str = "leave-one-out", digest: str | None = None,
                   ids: tuple[str, str] = ("u{}", "i{}")) -> Path:
    """A prepared dataset folder; ``ratings`` adds a 1..5 rating column (drawn apart, so the interactions
    are the same with or without it). ``split`` names the protocol in the manifest, ``digest`` replaces the
    computed one (a label, for tests that only compare digests), ``ids`` formats the original user and item
    ids from the internal ones."""
    rng = np.random.default_rng(seed)
    cluster_of_item = np.arange(n_items) % n_clusters
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8  # Zipf-like global popularity
    rows = []
    for u in range(n_users):
        c = u % n_clusters
        weights = np.where(cluster_of_item == c, 1.0, noise) * (0.3 + popularity)
        items = rng.choice(n_items, size=per_user, replace=False, p=weights / weights.sum())
        rows += [(u, int(i), t) for t, i in enumerate(items)]
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).astype(
        {"user": "int32", "item": "int32", "timestamp": "int64"})
    if ratings:
        df["rating"] = np.random.default_rng(seed + 1).integers(1, 6, len(df)).astype("float32")
    pos_from_end = df.groupby("user").cumcount(ascending=False)
    parts = {"train": df[pos_from_end >= 2], "valid": df[pos_from_end == 1], "test": df[pos_from_end == 0]}
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    for name, part in parts.items():
        part.reset_index(drop=True).to_parquet(folder / f"{name}.parquet", index=False)
        h.update(name.encode() + part[["user", "item"]].to_numpy().astype("<i4").tobytes())
    uid, iid = ids
    user_table = {"user": np.arange(n_users, dtype="int32"), "user_id": [uid.format(u) for u in range(n_users)]}
    item_table = {"item": np.arange(n_items, dtype="int32"), "item_id": [iid.format(i) for i in range(n_items)],
                  "title": [f"item {i}" for i in range(n_items)]}
    pd.DataFrame(user_table).to_parquet(folder / "users.parquet", index=False)
    pd.DataFrame(item_table).to_parquet(folder / "items.parquet", index=False)
    manifest = {"format_version": 1, "source": {"format": "test-fixture", "seed": seed},
                "n_users": n_users, "n_items": n_items, "n_interactions": len(df),
                "counts": {k: len(v) for k, v in parts.items()}, "cleaning": {},
                "split": {"protocol": split, "seed": seed}, "digest": digest or h.hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def write_features(data: Path, *, n_clusters: int = 4, dim: int = 16, k: int = 5) -> np.ndarray:
    """A feature folder beside ``data`` as `gatrec embed` leaves it: noisy cluster-indicator 'text' vectors
    (the same clusters as :func:`write_prepared`'s) and their kNN graph with ``k`` neighbours."""
    from gatrec.features import store
    from gatrec.fsutil import file_digest, write_json
    from gatrec.graph.knn import knn_graph

    n_items = json.loads((data / "manifest.json").read_text())["n_items"]
    rng = np.random.default_rng(1)
    x = np.eye(n_clusters, dim)[np.arange(n_items) % n_clusters] + 0.3 * rng.standard_normal((n_items, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    out = store.resolve_dir(data)
    out.mkdir()
    sha = store.save_array(out / "text.npy", x)
    store.save_array(out / "text_mask.npy", np.ones(n_items, dtype=bool))
    edge_index, weight = knn_graph(x, k)
    store.save_knn(out / store.knn_filename("text", k), edge_index, weight, n_items=n_items, k=k,
                   features="text", features_sha256=sha)
    write_json(out / store.MANIFEST, {
        "format_version": store.FORMAT_VERSION, "n_items": n_items,
        "items_digest": file_digest(data / "items.parquet"),
        "arrays": {"text": {"file": "text.npy", "mask_file": "text_mask.npy", "n_items": n_items, "dim": dim,
                            "sha256": sha}},
        "knn": {f"text_k{k}": {"file": store.knn_filename("text", k), "features": "text", "k": k,
                               "edges": int(edge_index.shape[1])}}})
    return x


ITEM_FIELDS = ("item_id", "title", "description", "brand", "categories")


def write_items(folder: Path, rows: list[dict], *, source: Path | None = None) -> Path:
    """The part of a prepared folder `gatrec embed` reads: items.parquet (the text fields of ``rows``, and
    ``image`` where given) and a manifest; ``source`` is the raw input relative image paths resolve against."""
    folder.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([{f: r.get(f, "") for f in ITEM_FIELDS} | {k: v for k, v in r.items() if k == "image"}
                       for r in rows])
    df.insert(0, "item", np.arange(len(df), dtype=np.int32))
    df.to_parquet(folder / "items.parquet", index=False)
    manifest = {"format_version": 1, "n_items": len(df), "digest": "test-digest",
                "source": {"path": str(source or folder.parent / "raw")}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def write_run(run: Path, data: Path, *, ndcg: float, recall: float, model: str = "mf", dim: int = 8,
              bias: bool = False, seed: int = 0, extra_metrics: dict[str, Any] | None = None,
              mlflow_run_id: str | None = None) -> Path:
    """A ``gatrec train`` run folder on the prepared ``data``, written through the run folder's own writers:
    random embeddings (``bias``: and an item bias) in ``model/``, and metrics.json declaring valid
    NDCG@20 ``ndcg`` and Recall@20 ``recall`` (+ ``extra_metrics``; test: 95 % of both)."""
    from gatrec.data.dataset import Dataset
    from gatrec.train.export import RunFolder, write_export

    ds = Dataset.load(data)
    folder = RunFolder.at(run)
    folder.path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    write_export(folder.model_dir, model=model, user_emb=rng.normal(size=(ds.n_users, dim)),
                 item_emb=rng.normal(size=(ds.n_items, dim)),
                 item_bias=rng.normal(size=ds.n_items) if bias else None, dataset=ds)
    data_record = {"path": str(data), "digest": ds.digest, "split_protocol": ds.split_protocol,
                   "n_users": ds.n_users, "n_items": ds.n_items}
    metrics: dict[str, Any] = {
        "valid": {"ndcg@20": ndcg, "recall@20": recall, **(extra_metrics or {})},
        "test": {"ndcg@20": ndcg * 0.95, "recall@20": recall * 0.95}, "best_epoch": 3, "epochs_run": 5,
        "seconds_per_epoch": 0.1, "config": {"model": model, "dim": dim}, "model": model, "data": data_record}
    if mlflow_run_id:
        metrics["mlflow_run_id"] = mlflow_run_id
    folder.write_metrics(metrics)
    return folder.path


def make_dataset(root: Path, *, digest: str, split: str = "user-temporal", n_users: int = 80,
                 n_items: int = 120, per_user: int = 10, seed: int = 0) -> Path:
    """A :func:`write_prepared` dataset, one per (digest, split) under ``root``: popularity
    only (no taste clusters), ids ``U000`` / ``I000``, the manifest's digest the label ``digest``."""
    path = root / f"data-{digest}-{split}"
    if (path / "manifest.json").exists():
        return path
    return write_prepared(path, n_users=n_users, n_items=n_items, per_user=per_user, n_clusters=1, seed=seed,
                          split=split, digest=digest, ids=("U{:03d}", "I{:03d}"))


def make_run_dir(root: Path, *, ndcg: float, recall: float, digest: str = "d1", split: str = "user-temporal",
                 seed: int = 0, **kwargs) -> Path:
    """A ``gatrec train`` run folder (:func:`write_run`: random embeddings, the given declared
    metrics) on :func:`make_dataset`'s data; ``kwargs``: ``model``, ``dim``, ``bias``, ``extra_metrics``,
    ``mlflow_run_id``."""
    data = make_dataset(root, digest=digest, split=split)
    run = root / f"run-{uuid.uuid4().hex[:8]}"
    return write_run(run, data, ndcg=ndcg, recall=recall, seed=seed, **kwargs)
