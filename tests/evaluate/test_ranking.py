"""The batched evaluator against a slow, obviously-correct reference and against PyG's LinkPred metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric import metrics as pygm

from gatrec.evaluate.ranking import evaluate_embeddings


def random_problem(seed: int, n_users=60, n_items=90, dim=8, density=0.08, bias=False):
    rng = np.random.default_rng(seed)
    inter = rng.random((n_users, n_items)) < density
    part = rng.integers(0, 3, size=inter.shape)  # 0 train, 1 valid, 2 test
    train = sp.csr_matrix(inter & (part == 0), dtype=np.float32)
    valid = sp.csr_matrix(inter & (part == 1), dtype=np.float32)
    test = sp.csr_matrix(inter & (part == 2), dtype=np.float32)
    u = torch.from_numpy(rng.normal(size=(n_users, dim)).astype(np.float32))
    i = torch.from_numpy(rng.normal(size=(n_items, dim)).astype(np.float32))
    b = torch.from_numpy(rng.normal(size=n_items).astype(np.float32)) if bias else None
    return u, i, b, train, valid, test


def reference(u, i, b, train, heldout, ks, exclude=None):
    """One user at a time, plain Python: the definition of each metric."""
    scores = (u @ i.T).numpy().astype(np.float64)
    if b is not None:
        scores = scores + b.numpy()
    n_items = scores.shape[1]
    out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg", "precision", "hit", "mrr")}
    recommended = {k: set() for k in ks}
    for user in range(scores.shape[0]):
        truth = set(heldout[user].indices.tolist())
        if not truth:
            continue
        seen = set(train[user].indices.tolist()) | (set(exclude[user].indices.tolist()) if exclude is not None else set())
        ranked = [j for j in np.argsort(-scores[user], kind="stable") if j not in seen]
        for k in ks:
            top = ranked[:k]
            recommended[k].update(top)
            rel = [1.0 if j in truth else 0.0 for j in top]
            dcg = sum(r / math.log2(pos + 2) for pos, r in enumerate(rel))
            idcg = sum(1.0 / math.log2(pos + 2) for pos in range(min(len(truth), k)))
            first = next((pos for pos, r in enumerate(rel) if r), None)
            out[f"recall@{k}"].append(sum(rel) / len(truth))
            out[f"precision@{k}"].append(sum(rel) / k)
            out[f"hit@{k}"].append(float(sum(rel) > 0))
            out[f"ndcg@{k}"].append(dcg / idcg)
            out[f"mrr@{k}"].append(0.0 if first is None else 1.0 / (first + 1))
    res = {key: float(np.mean(v)) for key, v in out.items()}
    res.update({f"coverage@{k}": len(recommended[k]) / n_items for k in ks})
    return res


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_matches_reference(seed, bias):
    u, i, b, train, valid, test = random_problem(seed, bias=bias)
    ks = (1, 5, 10, 20)
    got = evaluate_embeddings(u, i, train, test, item_bias=b, ks=ks, batch_size=7)
    want = reference(u, i, b, train, test, ks)
    for key, val in want.items():
        assert got[key] == pytest.approx(val, abs=1e-9), key
    assert got["n_users"] == sum(1 for r in range(test.shape[0]) if test[r].nnz)


def test_exclude_masks_validation_items():
    u, i, b, train, valid, test = random_problem(3)
    ks = (5, 10)
    got = evaluate_embeddings(u, i, train, test, exclude=valid, ks=ks, batch_size=16)
    want = reference(u, i, b, train, test, ks, exclude=valid)
    for key, val in want.items():
        assert got[key] == pytest.approx(val, abs=1e-9), key
    assert got != evaluate_embeddings(u, i, train, test, ks=ks)


def test_batch_size_does_not_change_results():
    u, i, b, train, _, test = random_problem(4, n_users=200)
    a = evaluate_embeddings(u, i, train, test, batch_size=1)
    c = evaluate_embeddings(u, i, train, test, batch_size=10_000)
    assert a == pytest.approx(c, abs=1e-12)


@pytest.mark.parametrize("k", [5, 20])
def test_agrees_with_pyg_linkpred_metrics(k):
    u, i, b, train, _, test = random_problem(5)
    got = evaluate_embeddings(u, i, train, test, ks=(k,))
    # PyG's metrics take the top-k prediction matrix: build it with the same masking.
    scores = u @ i.T
    tr = train.tocoo()
    scores[torch.from_numpy(tr.row).long(), torch.from_numpy(tr.col).long()] = float("-inf")
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    pred = torch.topk(scores[torch.from_numpy(users)], k, dim=1).indices
    remap = {int(user): n for n, user in enumerate(users)}
    te = test.tocoo()
    label = torch.tensor([[remap[int(r)] for r in te.row], te.col.tolist()], dtype=torch.long)
    pairs = {"recall": pygm.LinkPredRecall, "precision": pygm.LinkPredPrecision,
             "ndcg": pygm.LinkPredNDCG, "mrr": pygm.LinkPredMRR, "hit": pygm.LinkPredHitRatio}
    for name, cls in pairs.items():
        metric = cls(k)
        metric.update(pred, label)
        assert got[f"{name}@{k}"] == pytest.approx(float(metric.compute()), abs=1e-6), name


def test_perfect_and_worst_rankings():
    # Item embeddings chosen so that user 0 ranks exactly its held-out items first.
    n_items = 30
    item = torch.eye(n_items)
    user = torch.zeros(1, n_items)
    user[0, [3, 7]] = torch.tensor([2.0, 1.0])
    heldout = sp.csr_matrix(([1.0, 1.0], ([0, 0], [3, 7])), shape=(1, n_items))
    train = sp.csr_matrix((1, n_items))
    got = evaluate_embeddings(user, item, train, heldout, ks=(2, 10))
    assert got["recall@2"] == got["ndcg@2"] == got["hit@2"] == got["mrr@2"] == 1.0
    assert got["precision@2"] == 1.0 and got["precision@10"] == pytest.approx(0.2)
    # Masking the held-out items as "seen" makes every metric zero.
    got = evaluate_embeddings(user, item, heldout, heldout, ks=(10,))
    assert got["recall@10"] == got["ndcg@10"] == 0.0


def test_k_larger_than_catalogue():
    u, i, b, train, _, test = random_problem(6, n_items=12, density=0.3)
    got = evaluate_embeddings(u, i, train, test, ks=(50,))
    want = reference(u, i, b, train, test, (50,))
    for key in ("recall@50", "ndcg@50", "hit@50", "mrr@50", "coverage@50"):
        assert got[key] == pytest.approx(want[key], abs=1e-9)
