"""Top-K recommendation over a registered model folder: the one scorer of gatrec.

Used by the MLflow pyfunc (``gatrec/registry/pyfunc.py``, which ships a copy of this file with the logged
model) and by the BentoML service (``service.py``), so both return the same items in the same order.
numpy only: no gatrec, torch or pandas imports (the serving image and the logged model carry numpy alone).

The folder (written by ``gatrec register``)::

    item_embeddings.npy, user_embeddings.npy   float32; score(u, i) = user_emb[u] . item_emb[i] (+ item_bias[i])
    item_bias.npy (optional)                   float32 [n_items]
    user_ids.json, item_ids.json               original ids, index = internal id
    seen.npz                                   CSR of training items per user (indptr, indices)
    popularity.npy                             training interaction count per item
    model.json                                 model type, dim, data digest, ...

A query names a ``user_id`` and/or a ``history`` of item ids. A known user is scored with its embedding;
an unknown user with a history by the mean embedding of the history's known items; with neither, items
rank by training popularity (cold start). Unless ``exclude_seen`` is false, the user's training items and
the history are never recommended; ``exclude`` items never are. Ties rank the lower item index first.

Scores are float32 products, taken for a whole batch of queries at once, in BLAS calls of one fixed
shape: BLAS sums a matrix-vector or small product in another order than a large one, and the scores of
a query must not depend on which queries share its batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_K = 10
SEEN_FILE = "seen.npz"
POPULARITY_FILE = "popularity.npy"
SOURCES = ("user", "history", "popularity")
#: Rows of one score matrix: bounds the memory of a large batch (rows x n_items float32).
CHUNK_ROWS = 64
#: The one shape of the score product's BLAS calls (see ``product``): catalogue rows per slice (2048 x 64
#: float32 = 512 KB, in L2 with its result) and queries per call.
PRODUCT_SLICE, PRODUCT_COLUMNS = 2048, 4


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` (1-D), highest first, ties by lower index.

    The same order as ``np.argsort(-scores, kind="stable")[:k]``, in linear time: a partition finds the
    k-th highest value, only the candidates at or above it are sorted. ``-inf`` marks excluded items; at
    most the finite ones are returned.
    """
    n = scores.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    kth = np.partition(scores, n - k)[n - k]
    if kth == -np.inf:  # fewer than k candidates left
        cand = np.flatnonzero(scores > -np.inf)
    else:
        cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))  # by score descending, then by index
    return cand[order[:k]]


