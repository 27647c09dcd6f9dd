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


def verify_files(path: str | Path, manifest: dict, names: tuple[str, ...] | None = None) -> None:
    """Raise DataError naming the first parquet file (of ``names``, default all) that is missing or differs
    from the manifest."""
    path = Path(path)
    expected = manifest.get("files")
    if not expected:
        if "created_by" in manifest:  # written by a gatrec from before file digests
            log.warning("prepared data not verified: manifest.json has no file digests; rerun `gatrec prepare`",
                        data=str(path))
        return
    if names is not None:
        expected = {name: entry for name, entry in expected.items() if name in names}
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


def read_manifest(path: str | Path) -> dict:
    """The prepared folder's manifest.json; a missing or unparsable one stops with a DataError."""
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise DataError("not a prepared dataset (no manifest.json); run `gatrec prepare` first", file=path)
    try:
        return json.loads(mpath.read_text())
    except ValueError as exc:
        raise DataError(f"not valid JSON ({exc})", file=mpath) from None


def items_file_digest(path: str | Path, manifest: dict | None = None) -> str | None:
    """sha256 of the folder's items.parquet as it is now (None if there is none): the manifest's record when
    the file's size and mtime are those last verified, else the file hashed."""
    f = Path(path) / "items.parquet"
    if not f.is_file():
        return None
    recorded = ((manifest or {}).get("files") or {}).get("items.parquet", {}).get("sha256")
    if recorded:
        try:
            seen = json.loads((Path(path) / VERIFIED).read_text()).get("items.parquet")
        except (OSError, ValueError, AttributeError):
            seen = None
        if seen == _stat(f):
            return str(recorded)
    return file_digest(f)


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
        manifest = read_manifest(path)
        verify_files(path, manifest)
        frames = {}
        for name in TABLES:
            f = path / f"{name}.parquet"
            if not f.is_file():
                raise DataError("missing from the prepared dataset", file=f)
            frames[name] = read_table(f)
        return cls(path=path, manifest=manifest, **frames)

    @staticmethod
    def load_items(path: str | Path) -> tuple[pd.DataFrame, dict]:
        """(items table sorted by ``item``, manifest) of a prepared folder, reading nothing else: what
        ``gatrec embed`` needs, so a folder with items.parquet and manifest.json alone will do. The file is
        verified against the manifest (where it records it) and its ``item`` column against ``n_items``."""
        path = Path(path)
        manifest = read_manifest(path)
        f = path / "items.parquet"
        if not f.is_file():
            raise DataError("missing from the prepared dataset", file=f)
        verify_files(path, manifest, names=("items.parquet",))
        items = read_table(f)
        if "item" not in items.columns:
            raise DataError("column missing", file=f, field="item")
        n, got = int(manifest["n_items"]), items["item"].to_numpy()
        bad = (got < 0) | (got >= n) | items["item"].duplicated().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"row {row}: item {got[row]} is outside 0..{n - 1} (n_items in manifest.json) or "
                            "repeated", file=f, line=row, field="item")
        if len(got) != n:
            raise DataError(f"{len(got)} rows but manifest.json says n_items={n}", file=f, field="item")
        return items.sort_values("item", kind="stable").reset_index(drop=True), manifest

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
    def items_digest(self) -> str:
        """sha256 of items.parquet (what the feature folder records as ``items_digest``); the files were
        verified against the manifest when loaded, so its record is used where it has one."""
        recorded = (self.manifest.get("files") or {}).get("items.parquet", {}).get("sha256")
        return str(recorded) if recorded else items_file_digest(self.path) or ""

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
