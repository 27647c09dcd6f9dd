"""Per-modality embedding with the content cache: only inputs the cache has not seen reach a model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from gatrec import log as glog
from gatrec.features.cache import EmbeddingCache
from gatrec.features.download import download_all, is_url
from gatrec.features.image import ImageConfig, ImageEncoder, image_key, resolve_image_ref
from gatrec.features.text import TextConfig, TextEncoder, item_texts, text_key

log = glog.get(__name__)

# Encoded vectors are flushed to the cache every this many items, so a crash loses little work.
CACHE_FLUSH_EVERY = 16_384
Result = tuple[np.ndarray | None, np.ndarray, dict]  # (vectors [n, d] or None, present mask [n], stats)


class Encoder(Protocol):
    def load(self) -> None: ...
    def encode(self, inputs: list) -> tuple[np.ndarray, np.ndarray]: ...


def embed_cached(keys: Sequence[str | None], inputs: Sequence, cache: EmbeddingCache, encoder: Encoder
                 ) -> Result:
    """(vectors [n, d] or None, present mask, stats): cached rows are reused, only unseen inputs encoded.

    ``keys[i] is None`` means row i has no input; rows whose input fails to encode are also not present.
    """
    rows = [i for i, k in enumerate(keys) if k is not None]
    hit, _ = cache.lookup([keys[i] for i in rows])
    todo: dict[str, object] = {}
    for i, h in zip(rows, hit, strict=True):
        if not h and keys[i] not in cache.failed:  # known-bad inputs (undecodable bytes) are not retried
            todo.setdefault(keys[i], inputs[i])  # identical inputs are encoded once
    seconds = 0.0
    if todo:
        encoder.load()  # timed apart from encoding, so items/s measures the model's throughput
        t0 = time.perf_counter()
        todo_keys, todo_inputs = list(todo), list(todo.values())
        for s in range(0, len(todo_keys), CACHE_FLUSH_EVERY):
            chunk = todo_keys[s:s + CACHE_FLUSH_EVERY]
            vecs, ok = encoder.encode(todo_inputs[s:s + CACHE_FLUSH_EVERY])
            cache.add([k for k, o in zip(chunk, ok, strict=True) if o], vecs,
                      failed=[k for k, o in zip(chunk, ok, strict=True) if not o])
        seconds = time.perf_counter() - t0
    present, vecs = cache.lookup([k or "" for k in keys])  # "" is never a sha256 key
    stats = {"n_present": int(present.sum()), "n_missing": int(len(keys) - present.sum()),
             "from_cache": int(hit.sum()),
             "encoded": len(todo), "encode_seconds": round(seconds, 3),
             "items_per_s": round(len(todo) / seconds, 1) if todo and seconds > 0 else None}
    if vecs is None:
        return None, present, stats
    out = np.zeros((len(keys), vecs.shape[1]), dtype=np.float32)
    out[present] = vecs
    return out, present, stats


def embed_text(cfg: TextConfig, items: pd.DataFrame, cache_root: Path) -> Result:
    texts = item_texts(items, cfg.fields, cfg.max_chars)
    enc = TextEncoder(cfg)
    keys = [text_key(t) if t else None for t in texts]
    vecs, present, stats = embed_cached(keys, texts, EmbeddingCache(cache_root, enc.namespace), enc)
    stats.update(model=cfg.model, model_id=enc.model_id, fields=cfg.fields,
                 max_chars=cfg.max_chars, max_seq_length=cfg.max_seq_length, model_loaded=enc.loads > 0)
    return vecs, present, stats


def embed_image(cfg: ImageConfig, items: pd.DataFrame, source_dir: Path, cache_root: Path
                ) -> Result:
    if "image" not in items.columns:
        return None, np.zeros(len(items), dtype=bool), {"n_present": 0, "reason": "no image column"}
    refs = [resolve_image_ref(r, source_dir) for r in items["image"]]
    urls = [r for r in refs if r is not None and is_url(r)]
    fetched = download_all(urls, cache_root / "images", workers=cfg.download_workers,
                           retries=cfg.download_retries, timeout=cfg.download_timeout)
    paths = [None if r is None else (fetched[r] if is_url(r) else Path(r)) for r in refs]
    with ThreadPoolExecutor(max_workers=8) as pool:  # hashing is I/O bound
        keys = list(pool.map(lambda p: image_key(p) if p is not None else None, paths))  # None: unreadable
    enc = ImageEncoder(cfg)
    vecs, present, stats = embed_cached(keys, [str(p) if p else "" for p in paths], EmbeddingCache(cache_root, enc.namespace),
                                         enc)
    n_refs = sum(r is not None for r in refs)
    stats.update(model=cfg.model, weights=cfg.weights, weights_id=enc.weights_id,
                 weights_random=cfg.random_weights, model_loaded=enc.loads > 0, with_image=n_refs,
                 unavailable=n_refs - stats["n_present"], urls=len(set(urls)),
                 download_failed=sum(fetched[u] is None for u in set(urls)))
    if stats["unavailable"]:
        log.warning("images_unavailable", count=stats["unavailable"], of=n_refs,
                    hint="missing file, failed download or undecodable; those items are masked")
    return vecs, present, stats
