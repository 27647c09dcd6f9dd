"""Fixtures for the training tests: small prepared dataset folders written directly (no `gatrec prepare`).

``write_prepared`` makes users with cluster tastes: each user belongs to one of ``n_clusters`` groups and
mostly interacts with that group's items, with some globally popular items mixed in. Personalised models
can learn the groups; popularity cannot.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch


def write_prepared(folder: Path, *, n_users: int = 120, n_items: int = 60, n_clusters: int = 4,
                   per_user: int = 12, noise: float = 0.05, seed: int = 0) -> Path:
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
    # Per user: the last interaction is test, the one before valid, the rest train (leave-one-out).
    pos_from_end = df.groupby("user").cumcount(ascending=False)
    parts = {"train": df[pos_from_end >= 2], "valid": df[pos_from_end == 1], "test": df[pos_from_end == 0]}
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    for name, part in parts.items():
        part.reset_index(drop=True).to_parquet(folder / f"{name}.parquet", index=False)
        h.update(name.encode() + part[["user", "item"]].to_numpy().astype("<i4").tobytes())
    pd.DataFrame({"user": np.arange(n_users, dtype="int32"),
                  "user_id": [f"u{u}" for u in range(n_users)]}).to_parquet(folder / "users.parquet", index=False)
    pd.DataFrame({"item": np.arange(n_items, dtype="int32"), "item_id": [f"i{i}" for i in range(n_items)],
                  "title": [f"item {i}" for i in range(n_items)]}).to_parquet(folder / "items.parquet", index=False)
    manifest = {"format_version": 1, "source": {"format": "test-fixture", "seed": seed},
                "n_users": n_users, "n_items": n_items, "n_interactions": len(df),
                "counts": {k: len(v) for k, v in parts.items()}, "cleaning": {},
                "split": {"protocol": "leave-one-out", "seed": seed}, "digest": h.hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The test data is tiny: thread hand-offs cost more than they save (10x more on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def clustered_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset with strong cluster structure (shared by the tests: treat as read-only)."""
    return write_prepared(tmp_path_factory.mktemp("clustered") / "data")


@pytest.fixture
def make_prepared():
    return write_prepared
