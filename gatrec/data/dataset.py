"""The prepared dataset folder written by ``gatrec prepare`` and read by every later step.

Layout (all ids are contiguous ints starting at 0)::

    train.parquet / valid.parquet / test.parquet   user, item[, timestamp][, rating]
    users.parquet                                  user, user_id
    items.parquet                                  item, item_id[, title, description, brand, categories, image]
    manifest.json                                  source, counts, cleaning, split protocol + seed, digest,
                                                   size + sha256 of each parquet file
    .gatrec-verified.json                          size + mtime of each file when last hashed (a cache)

Loading checks every parquet file against the manifest before reading it: a file whose size and mtime
match the cache is trusted; otherwise it is hashed, and a digest that differs stops with an error naming
the file (the manifest's ``digest`` is what runs record and the promotion gate compares, so it must
describe the files that are really there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from gatrec import log as glog
from gatrec.errors import DataError
from gatrec.fsutil import file_digest, write_json

log = glog.get(__name__)

SPLITS = ("train", "valid", "test")
TABLES = (*SPLITS, "users", "items")
MANIFEST = "manifest.json"
VERIFIED = ".gatrec-verified.json"


def _stat(f: Path) -> list[int]:
    st = f.stat()
    return [st.st_size, st.st_mtime_ns]


def record_files(folder: str | Path) -> dict[str, dict]:
    """Size and sha256 of each parquet file in ``folder`` (for the manifest's ``files``); also writes the
    size+mtime cache that lets :meth:`Dataset.load` skip hashing unchanged files."""
    folder = Path(folder)
    files = {f"{name}.parquet": {"bytes": (folder / f"{name}.parquet").stat().st_size,
                                 "sha256": file_digest(folder / f"{name}.parquet")} for name in TABLES}
    write_json(folder / VERIFIED, {name: _stat(folder / name) for name in files})
    return files


def verify_files(path: str | Path, manifest: dict) -> None:
    """Raise DataError naming the first parquet file that is missing or differs from the manifest."""
    path = Path(path)
    expected = manifest.get("files")
    if not expected:
        if "created_by" in manifest:  # written by a gatrec from before file digests
            log.warning("prepared data not verified: manifest.json has no file digests; rerun `gatrec prepare`",
                        data=str(path))
        return
    try:
        seen = json.loads((path / VERIFIED).read_text())
    except (OSError, ValueError):
        seen = {}
    hashed = False
    for name, entry in expected.items():
        f = path / name
        if not f.is_file():
            raise DataError("missing from the prepared dataset", file=f)
        stat = _stat(f)
        if seen.get(name) == stat and stat[0] == entry["bytes"]:
            continue
        if stat[0] != entry["bytes"] or file_digest(f) != entry["sha256"]:
            raise DataError(f"does not match manifest.json ({stat[0]:,} bytes, manifest says {entry['bytes']:,}"
                            f"{'' if stat[0] != entry['bytes'] else ' but another sha256'}): the file changed "
                            "after `gatrec prepare`; prepare the data again", file=f)
        seen[name], hashed = stat, True
    if hashed:  # e.g. a copied folder (new mtimes): remember, so the next load is fast again
        try:
            write_json(path / VERIFIED, seen)
        except OSError:
            pass  # a read-only folder is verified by hash each time


def read_table(f: Path) -> pd.DataFrame:
    """One parquet file of the prepared folder; an unreadable (e.g. truncated) file names itself."""
    try:
        return pd.read_parquet(f)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read parquet ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                        file=f) from None


@dataclass
class Dataset:
    path: Path
    manifest: dict
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    _csr: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise DataError("not a prepared dataset (no manifest.json); run `gatrec prepare` first", file=path)
        try:
            manifest = json.loads(mpath.read_text())
        except ValueError as exc:
            raise DataError(f"not valid JSON ({exc})", file=mpath) from None
        verify_files(path, manifest)
        frames = {}
        for name in TABLES:
            f = path / f"{name}.parquet"
            if not f.is_file():
                raise DataError("missing from the prepared dataset", file=f)
            frames[name] = read_table(f)
        return cls(path=path, manifest=manifest, **frames)

    @property
    def n_users(self) -> int:
        return int(self.manifest["n_users"])

    @property
    def n_items(self) -> int:
        return int(self.manifest["n_items"])

    @property
    def digest(self) -> str:
        """Content digest of the prepared data (interactions + split), stable across machines."""
        return str(self.manifest["digest"])

    @property
    def split_protocol(self) -> str:
        return str(self.manifest["split"]["protocol"])

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    def csr(self, name: str) -> sp.csr_matrix:
        """Binary user × item matrix of one split (cached)."""
        if name not in self._csr:
            df = self.split(name)
            data = np.ones(len(df), dtype=np.float32)
            m = sp.csr_matrix((data, (df["user"].to_numpy(), df["item"].to_numpy())),
                              shape=(self.n_users, self.n_items))
            m.sum_duplicates()
            m.data[:] = 1.0
            self._csr[name] = m
        return self._csr[name]

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Training interaction count per item."""
        return np.bincount(self.train["item"].to_numpy(), minlength=self.n_items).astype(np.float32)
