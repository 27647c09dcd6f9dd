"""On-disk embedding cache: per-item content key → vector, one folder per model namespace.

A key is the sha256 of the exact input (text string or image bytes); the namespace names the model and
its weights. So a rerun on unchanged inputs loads no model at all, and a changed item is re-encoded alone.

Inputs the encoder rejected (e.g. undecodable image bytes) are remembered too, so they are not retried.

Layout: ``<root>/<sha256(namespace)[:24]>/{meta.json, keys.json, vectors.npy, failed.json}``; each update replaces the
folder in one rename, so a crash never leaves keys and vectors out of step.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gatrec import log as glog
from gatrec.fsutil import atomic_dir

log = glog.get(__name__)


def default_cache_root(features_dir: Path) -> Path:
    """``$GATREC_CACHE`` when set (shared across datasets), else ``<features dir>/cache``."""
    env = os.environ.get("GATREC_CACHE")
    return Path(env).expanduser() if env else features_dir / "cache"


class EmbeddingCache:
    def __init__(self, root: str | Path, namespace: str):
        self.namespace = namespace
        self.dir = Path(root) / hashlib.sha256(namespace.encode()).hexdigest()[:24]
        self._keys: list[str] = []
        self._index: dict[str, int] = {}
        self._vectors: np.ndarray | None = None
        self.failed: set[str] = set()
        self._load()

    def _load(self) -> None:
        meta = self.dir / "meta.json"
        if not meta.is_file():
            return
        try:
            if json.loads(meta.read_text()).get("namespace") != self.namespace:
                raise ValueError("namespace mismatch")
            keys = json.loads((self.dir / "keys.json").read_text())
            vectors = np.load(self.dir / "vectors.npy")
            failed = json.loads((self.dir / "failed.json").read_text())
            if len(keys) != len(vectors):
                raise ValueError(f"{len(keys)} keys but {len(vectors)} vectors")
        except (OSError, ValueError) as exc:  # a damaged cache only costs recomputation
            log.warning("embedding_cache_ignored", path=str(self.dir), error=str(exc))
            return
        self._keys, self._vectors, self.failed = keys, (vectors if keys else None), set(failed)
        self._index = {k: i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """(hit mask [len(keys)], vectors of the hits in order, or None when nothing hit)."""
        rows = np.array([self._index.get(k, -1) for k in keys], dtype=np.int64)
        hit = rows >= 0
        if not hit.any() or self._vectors is None:
            return hit, None
        return hit, self._vectors[rows[hit]]

    def add(self, keys: Sequence[str], vectors: np.ndarray, failed: Sequence[str] = ()) -> None:
        """Store new vectors (and keys that failed to encode); persist atomically. First vector per key wins."""
        new_failed = set(failed) - self.failed - set(self._index)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if k not in self._index and k not in first:
                first[k] = i
        if not first and not new_failed:
            return
        self.failed |= new_failed
        if not first:
            self._save()
            return
        add_keys = list(first)
        add_vecs = np.asarray(vectors, dtype=np.float32)[list(first.values())]
        if self._vectors is not None and self._vectors.shape[1] != add_vecs.shape[1]:
            raise ValueError(f"cache {self.dir} holds dim {self._vectors.shape[1]}, got {add_vecs.shape[1]}")
        self._vectors = add_vecs if self._vectors is None else np.concatenate([self._vectors, add_vecs])
        self._index.update({k: len(self._keys) + i for i, k in enumerate(add_keys)})
        self._keys.extend(add_keys)
        self._save()

    def _save(self) -> None:
        vectors = self._vectors if self._vectors is not None else np.zeros((0, 0), dtype=np.float32)
        with atomic_dir(self.dir) as tmp:
            np.save(tmp / "vectors.npy", vectors)
            (tmp / "keys.json").write_text(json.dumps(self._keys))
            (tmp / "failed.json").write_text(json.dumps(sorted(self.failed)))
            (tmp / "meta.json").write_text(json.dumps({"namespace": self.namespace, "dim": int(vectors.shape[1])}))
