"""``gatrec prepare``: read raw data, clean it, split it, and write the prepared dataset folder.

The folder is built in a temp directory and renamed into place (``fsutil.atomic_dir``), so a failure
never leaves half a dataset and an existing good output is only replaced on success. Only a folder that
is a prepared dataset is replaced (``fsutil.guard_output``), unless ``force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gatrec import __version__
from gatrec.data import clean
from gatrec.data.dataset import MANIFEST, SPLITS, record_files
from gatrec.data.readers import FORMATS, RawData, read_raw
from gatrec.data.readers.base import TEXT_FIELDS
from gatrec.data.split import PROTOCOLS, split
from gatrec.errors import DataError, GatrecError, invalid_options
from gatrec.fsutil import atomic_dir, file_digest, guard_output, write_json
from gatrec.log import get

log = get(__name__)
FORMAT_VERSION = 1
OUTPUT_KIND = "prepared"


class PrepareConfig(BaseModel):
    """Everything ``prepare`` needs; validated before any file is read."""

    model_config = ConfigDict(extra="forbid")

    input: Path
    out: Path
    fmt: str = "auto"
    split: str = "mmrec"
    seed: int = Field(0, ge=0)
    kcore: int = Field(5, ge=0, description="minimum interactions per user and item; 0 disables")
    min_rating: float | None = Field(None, description="keep interactions with rating >= this")
    category: str | None = Field(None, description="Amazon category when a folder holds several")
    force: bool = Field(False, description="replace --out even if it is not a prepared dataset folder")

    @field_validator("fmt")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v not in FORMATS:
            raise ValueError(f"unknown format {v!r}; valid formats: {', '.join(FORMATS)}")
        return v

    @field_validator("split")
    @classmethod
    def _known_split(cls, v: str) -> str:
        if v not in PROTOCOLS:
            raise ValueError(f"unknown split {v!r}; valid splits: {', '.join(PROTOCOLS)}")
        return v


def prepare_dataset(input: str | Path, out: str | Path, *, fmt: str = "auto", split: str = "mmrec",
                    seed: int = 0, kcore: int = 5, min_rating: float | None = None,
                    category: str | None = None, force: bool = False) -> Path:
    """Prepare ``input`` into the dataset folder ``out`` and return ``out``."""
    try:
        cfg = PrepareConfig(input=input, out=out, fmt=fmt, split=split, seed=seed, kcore=kcore,
                            min_rating=min_rating, category=category, force=force)
    except ValidationError as exc:
        raise invalid_options(exc, "prepare options", as_flags=False) from None
    return prepare(cfg)


@contextlib.contextmanager
def _stage(name: str, **info: object) -> Iterator[dict]:
    start, extra = time.perf_counter(), dict(info)
    yield extra
    log.info(f"prepare: {name}", seconds=round(time.perf_counter() - start, 3), **extra)


def prepare(cfg: PrepareConfig) -> Path:
    _check_paths(cfg.input, cfg.out)
    guard_output(cfg.out, OUTPUT_KIND, force=cfg.force)
    started = time.perf_counter()
    with _stage("read") as info:
        raw = read_raw(cfg.input, cfg.fmt, cfg.category)
        info["interactions"] = len(raw.interactions)
    df = raw.interactions
    with _stage("clean") as info:
        df, dup = clean.dedupe(df)
        df, low = clean.filter_rating(df, cfg.min_rating)
        if df.empty:
            raise DataError(f"no interaction has rating >= {cfg.min_rating}", field="rating")
        df, core = clean.kcore(df, cfg.kcore)
        inter, users, items = clean.reindex(df)
        info.update(dropped_duplicates=dup, dropped_by_rating=low, dropped_by_kcore=core,
                    users=len(users), items=len(items))
    with _stage("split", protocol=cfg.split) as info:
        parts = split(inter, cfg.split, cfg.seed)
        info.update({k: len(v) for k, v in parts.items()})
    items = _item_table(items, raw.items)
    manifest = {
        "format_version": FORMAT_VERSION,
        "source": _source(cfg, raw),
        "n_users": len(users),
        "n_items": len(items),
        "n_interactions": sum(len(p) for p in parts.values()),
        "counts": {k: len(parts[k]) for k in SPLITS},
        "cleaning": {"kcore": cfg.kcore, "min_rating": cfg.min_rating, "input_interactions": len(raw.interactions),
                     "dropped_duplicates": dup, "dropped_by_rating": low, "dropped_by_kcore": core},
        "split": {"protocol": cfg.split, "seed": cfg.seed},
        "digest": split_digest(parts),
        "created_by": f"gatrec {__version__}",
    }
    with _stage("write", out=str(cfg.out)), atomic_dir(cfg.out, kind=OUTPUT_KIND) as tmp:
        for name in SPLITS:
            _write_parquet(parts[name], tmp / f"{name}.parquet")
        _write_parquet(users, tmp / "users.parquet")
        _write_parquet(items, tmp / "items.parquet")
        manifest["files"] = record_files(tmp)
        write_json(tmp / MANIFEST, manifest)
    log.info("prepare done", out=str(cfg.out), seconds=round(time.perf_counter() - started, 2),
             users=manifest["n_users"], items=manifest["n_items"], **manifest["counts"])
    return cfg.out


def split_digest(parts: dict[str, pd.DataFrame]) -> str:
    """sha256 over (name, length, user int32 LE, item int32 LE) of train, valid, test in that order."""
    h = hashlib.sha256()
    for name in SPLITS:
        df = parts[name]
        h.update(name.encode())
        h.update(np.int64(len(df)).astype("<i8").tobytes())
        h.update(df["user"].to_numpy().astype("<i4").tobytes())
        h.update(df["item"].to_numpy().astype("<i4").tobytes())
    return h.hexdigest()


def _check_paths(inp: Path, out: Path) -> None:
    if not inp.exists():
        raise DataError("input path does not exist", file=inp)
    src = (inp if inp.is_dir() else inp.parent).resolve()
    dst = out.resolve()
    # The output folder is replaced wholesale; it must never be (or contain) the raw data.
    if dst == src or dst in src.parents:
        raise GatrecError(f"--out {out} would replace the input folder {src}; choose another folder")


def _item_table(items: pd.DataFrame, meta: pd.DataFrame | None) -> pd.DataFrame:
    """Item ids plus text fields (empty string where unknown) and ``image`` when the source has images."""
    if meta is None:
        meta = pd.DataFrame({"item_id": pd.Series([], dtype=object)})
    meta = meta.drop_duplicates("item_id").astype({"item_id": object})
    table = items.astype({"item_id": object}).merge(meta, on="item_id", how="left", validate="one_to_one")
    cols = ["item", "item_id", *TEXT_FIELDS] + (["image"] if "image" in meta else [])
    for col in cols[2:]:
        table[col] = table[col].fillna("").astype(str) if col in table else ""
    covered = int(items["item_id"].isin(meta["item_id"]).sum())
    log.info("item metadata", items=len(items), with_metadata=covered)
    return table[cols]


def _source(cfg: PrepareConfig, raw: RawData) -> dict:
    files = [{"name": p.name, "path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_digest(p)}
             for p in raw.files]
    return {"path": str(cfg.input.resolve()), "format": raw.format, "category": cfg.category, "files": files}


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    # preserve_index=False: no stray index column, and identical bytes for identical frames.
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
