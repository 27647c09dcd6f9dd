"""Full-ranking top-K evaluation: every evaluated user is scored against ALL items.

Scores are ``user_emb @ item_emb.T (+ item_bias)``; the user's training items (and optionally other
held-out items, e.g. validation items at test time) are masked to -inf before top-K. Metrics use binary
relevance and are averaged over users with at least one held-out item:

* Recall@K = hits / |T_u|             * Precision@K = hits / K
* NDCG@K   = DCG / IDCG, IDCG over min(|T_u|, K)
* Hit@K    = 1 if any hit             * MRR@K = 1 / rank of the first hit (0 if none)
* coverage@K = distinct items recommended in anyone's top-K / n_items

Users are processed in batches (one matmul + one topk per batch; no Python loop over users).
``METRICS`` is the one list of metric names in gatrec; a metric is named ``<name>@<k>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset

METRICS = ("recall", "ndcg", "precision", "hit", "mrr")
DEFAULT_KS = (10, 20, 50)
_AT_K = re.compile(rf"^({'|'.join(METRICS)})@(\d+)$")


def parse_metric(name: str) -> tuple[str, int] | None:
    """``"ndcg@20"`` -> ``("ndcg", 20)``; None for anything else (e.g. ``coverage@20``, ``n_users``)."""
    m = _AT_K.match(name)
    return (m[1], int(m[2])) if m else None


def _batch_coords(m: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(row-in-batch, column) coordinates of the nonzeros of ``m[rows]``."""
    starts, ends = m.indptr[rows], m.indptr[rows + 1]
    counts = ends - starts
    r = np.repeat(np.arange(len(rows)), counts)
    # Column indices of all rows, gathered without a Python loop.
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    c = m.indices[np.arange(counts.sum()) + offsets]
    return torch.from_numpy(r).to(device), torch.from_numpy(c.astype(np.int64)).to(device)


@torch.no_grad()
def evaluate_embeddings(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    train: sp.csr_matrix,
    heldout: sp.csr_matrix,
    *,
    item_bias: torch.Tensor | None = None,
    exclude: sp.csr_matrix | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 1024,
    progress: bool = False,
    stable_ties: bool = False,
) -> dict[str, float]:
    """Full-ranking metrics of dot-product scores against ``heldout``, masking ``train`` (and ``exclude``).

    ``stable_ties``: equal scores rank by the lower item index (a full stable sort per user instead of
    ``topk``, whose order among ties is unspecified); the popularity baseline needs it, as counts tie often.
    """
    n_items = item_emb.shape[0]
    ks = sorted({int(k) for k in ks})
    kmax = min(max(ks), n_items)
    device = item_emb.device
    train, heldout = train.tocsr(), heldout.tocsr()
    masks = [train] + ([exclude.tocsr()] if exclude is not None else [])
    users = np.flatnonzero(np.diff(heldout.indptr) > 0)
    discount = 1.0 / torch.log2(torch.arange(2, kmax + 2, device=device, dtype=torch.float64))
    idcg_table = torch.cat([torch.zeros(1, device=device, dtype=torch.float64), discount.cumsum(0)])
    sums = {f"{m}@{k}": 0.0 for k in ks for m in METRICS}
    covered = {k: torch.zeros(n_items, dtype=torch.bool, device=device) for k in ks}
    item_t = item_emb.T.contiguous()

    for start in tqdm(range(0, len(users), batch_size), desc="evaluate", unit="batch", disable=not progress):
        rows = users[start:start + batch_size]
        u = torch.from_numpy(rows).to(device)
        scores = user_emb[u] @ item_t
        if item_bias is not None:
            scores += item_bias
        for m in masks:
            scores.index_put_(_batch_coords(m, rows, device), torch.tensor(float("-inf"), device=device))
        if stable_ties:
            top_scores, top = torch.sort(scores, dim=1, descending=True, stable=True)
            top_scores, top = top_scores[:, :kmax], top[:, :kmax]
        else:
            top_scores, top = torch.topk(scores, kmax, dim=1, sorted=True)
        # With fewer unmasked items than K, masked (-inf) items fill the tail: never count them as recommended.
        shown = torch.isfinite(top_scores)
        del scores
        # Relevance of the top-K by membership of (row, item) keys: no dense users × items matrix.
        hr, hc = _batch_coords(heldout, rows, device)
        top_keys = torch.arange(len(rows), device=device).unsqueeze(1) * n_items + top
        hits = torch.isin(top_keys, hr * n_items + hc).to(torch.float64)
        n_rel = torch.from_numpy(np.diff(heldout.indptr)[rows]).to(device, torch.float64)
        first = torch.where(hits.any(1), hits.argmax(1), torch.full_like(n_rel, kmax, dtype=torch.long))
        for k in ks:
            kk = min(k, kmax)
            h = hits[:, :kk]
            nh = h.sum(1)
            dcg = (h * discount[:kk]).sum(1)
            idcg = idcg_table[torch.clamp(n_rel, max=kk).long()]
            sums[f"recall@{k}"] += (nh / n_rel).sum().item()
            sums[f"precision@{k}"] += (nh / k).sum().item()
            sums[f"hit@{k}"] += (nh > 0).sum().item()
            sums[f"ndcg@{k}"] += (dcg / idcg).sum().item()
            sums[f"mrr@{k}"] += torch.where(first < kk, 1.0 / (first + 1).to(torch.float64), 0.0).sum().item()
            covered[k][top[:, :kk][shown[:, :kk]]] = True

    n = max(len(users), 1)
    out = {key: val / n for key, val in sums.items()}
    out.update({f"coverage@{k}": covered[k].sum().item() / n_items for k in ks})
    out["n_users"] = float(len(users))
    return out


def evaluate_dataset(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    dataset: Dataset,
    split: str = "valid",
    *,
    item_bias: torch.Tensor | None = None,
    mask_valid: bool = False,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int = 1024,
    progress: bool = False,
    stable_ties: bool = False,
) -> dict[str, float]:
    """Evaluate on ``dataset``'s valid or test split, masking training items (and valid items at test
    time when ``mask_valid``); ``stable_ties`` as for ``evaluate_embeddings``."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', not {split!r}")
    exclude = dataset.csr("valid") if (split == "test" and mask_valid) else None
    return evaluate_embeddings(user_emb, item_emb, dataset.csr("train"), dataset.csr(split),
                               item_bias=item_bias, exclude=exclude, ks=ks, batch_size=batch_size,
                               progress=progress, stable_ties=stable_ties)
