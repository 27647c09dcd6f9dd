"""Train/valid/test split protocols, vectorised over all users at once.

Every protocol orders each user's interactions (randomly or by time), takes per-user valid/test
counts, and labels positions from the end of that order: ``... train | valid | test``.

- ``mmrec``: MMRec's ``preprocessing/1splitting.ipynb`` (enoche/MMRec): interactions shuffled (seeded),
  then per user with n interactions: n < 10 → 1 valid, 1 test; otherwise ``int(n * 0.2)`` held out,
  of which ``// 2`` valid and the rest test (n=25 → 20/2/3). Users with n < 3 keep everything in
  train (MMRec would give them no training item, and they would then be dropped from valid/test).
- ``user-temporal``: the same per-user counts (8:1:1), ordered by timestamp (ties by input order).
- ``leave-one-out``: last interaction test, second-last valid, rest train; n < 3 → all train.

Valid/test rows of users without any training interaction are dropped (a safety net; the rules above
always leave at least one training interaction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gatrec.errors import DataError

PROTOCOLS = ("mmrec", "user-temporal", "leave-one-out")
TRAIN, VALID, TEST = 0, 1, 2


def holdout_counts(n: np.ndarray, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (n_valid, n_test) for interaction counts ``n``."""
    n = np.asarray(n, dtype=np.int64)
    if protocol == "leave-one-out":
        one = (n >= 3).astype(np.int64)
        return one, one.copy()
    held = np.where(n < 10, 2, n // 5)  # int(n * 0.2) == n // 5 for every int n (0.2 rounds up in binary)
    n_valid = np.where(n < 10, 1, held // 2)
    n_test = held - n_valid
    small = n < 3
    return np.where(small, 0, n_valid), np.where(small, 0, n_test)


def label(users: np.ndarray, order_key: np.ndarray, protocol: str) -> np.ndarray:
    """Split label (TRAIN/VALID/TEST) for every row, ordering each user's rows by ``order_key``."""
    users = np.asarray(users, dtype=np.int64)
    order = np.lexsort((order_key, users))          # by user, then by key
    counts = np.bincount(users)
    starts = np.cumsum(counts) - counts
    su = users[order]
    pos = np.arange(len(users)) - starts[su]        # 0-based position in the user's order
    n_valid, n_test = holdout_counts(counts, protocol)
    from_end = counts[su] - pos                     # n - pos: 1 for the last row
    lab_sorted = np.where(from_end <= n_test[su], TEST,
                          np.where(from_end <= n_test[su] + n_valid[su], VALID, TRAIN)).astype(np.int8)
    out = np.empty(len(users), dtype=np.int8)
    out[order] = lab_sorted
    return out


def split(df: pd.DataFrame, protocol: str, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Split reindexed interactions (``user``, ``item``[, ``timestamp``, ``rating``]) into three frames.

    Each returned frame is sorted by (user, item), a canonical order that makes the digest and the
    parquet bytes independent of input row order for ``mmrec``.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown split {protocol!r}; valid splits: {', '.join(PROTOCOLS)}")
    users = df["user"].to_numpy()
    if protocol == "mmrec":
        # Shuffle in canonical (user, item) order so the split does not depend on input row order.
        canon = np.lexsort((df["item"].to_numpy(), users))
        key = np.empty(len(df), dtype=np.int64)
        key[canon] = np.random.default_rng(seed).permutation(len(df))
    else:
        if "timestamp" not in df:
            raise DataError(f"the {protocol} split needs a 'timestamp' field, which the input lacks",
                            field="timestamp")
        # np.lexsort is stable, so equal timestamps keep their input order.
        key = df["timestamp"].to_numpy()
    lab = label(users, key, protocol)
    train_users = np.zeros(int(users.max()) + 1 if len(users) else 0, dtype=bool)
    train_users[users[lab == TRAIN]] = True
    lab[(lab != TRAIN) & ~train_users[users]] = -1
    out = {}
    for name, code in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        part = df[lab == code]
        out[name] = part.sort_values(["user", "item"], kind="stable").reset_index(drop=True)
    return out
