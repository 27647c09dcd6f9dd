"""Approximate top-K over a large catalogue with FAISS (HNSW or IVF over inner products).

Scores ``u . e + b`` are inner products of ``[u, 1]`` with ``[e, b]``, so a bias folds into the index.
Excluded items are dropped from a longer candidate list (k + number excluded), so a query still gets
its k items. Only embedding queries go through the index; popularity ranks stay exact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _augment(matrix: np.ndarray, column: np.ndarray | float | None) -> np.ndarray:
    if column is None:
        return np.ascontiguousarray(matrix, dtype=np.float32)
    extra = np.broadcast_to(np.asarray(column, dtype=np.float32), (matrix.shape[0],))[:, None]
    return np.ascontiguousarray(np.hstack([matrix, extra]), dtype=np.float32)


class ApproxIndex:
    def __init__(self, item_emb: np.ndarray, item_bias: np.ndarray | None, *, kind: str = "hnsw",
                 hnsw_m: int = 32, ef_search: int = 128, ivf_lists: int = 0, nprobe: int = 32, seed: int = 0):
        import faiss

        self.kind, self.has_bias = kind, item_bias is not None
        data = _augment(item_emb, item_bias)
        dim = data.shape[1]
        if kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = max(40, 2 * hnsw_m)
            self.index.add(data)
            self.index.hnsw.efSearch = ef_search
        elif kind == "ivf":
            lists = ivf_lists or max(1, int(4 * math.sqrt(data.shape[0])))
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(seed)
            sample = data[rng.choice(data.shape[0], size=min(data.shape[0], 256 * lists), replace=False)]
            self.index.train(sample)
            self.index.add(data)
            self.index.nprobe = nprobe
        else:
            raise ValueError(f"unknown approximate index {kind!r} (hnsw, ivf)")

    def describe(self) -> str:
        return self.kind

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _augment(vectors, 1.0 if self.has_bias else None)
        return self.index.search(queries, k)

    def recommend(self, catalogue: Any, plans: list[Any]) -> list[Any]:
        """Rankings of ``plans`` (topk._Plan with a vector), best first; ties by lower index."""
        out = []
        width = max(p.k + p.excluded.size for p in plans)
        scores, ids = self.search(np.stack([p.vector for p in plans]), min(width, catalogue.n_items))
        for plan, row_s, row_i in zip(plans, scores, ids, strict=True):
            keep = (row_i >= 0) & ~np.isin(row_i, plan.excluded)
            cand_i, cand_s = row_i[keep], row_s[keep]
            order = np.lexsort((cand_i, -cand_s))[:plan.k]
            out.append(catalogue.ranking(cand_i[order], cand_s[order], plan))
        return out
