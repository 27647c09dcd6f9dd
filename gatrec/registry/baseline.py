"""Popularity-baseline metrics, the reference a first champion must beat.

Computed at registration from the prepared dataset the run was trained on, with the usual
full-ranking protocol: rank all items by training popularity, drop the user's known items
(train for valid; train + valid for test), and score the held-out items of each user with a
held-out item. NDCG@K uses binary relevance and the ideal DCG of min(|held-out|, K) hits;
Recall@K divides hits by |held-out|; Precision@K by K; Hit@K is 1 if any hit; MRR@K is the
reciprocal rank of the first hit. Popularity ties are broken by the lower item index.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from gatrec.data.dataset import Dataset

_METRIC = re.compile(r"^(ndcg|recall|precision|hit|hr|mrr)@(\d+)$")
CHUNK = 1024  # users scored at once on the per-user path: CHUNK x n_items floats


def supported(metric: str) -> bool:
    return _METRIC.match(metric) is not None


def _aggregate(hit_users: np.ndarray, hit_ranks: np.ndarray, n_true: np.ndarray,
               parsed: list[tuple[str, str, int]]) -> dict[str, float]:
    """Mean metrics from the 0-based ranks of every hit (user index, rank) and |held-out| per user."""
    n_users, out = len(n_true), {}
    kmax = max(k for _, _, k in parsed)
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, kmax + 2)))
    for name, kind, k in parsed:
        keep = hit_ranks < k
        users, ranks = hit_users[keep], hit_ranks[keep].astype(np.float64)
        count = np.bincount(users, minlength=n_users).astype(np.float64)
        if kind == "ndcg":
            dcg = np.bincount(users, weights=1.0 / np.log2(ranks + 2), minlength=n_users)
            vals = dcg / ideal[np.minimum(n_true, k).astype(np.int64) - 1]
        elif kind == "recall":
            vals = count / n_true
        elif kind == "precision":
            vals = count / k
        elif kind in ("hit", "hr"):
            vals = (count > 0).astype(np.float64)
        else:  # mrr
            best = np.full(n_users, np.inf)
            np.minimum.at(best, users, ranks)
            vals = np.where(np.isfinite(best), 1.0 / (best + 1.0), 0.0)
        out[name] = float(vals.mean()) if n_users else 0.0
    return out


def _shared_ranks(scores: np.ndarray, exclude: sp.csr_matrix, truth: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """One score vector for everyone (popularity): a held-out item's rank is its global rank minus
    the user's excluded items ranked above it; sorted keys make that one searchsorted, no dense matrix."""
    n_items = len(scores)
    grank = np.empty(n_items, dtype=np.int64)
    grank[np.argsort(-scores, kind="stable")] = np.arange(n_items)
    ex_users = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    ex_keys = np.sort(ex_users * n_items + grank[exclude.indices])
    t_users = np.repeat(np.arange(truth.shape[0]), np.diff(truth.indptr))
    t_keys = t_users * n_items + grank[truth.indices]
    below = np.searchsorted(ex_keys, t_keys) - np.searchsorted(ex_keys, t_users * n_items)
    is_excluded = np.searchsorted(ex_keys, t_keys, side="right") > np.searchsorted(ex_keys, t_keys)
    ranks = grank[truth.indices] - below
    return t_users[~is_excluded], ranks[~is_excluded]


def _dense_ranks(scores: np.ndarray, exclude: sp.csr_matrix, truth: sp.csr_matrix, users: np.ndarray,
                 kmax: int) -> tuple[np.ndarray, np.ndarray]:
    hit_users, hit_ranks = [], []
    for start in tqdm(range(0, len(users), CHUNK), desc="ranking", unit="chunk", disable=None, leave=False):
        rows = users[start:start + CHUNK]
        block = np.array(scores[rows], dtype=np.float64)
        block[exclude[rows].nonzero()] = -np.inf
        k = min(kmax, block.shape[1])
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        hits = np.asarray(truth[np.repeat(rows, k), top.ravel()]).reshape(len(rows), k) > 0
        r, pos = np.nonzero(hits)
        hit_users.append(rows[r])
        hit_ranks.append(pos)
    return np.concatenate(hit_users or [np.empty(0, int)]), np.concatenate(hit_ranks or [np.empty(0, int)])


def ranking_metrics(scores: np.ndarray, exclude: sp.csr_matrix, truth: sp.csr_matrix,
                    metrics: list[str]) -> dict[str, float]:
    """Mean metrics over users with held-out items; ``scores`` is one row per user or one shared row."""
    matches = [(m, _METRIC.match(m)) for m in metrics]
    parsed = [(m, match.group(1), int(match.group(2))) for m, match in matches if match]
    if not parsed:
        return {}
    exclude, truth = exclude.tocsr(copy=True), truth.tocsr(copy=True)
    for m in (exclude, truth):  # canonical: one stored, non-zero entry per (user, item)
        m.sum_duplicates()
        m.eliminate_zeros()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    if scores.ndim == 1:
        hit_users, hit_ranks = _shared_ranks(scores, exclude, truth)
    else:
        hit_users, hit_ranks = _dense_ranks(scores, exclude, truth, users, max(k for _, _, k in parsed))
    # Re-index hits onto the evaluated users only.
    position = np.full(truth.shape[0], -1, dtype=np.int64)
    position[users] = np.arange(len(users))
    n_true = np.diff(truth.indptr)[users].astype(np.float64)
    return _aggregate(position[hit_users], np.asarray(hit_ranks), n_true, parsed)


def popularity_metrics(data: Dataset, metrics: list[str]) -> dict[str, dict[str, float]]:
    """``{"valid": {...}, "test": {...}}`` for the popularity ranking on ``data``."""
    pop = data.item_popularity.astype(np.float64)
    train, valid = data.csr("train"), data.csr("valid")
    return {
        "valid": ranking_metrics(pop, train, valid, metrics),
        "test": ranking_metrics(pop, (train + valid).tocsr(), data.csr("test"), metrics),
    }
