"""The pickle-free model export in ``RUNDIR/model/``: embeddings as .npy, metadata and id maps as JSON.

Scoring is ``user_embeddings @ item_embeddings.T (+ item_bias)`` for every model, so evaluation and serving
read this folder without any model code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gatrec.errors import DataError
from gatrec.fsutil import atomic_dir, write_json

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset

FORMAT_VERSION = 1


def _id_list(frame: Any, index_col: str, id_col: str, n: int, file: Path) -> list[str]:
    ids = np.full(n, None, dtype=object)
    idx = frame[index_col].to_numpy()
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise DataError(f"{index_col} outside 0..{n - 1}", file=file, field=index_col)
    ids[idx] = frame[id_col].astype(str).to_numpy()
    filled = np.zeros(n, dtype=bool)
    filled[idx] = True
    if (missing := np.flatnonzero(~filled)).size:
        raise DataError(f"no {id_col} for {index_col} {missing[0]}", file=file, field=id_col)
    return ids.tolist()


def write_export(target: str | Path, *, model: str, user_emb: np.ndarray, item_emb: np.ndarray,
                 item_bias: np.ndarray | None, dataset: Dataset, extra: dict[str, Any] | None = None) -> Path:
    """Write the export folder atomically (a reader never sees a half-written one)."""
    target = Path(target)
    user_emb = np.ascontiguousarray(user_emb, dtype=np.float32)
    item_emb = np.ascontiguousarray(item_emb, dtype=np.float32)
    meta = {
        "format_version": FORMAT_VERSION, "model": model, "dim": int(user_emb.shape[1]),
        "n_users": int(user_emb.shape[0]), "n_items": int(item_emb.shape[0]), "scoring": "dot",
        "has_item_bias": item_bias is not None, "data_path": str(Path(dataset.path).resolve()),
        "data_digest": dataset.digest, "split_protocol": dataset.split_protocol, **(extra or {}),
    }
    user_ids = _id_list(dataset.users, "user", "user_id", dataset.n_users, Path(dataset.path) / "users.parquet")
    item_ids = _id_list(dataset.items, "item", "item_id", dataset.n_items, Path(dataset.path) / "items.parquet")
    with atomic_dir(target) as tmp:
        np.save(tmp / "user_embeddings.npy", user_emb)
        np.save(tmp / "item_embeddings.npy", item_emb)
        if item_bias is not None:
            np.save(tmp / "item_bias.npy", np.ascontiguousarray(item_bias, dtype=np.float32))
        write_json(tmp / "model.json", meta)
        write_json(tmp / "user_ids.json", user_ids)
        write_json(tmp / "item_ids.json", item_ids)
    return target


@dataclass
class ModelExport:
    path: Path
    meta: dict[str, Any]
    user_emb: np.ndarray
    item_emb: np.ndarray
    item_bias: np.ndarray | None = None
    _ids: dict[str, list[str]] = field(default_factory=dict, repr=False)

    def ids(self, kind: str) -> list[str]:
        """Original ``user`` or ``item`` ids, index = internal id."""
        if kind not in self._ids:
            self._ids[kind] = json.loads((self.path / f"{kind}_ids.json").read_text())
        return self._ids[kind]


def load_export(path: str | Path) -> ModelExport:
    """Read and check an export folder (``RUNDIR/model`` or ``RUNDIR``)."""
    path = Path(path)
    if not (path / "model.json").is_file() and (path / "model" / "model.json").is_file():
        path = path / "model"
    mfile = path / "model.json"
    if not mfile.is_file():
        raise DataError("no model export here (model.json missing); did training finish?", file=path)
    try:
        meta = json.loads(mfile.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", file=mfile, line=exc.lineno) from None

    def arr(name: str) -> np.ndarray:
        f = path / name
        if not f.is_file():
            raise DataError("missing from the model export", file=f)
        return np.load(f, allow_pickle=False)

    users, items = arr("user_embeddings.npy"), arr("item_embeddings.npy")
    bias = arr("item_bias.npy") if meta.get("has_item_bias") else None
    for name, a, rows in (("user_embeddings.npy", users, meta.get("n_users")),
                          ("item_embeddings.npy", items, meta.get("n_items"))):
        if a.ndim != 2 or a.shape[0] != rows or a.shape[1] != meta.get("dim"):
            raise DataError(f"shape {a.shape} does not match model.json (rows {rows}, dim {meta.get('dim')})",
                            file=path / name)
    if bias is not None and bias.shape != (items.shape[0],):
        raise DataError(f"shape {bias.shape} != ({items.shape[0]},)", file=path / "item_bias.npy")
    return ModelExport(path=path, meta=meta, user_emb=users, item_emb=items, item_bias=bias)
