"""The prepared splits (and item table) as ``mlflow.data`` inputs of a run: name, source, schema, row count
and a digest derived from the prepared dataset's own digest. Only metadata is logged, never the rows."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd

# MLflow's context names for the three splits.
CONTEXTS = {"train": "training", "valid": "validation", "test": "test"}
MAX_DIGEST = 36  # mlflow's limit on a dataset digest


def split_digest(data_digest: str, split: str) -> str:
    """``<first 24 hex of the data digest>:<split>``: readable, traceable to manifest.json, within 36 chars."""
    digest = f"{data_digest[:24]}:{split}"
    if len(digest) > MAX_DIGEST:  # an unusually long split name: hash it instead
        digest = hashlib.sha256(f"{data_digest}:{split}".encode()).hexdigest()[:MAX_DIGEST]
    return digest


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Both local-file source classes match a path; the integer-schema hint is about model signatures."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        yield


def _log(df: pd.DataFrame, source: str, name: str, digest: str, context: str, tags: dict[str, str]) -> None:
    import mlflow
    import mlflow.data

    with _quiet():
        ds = mlflow.data.from_pandas(df, source=source, name=name, digest=digest)
        mlflow.log_input(ds, context=context, tags=tags)


def log_splits(frames: Mapping[str, pd.DataFrame], data_path: str | Path, data_digest: str,
               splits: tuple[str, ...] = ("train", "valid", "test")) -> None:
    """Log ``frames[split]`` (from ``DATA/<split>.parquet``) as inputs with contexts training/validation/test."""
    root = Path(data_path).resolve()
    tags = {"data_digest": data_digest, "data_path": str(root)}
    for split in splits:
        _log(frames[split], str(root / f"{split}.parquet"), split, split_digest(data_digest, split),
             CONTEXTS[split], tags)


def log_items(items: pd.DataFrame, data_path: str | Path, items_digest: str, data_digest: str | None) -> None:
    """The item table that ``gatrec embed`` read, as an input with context ``features``."""
    root = Path(data_path).resolve()
    _log(items, str(root / "items.parquet"), "items", split_digest(items_digest, "items"), "features",
         {"items_digest": items_digest, "data_digest": str(data_digest or "")})
