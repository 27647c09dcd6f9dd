"""Item–item cosine kNN graph, built blockwise (never a dense items × items matrix) with torch or faiss.

The graph is the union of the directed top-k lists (as in LATTICE/FREEDOM: keep top-k, then symmetrise),
weight = cosine similarity (max over the two directions), no self-loops.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from gatrec import log as glog

log = glog.get(__name__)

Backend = Literal["auto", "torch", "faiss"]
# faiss's flat inner-product search is a tuned BLAS + heap loop; torch's topk over wide blocks is only
# competitive for small catalogues, where faiss's fixed costs dominate.
FAISS_THRESHOLD = 20_000
_BLOCK_BYTES = 256 << 20  # similarity block budget for the torch path


class KnnConfig(BaseModel):
    """How the item–item graph is built."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(20, ge=1, le=1000)
    backend: Backend = "auto"
    faiss_threshold: int = Field(FAISS_THRESHOLD, ge=0, description="auto uses faiss above this many items")
    block_rows: int | None = Field(None, ge=1, description="torch: rows per block; None = ~256 MB blocks")


def choose_backend(n_items: int, backend: Backend = "auto", faiss_threshold: int = FAISS_THRESHOLD) -> str:
    if backend != "auto":
        return backend
    return "faiss" if n_items > faiss_threshold else "torch"


def _normalized(x: np.ndarray | torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"features must be 2-d [n_items, dim], got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ValueError("features contain NaN or inf")
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return np.ascontiguousarray(a / np.maximum(norms, 1e-12))


def _topk_torch(x: np.ndarray, k: int, block_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    xt = torch.from_numpy(x)
    rows = block_rows or max(1, min(n, _BLOCK_BYTES // (4 * n)))
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, n, rows):
            e = min(n, s + rows)
            block = xt[s:e] @ xt.T
            block[torch.arange(e - s), torch.arange(s, e)] = -torch.inf  # no self-loops
            v, i = block.topk(k, dim=1)
            idx[s:e], sim[s:e] = i.numpy(), v.numpy()
    return idx, sim


def _topk_faiss(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n = len(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    sim, idx = index.search(x, k + 1)
    # Drop each row's self hit; with exact duplicates self may fall outside the k+1, then drop the last.
    is_self = idx == np.arange(n)[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    return idx[~is_self].reshape(n, k).astype(np.int64), sim[~is_self].reshape(n, k).astype(np.float32)


def topk_neighbors(x: np.ndarray | torch.Tensor, k: int, backend: Backend = "auto", *,
                   block_rows: int | None = None, faiss_threshold: int = FAISS_THRESHOLD
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Directed cosine top-k per row, self excluded: (indices int64 [n, k'], cosines float32 [n, k'])."""
    xn = _normalized(x)
    k = min(k, len(xn) - 1)
    if k < 1:
        return np.zeros((len(xn), 0), np.int64), np.zeros((len(xn), 0), np.float32)
    if choose_backend(len(xn), backend, faiss_threshold) == "faiss":
        return _topk_faiss(xn, k)
    return _topk_torch(xn, k, block_rows)


def symmetrize(idx: np.ndarray, sim: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Union of the directed lists, both directions, duplicate edges merged with max; sorted by (row, col)."""
    from torch_geometric.utils import to_undirected

    n, k = idx.shape
    src = torch.arange(n, dtype=torch.long).repeat_interleave(k)
    edge_index = torch.stack([src, torch.from_numpy(idx.reshape(-1))])
    weight = torch.from_numpy(sim.reshape(-1)).float()
    edge_index, weight = to_undirected(edge_index, weight, num_nodes=n, reduce="max")
    return edge_index, weight


def knn_graph(x: np.ndarray | torch.Tensor, k: int = 20, backend: Backend = "auto", *,
              mask: np.ndarray | None = None, block_rows: int | None = None,
              faiss_threshold: int = FAISS_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric cosine kNN graph over the rows of ``x``.

    Returns ``(edge_index LongTensor [2, E], edge_weight FloatTensor [E])``: every item is linked to its
    ``k`` most similar items (both directions kept), weight = cosine, no self-loops. ``backend="auto"``
    uses faiss above ``faiss_threshold`` items, else torch; both compute exact (brute-force) neighbours.
    Rows where ``mask`` is False (items without real features) take no part: they get no edges, rather
    than a clique of identical placeholder vectors.
    """
    t0 = time.perf_counter()
    n = len(x)
    rows = np.arange(n) if mask is None else np.flatnonzero(np.asarray(mask, dtype=bool))
    sub = x if mask is None else x[torch.from_numpy(rows) if isinstance(x, torch.Tensor) else rows]
    used = choose_backend(len(rows), backend, faiss_threshold)
    idx, sim = topk_neighbors(sub, k, used, block_rows=block_rows)
    edge_index, weight = symmetrize(idx, sim)
    edge_index = torch.from_numpy(rows)[edge_index] if mask is not None else edge_index
    log.info("knn_graph_built", items=n, linked=len(rows), k=k, backend=used,
             edges=int(edge_index.shape[1]), seconds=round(time.perf_counter() - t0, 3))
    return edge_index, weight
