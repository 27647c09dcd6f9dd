"""Cleaning of raw interactions: pure functions on DataFrames, each returning what it removed.

Order used by ``prepare``: dedupe → rating threshold → k-core → contiguous ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gatrec.errors import DataError


def dedupe(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Keep the earliest of repeated (user, item) pairs: by timestamp, ties by input order.

    The survivors stay in input order.
    """
    ordered = df.sort_values("timestamp", kind="stable") if "timestamp" in df else df
    keep = ~ordered.duplicated(["user_id", "item_id"], keep="first")
    out = ordered[keep.to_numpy()].sort_index(kind="stable")
    return out, len(df) - len(out)


def filter_rating(df: pd.DataFrame, min_rating: float | None) -> tuple[pd.DataFrame, int]:
    """Keep interactions with ``rating >= min_rating`` (no-op when it is None)."""
    if min_rating is None:
        return df, 0
    if "rating" not in df:
        raise DataError("--min-rating was given but the input has no 'rating' field", field="rating")
    out = df[(df["rating"] >= min_rating).to_numpy()]
    return out, len(df) - len(out)


def kcore(df: pd.DataFrame, k: int) -> tuple[pd.DataFrame, int]:
    """Iteratively drop users and items with fewer than ``k`` interactions until none is left (k=0: off)."""
    if k <= 0 or df.empty:
        return df, 0
    users = pd.factorize(df["user_id"])[0]
    items = pd.factorize(df["item_id"])[0]
    keep = np.ones(len(df), dtype=bool)
    while True:
        # Degrees of the surviving graph; a row survives only if both its ends still have >= k.
        u_deg = np.bincount(users[keep], minlength=users.max() + 1)
        i_deg = np.bincount(items[keep], minlength=items.max() + 1)
        new_keep = keep & (u_deg[users] >= k) & (i_deg[items] >= k)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    if not keep.any():
        raise DataError(f"the {k}-core is empty: k-core filtering removed every interaction "
                        f"(try a smaller --kcore, or 0 to disable)", field="kcore")
    return df[keep], int((~keep).sum())


def id_codes(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous codes for ``ids`` numbered in sorted id order, and the sorted unique ids.

    Ids sort numerically when all are integers (MovieLens), else as text.
    """
    codes, uniq = pd.factorize(ids)
    text = np.asarray(uniq, dtype=str)
    # <= 18 digits keeps the numeric key inside int64.
    if len(text) and np.char.isdigit(text).all() and np.char.str_len(text).max() <= 18:
        order = np.argsort(text.astype(np.int64), kind="stable")
    else:
        order = np.argsort(text, kind="stable")
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank[codes], text[order].astype(object)


def reindex(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Map original ids to contiguous ints 0..n-1 (sorted by original id, so reruns agree).

    Returns the interactions (``user``, ``item`` int32 plus ``timestamp``/``rating`` where known, in
    input order) and the ``users`` (``user``, ``user_id``) and ``items`` (``item``, ``item_id``) tables.
    """
    user, user_ids = id_codes(df["user_id"])
    item, item_ids = id_codes(df["item_id"])
    out = pd.DataFrame({"user": user, "item": item})
    if "timestamp" in df:
        out["timestamp"] = df["timestamp"].to_numpy(dtype=np.int64)
    if "rating" in df:
        out["rating"] = df["rating"].to_numpy(dtype=np.float32)
    users = pd.DataFrame({"user": np.arange(len(user_ids), dtype=np.int32), "user_id": user_ids})
    items = pd.DataFrame({"item": np.arange(len(item_ids), dtype=np.int32), "item_id": item_ids})
    return out, users, items
