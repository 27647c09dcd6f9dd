"""Cleaning: dedupe, rating threshold, iterative k-core, contiguous ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gatrec.data import clean
from gatrec.errors import DataError


def frame(rows: list[tuple], cols: str = "user_id item_id timestamp") -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=cols.split())
    df["user_id"] = df["user_id"].astype(object)
    df["item_id"] = df["item_id"].astype(object)
    return df


def test_dedupe_keeps_earliest_then_input_order():
    df = frame([("u1", "a", 9, 1.0), ("u1", "a", 3, 2.0), ("u2", "b", 5, 3.0), ("u2", "b", 5, 4.0),
                ("u1", "c", 1, 5.0)], "user_id item_id timestamp rating")
    out, dropped = clean.dedupe(df)
    assert dropped == 2
    # u1/a keeps the earlier timestamp 3 (rating 2); u2/b ties at 5, so the first line wins (rating 3).
    assert out["rating"].tolist() == [2.0, 3.0, 5.0]
    assert out[["user_id", "item_id"]].apply(tuple, axis=1).tolist() == [("u1", "a"), ("u2", "b"), ("u1", "c")]


def test_dedupe_without_timestamp_keeps_first_line():
    df = frame([("u1", "a", 1.0), ("u1", "a", 2.0)], "user_id item_id rating")
    out, dropped = clean.dedupe(df)
    assert dropped == 1 and out["rating"].tolist() == [1.0]


def test_rating_threshold():
    df = frame([("u1", "a", 1.0), ("u1", "b", 3.5), ("u2", "a", 4.0)], "user_id item_id rating")
    out, dropped = clean.filter_rating(df, 3.5)
    assert dropped == 1 and out["rating"].tolist() == [3.5, 4.0]
    assert clean.filter_rating(df, None) == (df, 0)
    with pytest.raises(DataError, match="rating"):
        clean.filter_rating(df.drop(columns="rating"), 3.0)


def naive_kcore(pairs: set[tuple[int, int]], k: int) -> set[tuple[int, int]]:
    """Reference: drop one under-degree node at a time until none is left."""
    pairs = set(pairs)
    while True:
        ucount: dict[int, int] = {}
        icount: dict[int, int] = {}
        for u, i in pairs:
            ucount[u] = ucount.get(u, 0) + 1
            icount[i] = icount.get(i, 0) + 1
        bad = next(((u, i) for u, i in sorted(pairs) if ucount[u] < k or icount[i] < k), None)
        if bad is None:
            return pairs
        u, i = bad
        pairs = {p for p in pairs if not ((ucount[u] < k and p[0] == u) or (icount[i] < k and p[1] == i))}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcore_matches_reference_and_leaves_min_degree_k(seed):
    rng = np.random.default_rng(seed)
    # Skewed random graph: many low-degree users/items, so several rounds of removal are needed.
    u = rng.zipf(1.6, 3000) % 300
    i = rng.zipf(1.4, 3000) % 200
    pairs = sorted(set(zip(u.tolist(), i.tolist(), strict=True)))
    df = frame([(f"u{a}", f"i{b}", 0) for a, b in pairs])
    out, dropped = clean.kcore(df, 5)
    assert dropped == len(df) - len(out) > 0
    assert out["user_id"].value_counts().min() >= 5 and out["item_id"].value_counts().min() >= 5
    got = {(int(a[1:]), int(b[1:])) for a, b in zip(out["user_id"], out["item_id"], strict=True)}
    assert got == naive_kcore(set(pairs), 5)


def test_kcore_chain_reaction_and_disable():
    # 2-core: item x has one user, so C-x goes first; then C has one interaction left and goes too.
    rows = [("A", "i1", 0), ("A", "i2", 0), ("B", "i1", 0), ("B", "i2", 0), ("C", "i1", 0), ("C", "x", 0)]
    out, dropped = clean.kcore(frame(rows), 2)
    assert dropped == 2
    assert set(out["user_id"]) == {"A", "B"} and set(out["item_id"]) == {"i1", "i2"}
    same, none = clean.kcore(frame(rows), 0)
    assert none == 0 and len(same) == len(rows)


def test_kcore_that_removes_everything_is_an_error():
    with pytest.raises(DataError, match="5-core is empty"):
        clean.kcore(frame([("u1", "a", 0), ("u2", "b", 0)]), 5)


def test_reindex_sorted_by_original_id():
    df = frame([("u10", "b", 1), ("u2", "a", 2), ("u10", "a", 3)])
    inter, users, items = clean.reindex(df)
    assert users["user_id"].tolist() == ["u10", "u2"]  # text order when ids are not all numeric
    assert items["item_id"].tolist() == ["a", "b"]
    assert inter["user"].tolist() == [0, 1, 0] and inter["item"].tolist() == [1, 0, 0]
    assert inter["user"].dtype == np.int32 and inter["timestamp"].dtype == np.int64
    num, nusers, _ = clean.reindex(frame([("10", "a", 1), ("9", "a", 2)]))
    assert nusers["user_id"].tolist() == ["9", "10"] and num["user"].tolist() == [1, 0]  # numeric order