def product(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix.T`` in float32, each row's bits independent of the other rows in the call.

    Every BLAS call has one shape whatever the batch: ``PRODUCT_SLICE`` catalogue rows (the tall, left
    operand) times ``PRODUCT_COLUMNS`` queries (zero-padded). BLAS picks its kernel and summation order by
    shape (a matrix-vector or "small matrix" path sums differently), so a query scores the same bits alone
    or in any batch. Each slice's result is transposed into place while it is still in cache; this is
    also faster than one ``rows @ matrix.T`` (BENCHMARKS.md, serving)."""
    rows = np.asarray(rows, dtype=np.float32)
    n_rows, width = rows.shape[0], PRODUCT_COLUMNS
    padded = np.zeros((-(-n_rows // width) * width, rows.shape[1]), dtype=np.float32)
    padded[:n_rows] = rows
    groups = [np.ascontiguousarray(padded[g:g + width].T) for g in range(0, padded.shape[0], width)]
    out = np.empty((padded.shape[0], matrix.shape[0]), dtype=np.float32)
    for start in range(0, matrix.shape[0], PRODUCT_SLICE):
        block = matrix[start:start + PRODUCT_SLICE]
        for g, right in enumerate(groups):
            out[g * width:(g + 1) * width, start:start + PRODUCT_SLICE] = (block @ right).T
    return out[:n_rows]


@dataclass(frozen=True)
class Query:
    user_id: str | None = None
    history: Sequence[str] = ()
    k: int = DEFAULT_K
    exclude_seen: bool = True
    exclude: Sequence[str] = ()


@dataclass
class Ranking:
    item_ids: list[str]
    scores: list[float]
    source: str
    #: ids in the query that the model does not know (the user, history or exclude items)
    unknown_ids: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    """A query resolved to internal ids: what to score it with and what to drop."""

    vector: np.ndarray | None
    excluded: np.ndarray
    k: int
    source: str
    unknown: list[str]


class Catalogue:
    """A loaded model folder; ``recommend`` and ``similar`` rank its items."""

    def __init__(self, folder: str | os.PathLike):
        path = os.fspath(folder)

        def _json(name: str) -> Any:
            with open(os.path.join(path, name), encoding="utf-8") as fh:
                return json.load(fh)

        self.path = path
        self.item_emb = np.ascontiguousarray(np.load(os.path.join(path, "item_embeddings.npy")), dtype=np.float32)
        self.user_emb = np.ascontiguousarray(np.load(os.path.join(path, "user_embeddings.npy")), dtype=np.float32)
        bias_path = os.path.join(path, "item_bias.npy")
        self.item_bias = np.load(bias_path).astype(np.float32) if os.path.exists(bias_path) else None
        self.meta = _json("model.json")
        self.user_ids = [str(u) for u in _json("user_ids.json")]
        self.item_ids = np.asarray([str(i) for i in _json("item_ids.json")], dtype=object)
        self.user_index = {u: n for n, u in enumerate(self.user_ids)}
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        with np.load(os.path.join(path, SEEN_FILE)) as seen:
            self.seen_indptr, self.seen_indices = seen["indptr"], seen["indices"]
        self.popularity = np.load(os.path.join(path, POPULARITY_FILE)).astype(np.float32)
        self._unit_items: np.ndarray | None = None
        self.index = None  # an approximate index (gatrec.serve.ann) when the service built one

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    # ------------------------------------------------------------------ queries

    def _items(self, ids: Sequence[str], unknown: list[str]) -> list[int]:
        out = []
        for i in ids:
            n = self.item_index.get(str(i))
            if n is None:
                unknown.append(str(i))
            else:
                out.append(n)
        return out

    def _plan(self, q: Query) -> _Plan:
        unknown: list[str] = []
        hist = self._items(q.history, unknown)
        drop = self._items(q.exclude, unknown)
        uidx = None
        if q.user_id is not None:
            uidx = self.user_index.get(str(q.user_id))
            if uidx is None:
                unknown.insert(0, str(q.user_id))
        if uidx is not None:
            vector, source = self.user_emb[uidx], "user"
            if q.exclude_seen:
                drop += self.seen_indices[self.seen_indptr[uidx]:self.seen_indptr[uidx + 1]].tolist()
        elif hist:
            vector, source = self.item_emb[hist].mean(axis=0), "history"
        else:
            vector, source = None, "popularity"
        if q.exclude_seen:
            drop += hist
        if int(q.k) < 1:
            raise ValueError(f"k must be >= 1, got {q.k}")
        return _Plan(vector, np.unique(np.asarray(drop, dtype=np.int64)), int(q.k), source, unknown)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors @ item_emb.T (+ bias)`` as float32, rows independent of the batch they come in."""
        out = product(vectors, self.item_emb)
        if self.item_bias is not None:
            out += self.item_bias
        return out

    def _rank(self, scores: np.ndarray, plan: _Plan) -> Ranking:
        if plan.excluded.size:
            scores[plan.excluded] = -np.inf
        top = top_k(scores, plan.k)
        return self.ranking(top, scores[top], plan)

    def ranking(self, top: np.ndarray, scores: np.ndarray, plan: _Plan) -> Ranking:
        return Ranking(self.item_ids[top].tolist(), np.asarray(scores, dtype=np.float64).tolist(), plan.source,
                       plan.unknown)

    def recommend(self, queries: Sequence[Query]) -> list[Ranking]:
        """Rank items for each query; the embedding queries share one product per chunk of rows."""
        plans = [self._plan(q) for q in queries]
        out: list[Ranking | None] = [None] * len(plans)
        scored = [n for n, p in enumerate(plans) if p.vector is not None]
        if self.index is not None and scored:
            for n, ranking in zip(scored, self.index.recommend(self, [plans[n] for n in scored]), strict=True):
                out[n] = ranking
        else:
            for start in range(0, len(scored), CHUNK_ROWS):
                rows = scored[start:start + CHUNK_ROWS]
                block = self.scores(np.stack([plans[n].vector for n in rows]))
                for n, row in zip(rows, block, strict=True):
                    out[n] = self._rank(row, plans[n])
        for n, p in enumerate(plans):
            if p.vector is None:
                out[n] = self._rank(self.popularity.copy(), p)
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ item-item

    def unit_items(self) -> np.ndarray:
        if self._unit_items is None:
            norms = np.linalg.norm(self.item_emb, axis=1, keepdims=True)
            self._unit_items = self.item_emb / np.maximum(norms, np.float32(1e-12))
        return self._unit_items

    def similar(self, item_ids: Sequence[str], k: int) -> list[Ranking | None]:
        """Items by cosine similarity to each given item (itself excluded); None for an unknown item."""
        unit = self.unit_items()
        known = [(n, self.item_index.get(str(i))) for n, i in enumerate(item_ids)]
        known = [(n, i) for n, i in known if i is not None]
        out: list[Ranking | None] = [None] * len(item_ids)
        for start in range(0, len(known), CHUNK_ROWS):
            rows = known[start:start + CHUNK_ROWS]
            block = product(unit[[i for _, i in rows]], unit)
            for (n, i), row in zip(rows, block, strict=True):
                out[n] = self._rank(row, _Plan(None, np.asarray([i]), int(k), "item", []))
        return out
