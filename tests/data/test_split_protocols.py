"""Split protocols: exact per-user counts (MMRec's rule), temporal order, leave-one-out, determinism."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from gatrec.data.split import holdout_counts, split
from gatrec.errors import DataError

SIZES = [1, 2, 3, 9, 10, 20, 25]  # interactions of users 0..6


def dataset(sizes: list[int] = SIZES, seed: int = 0) -> pd.DataFrame:
    """Users with the given history lengths; timestamps are a shuffled 0..n-1 per user."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    items = np.concatenate([np.arange(n) for n in sizes]).astype(np.int32)
    ts = np.concatenate([rng.permutation(n) * 100 for n in sizes]).astype(np.int64)
    return pd.DataFrame({"user": users, "item": items, "timestamp": ts})


def per_user(parts: dict[str, pd.DataFrame], name: str) -> list[int]:
    return np.bincount(parts[name]["user"], minlength=len(SIZES)).tolist()


def test_holdout_counts_follow_mmrec():
    n = np.array([1, 2, 3, 9, 10, 14, 15, 19, 20, 25, 30, 100])
    valid, test = holdout_counts(n, "mmrec")
    # n < 10: one each; n >= 10: int(0.2 n) held out, half (floor) valid, rest test; n < 3: all train.
    assert valid.tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 3, 10]
    assert test.tolist() == [0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 10]
    assert holdout_counts(n, "user-temporal")[1].tolist() == test.tolist()
    loo = holdout_counts(n, "leave-one-out")
    assert loo[0].tolist() == loo[1].tolist() == [0, 0] + [1] * 10


def test_mmrec_exact_counts():
    parts = split(dataset(), "mmrec", seed=0)
    assert per_user(parts, "valid") == [0, 0, 1, 1, 1, 2, 2]
    assert per_user(parts, "test") == [0, 0, 1, 1, 1, 2, 3]
    assert per_user(parts, "train") == [1, 2, 1, 7, 8, 16, 20]
    assert (len(parts["train"]), len(parts["valid"]), len(parts["test"])) == (55, 7, 8)
    both = pd.concat(parts.values())
    assert not both.duplicated(["user", "item"]).any() and len(both) == sum(SIZES)


def test_mmrec_is_seeded_and_ignores_input_order():
    df = dataset()
    a, b = split(df, "mmrec", seed=0), split(df, "mmrec", seed=0)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    c = split(shuffled, "mmrec", seed=0)
    for name in a:
        pd.testing.assert_frame_equal(a[name], c[name])
    tests = {tuple(split(df, "mmrec", seed=s)["test"]["item"]) for s in range(5)}
    assert len(tests) > 1  # the held-out items are random, not a fixed position


def test_user_temporal_holds_out_latest():
    df = dataset()
    parts = split(df, "user-temporal")
    assert per_user(parts, "test") == [0, 0, 1, 1, 1, 2, 3]
    for u in range(2, len(SIZES)):
        tr, va, te = (parts[n].loc[parts[n]["user"] == u, "timestamp"] for n in ("train", "valid", "test"))
        assert tr.max() < va.min() and va.max() < te.min()
        n_test = len(te)
        assert sorted(te) == sorted(df.loc[df["user"] == u, "timestamp"])[-n_test:]


def test_user_temporal_ties_keep_input_order():
    df = pd.DataFrame({"user": [0] * 4, "item": [7, 5, 6, 4], "timestamp": [1, 1, 1, 1]})
    parts = split(df, "user-temporal")
    assert parts["valid"]["item"].tolist() == [6] and parts["test"]["item"].tolist() == [4]


def test_leave_one_out_picks_last_items():
    df = dataset()
    parts = split(df, "leave-one-out")
    assert per_user(parts, "valid") == per_user(parts, "test") == [0, 0, 1, 1, 1, 1, 1]
    last = df.sort_values("timestamp").groupby("user").tail(2).sort_values(["user", "timestamp"])
    for u in range(2, len(SIZES)):
        second, first = last.loc[last["user"] == u, "item"].tolist()
        assert parts["valid"].loc[parts["valid"]["user"] == u, "item"].item() == second
        assert parts["test"].loc[parts["test"]["user"] == u, "item"].item() == first


@pytest.mark.parametrize("protocol", ["user-temporal", "leave-one-out"])
def test_temporal_split_without_timestamp_names_the_field(protocol):
    with pytest.raises(DataError, match=f"{protocol} split needs a 'timestamp' field"):
        split(dataset().drop(columns="timestamp"), protocol)


def test_unknown_split_lists_valid_ones():
    with pytest.raises(DataError, match="mmrec, user-temporal, leave-one-out"):
        split(dataset(), "random")


def test_split_scales_to_electronics_size():
    rng = np.random.default_rng(0)
    n_users = 192_000
    sizes = 5 + rng.geometric(0.25, n_users)
    users = np.repeat(np.arange(n_users, dtype=np.int32), sizes)
    df = pd.DataFrame({"user": users, "item": rng.integers(0, 63_000, len(users), dtype=np.int32),
                       "timestamp": rng.integers(0, 10**9, len(users))})
    start = time.perf_counter()
    parts = split(df, "mmrec", seed=0)
    assert time.perf_counter() - start < 10
    assert sum(len(p) for p in parts.values()) == len(df)
    valid, test = holdout_counts(np.bincount(users), "mmrec")
    assert len(parts["valid"]) == valid.sum() and len(parts["test"]) == test.sum()
