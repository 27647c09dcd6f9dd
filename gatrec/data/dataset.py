"""The prepared dataset folder written by ``gatrec prepare`` and read by every later step.

Layout (all ids are contiguous ints starting at 0)::

    train.parquet / valid.parquet / test.parquet   user, item[, timestamp][, rating]
    users.parquet                                  user, user_id
    items.parquet                                  item, item_id[, title, description, brand, categories, image]
    manifest.json                                  source, counts, cleaning, split protocol + seed, digest
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gatrec.errors import DataError

SPLITS = ("train", "valid", "test")
MANIFEST = "manifest.json"


@dataclass
class Dataset:
    path: Path
    manifest: dict
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    _csr: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise DataError("not a prepared dataset (no manifest.json); run `gatrec prepare` first", file=path)
        manifest = json.loads(mpath.read_text())
        frames = {}
        for name in (*SPLITS, "users", "items"):
            f = path / f"{name}.parquet"
            if not f.is_file():
                raise DataError("missing from the prepared dataset", file=f)
            frames[name] = pd.read_parquet(f)
        return cls(path=path, manifest=manifest, **frames)

    @property
    def n_users(self) -> int:
        return int(self.manifest["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["n_items"])

    @property
    def digest(self) -> str:
        """Content digest of the prepared data (interactions + split), stable across machines."""
        return str(self.manifest["digest"])

    @property
    def split_protocol(self) -> str:
        return str(self.manifest["split"]["protocol"])

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary user × item matrix of one split (cached)."""
        if name not in self._csr:
            df = self.split(name)
            data = np.ones(len(df), dtype=np.float32)
            m = sp.csr_matrix((data, (df["user"].to_numpy(), df["item"].to_numpy())),
                              shape=(self.n_users, self.n_items))
            m.sum_duplicates()
            m.data[:] = 1.0
            self._csr[name] = m
        return self._csr[name]

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Training interaction count per item."""
        return np.bincount(self.train["item"].to_numpy(), minlength=self.n_items).astype(np.float32)
