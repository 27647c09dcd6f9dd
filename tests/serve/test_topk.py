"""The scorer shared by the pyfunc and the service: exact order and ties, batch independence, ANN recall."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from gatrec.registry import pyfunc
from gatrec.serve import topk
from gatrec.serve.batcher import Batcher
from gatrec.serve.topk import Catalogue, Query, product, top_k


@pytest.mark.parametrize("seed", range(5))
def test_top_k_is_the_stable_sort_with_ties_and_exclusions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 300).astype(np.float32)  # many ties
    scores[rng.choice(300, 40, replace=False)] = -np.inf
    for k in (1, 5, 17, 100, 259, 260, 261, 300, 500):
        expected = np.argsort(-scores, kind="stable")[:min(k, int(np.isfinite(scores).sum()))]
        assert top_k(scores, k).tolist() == expected.tolist(), k
    dense = rng.standard_normal(1000).astype(np.float32)
    assert top_k(dense, 10).tolist() == np.argsort(-dense, kind="stable")[:10].tolist()
    assert top_k(dense, 0).size == 0


def test_product_rows_do_not_depend_on_their_batch() -> None:
    rng = np.random.default_rng(0)
    items = rng.standard_normal((5000, 64), dtype=np.float32)
    queries = rng.standard_normal((40, 64), dtype=np.float32)
    full = product(queries, items)
    for n in (1, 2, 3, 7, 33):
        assert np.array_equal(product(queries[:n], items), full[:n]), n
    assert all(np.array_equal(product(queries[i:i + 1], items)[0], full[i]) for i in range(0, 40, 9))


@pytest.mark.parametrize(("n_items", "dim"), [(400, 16), (6001, 32), (4096, 64)])
def test_product_rows_do_not_depend_on_their_batch_at_any_size(n_items: int, dim: int) -> None:
    # Small catalogues are where BLAS switches kernels by shape; slices and padding must hide that.
    rng = np.random.default_rng(n_items)
    items = rng.standard_normal((n_items, dim), dtype=np.float32)
    queries = rng.standard_normal((21, dim), dtype=np.float32)
    full = product(queries, items)
    np.testing.assert_allclose(full, queries @ items.T, rtol=1e-5, atol=1e-5)
    for start, n in ((0, 1), (3, 1), (2, 5), (0, 9), (4, 17)):
        assert np.array_equal(product(queries[start:start + n], items), full[start:start + n]), (start, n)


def _folder(root: Path, n_users: int = 50, n_items: int = 400, dim: int = 16, bias: bool = True) -> Path:
    rng = np.random.default_rng(7)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "item_embeddings.npy", rng.standard_normal((n_items, dim), dtype=np.float32))
    np.save(root / "user_embeddings.npy", rng.standard_normal((n_users, dim), dtype=np.float32))
    if bias:
        np.save(root / "item_bias.npy", rng.standard_normal(n_items).astype(np.float32))
    indptr = np.arange(0, 5 * n_users + 1, 5, dtype=np.int64)
    np.savez(root / topk.SEEN_FILE, indptr=indptr, indices=rng.integers(0, n_items, 5 * n_users).astype(np.int32))
    np.save(root / topk.POPULARITY_FILE, rng.integers(0, 4, n_items).astype(np.float32))
    (root / "user_ids.json").write_text(json.dumps([f"u{u}" for u in range(n_users)]))
    (root / "item_ids.json").write_text(json.dumps([f"i{i}" for i in range(n_items)]))
    (root / "model.json").write_text(json.dumps({"model": "mf", "dim": dim}))
    return root


def test_catalogue_batches_equal_single_queries(tmp_path: Path) -> None:
    cat = Catalogue(_folder(tmp_path / "m"))
    queries = [Query(user_id=f"u{u}", k=k) for u, k in zip(range(50), [1, 3, 10, 400] * 13, strict=False)]
    queries += [Query(history=["i1", "i2", "nope"], k=5), Query(user_id="ghost", k=7),
                Query(user_id="u3", exclude_seen=False, exclude=["i0"], k=400)]
    batch = cat.recommend(queries)
    assert [cat.recommend([q])[0] for q in queries] == batch
    assert [r.source for r in batch[-3:]] == ["history", "popularity", "user"]
    assert batch[-3].unknown_ids == ["nope"] and batch[-2].unknown_ids == ["ghost"]
    assert "i0" not in batch[-1].item_ids and len(batch[-1].item_ids) == 399
    seen = {f"i{i}" for i in cat.seen_indices[cat.seen_indptr[3]:cat.seen_indptr[4]]}
    assert seen <= set(batch[-1].item_ids) and not seen & set(cat.recommend([Query(user_id="u3", k=400)])[0].item_ids)


def test_folder_names_agree_with_the_pyfunc() -> None:
    assert (topk.SEEN_FILE, topk.POPULARITY_FILE, topk.DEFAULT_K) == (
        pyfunc.SEEN_FILE, pyfunc.POPULARITY_FILE, pyfunc.DEFAULT_K)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_index_recall(tmp_path: Path, kind: str) -> None:
    from gatrec.serve.ann import ApproxIndex

    cat = Catalogue(_folder(tmp_path / "m", n_users=50, n_items=3000, dim=16))
    queries = [Query(user_id=f"u{u}", k=10) for u in range(50)]
    exact = cat.recommend(queries)
    cat.index = ApproxIndex(cat.item_emb, cat.item_bias, kind=kind, ivf_lists=32, nprobe=8)
    approx = cat.recommend(queries)
    recall = np.mean([len(set(a.item_ids) & set(e.item_ids)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.8
    seen = [set(cat.item_ids[cat.seen_indices[cat.seen_indptr[u]:cat.seen_indptr[u + 1]]]) for u in range(50)]
    assert all(len(a.item_ids) == 10 and not s & set(a.item_ids) for a, s in zip(approx, seen, strict=True))
    assert all(np.all(np.diff(a.scores) <= 0) for a in approx)


def test_batcher_groups_concurrent_calls_and_passes_errors() -> None:
    calls: list[list[int]] = []

    def double(xs):
        calls.append(list(xs))
        if -1 in xs:
            raise ValueError("bad input")
        return [2 * x for x in xs]

    async def scenario() -> None:
        b = Batcher(double, max_batch=4)
        assert await asyncio.gather(*(b(i) for i in range(10))) == [2 * i for i in range(10)]
        assert max(len(c) for c in calls) <= 4 and len(calls) < 10
        with pytest.raises(ValueError, match="bad input"):
            await b(-1)
        assert await b(3) == 6

    asyncio.run(scenario())
