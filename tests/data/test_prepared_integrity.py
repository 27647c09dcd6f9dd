"""A prepared folder is checked against its manifest when loaded: an edited or truncated parquet file is
refused with its name (the manifest's digest is what runs record and the promotion gate trusts)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gatrec.data.dataset import VERIFIED, Dataset
from gatrec.data.prepare import prepare_dataset
from gatrec.errors import DataError


@pytest.fixture
def data(tmp_path, make_folder, make_rows):
    raw = make_folder(tmp_path / "raw", make_rows(n_users=30, n_items=12, per_user=8))
    return prepare_dataset(raw, tmp_path / "data", kcore=0)


def _drop_rows(path, n):
    df = pd.read_parquet(path)
    pq.write_table(pa.Table.from_pandas(df.iloc[n:], preserve_index=False), path)


def test_edited_split_is_refused_naming_the_file(data):
    Dataset.load(data)
    _drop_rows(data / "train.parquet", 5)
    with pytest.raises(DataError, match=r"train\.parquet: does not match manifest\.json") as err:
        Dataset.load(data)
    assert err.value.file == str(data / "train.parquet")


def test_same_size_different_bytes_is_caught_by_the_hash(data):
    f = data / "items.parquet"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"items\.parquet: does not match manifest\.json .*another sha256"):
        Dataset.load(data)


def test_copied_folder_is_rehashed_once_then_fast(tmp_path, data):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy, copy_function=shutil.copyfile)  # new mtimes
    seen_before = json.loads((copy / VERIFIED).read_text())
    ds = Dataset.load(copy)
    assert len(ds.train) > 0
    seen_after = json.loads((copy / VERIFIED).read_text())
    assert seen_after != seen_before  # the cache now describes the copies
    assert seen_after["train.parquet"][1] == os.stat(copy / "train.parquet").st_mtime_ns


def test_truncated_parquet_is_one_line_naming_the_file(data):
    f = data / "train.parquet"
    f.write_bytes(f.read_bytes()[:200])
    proc = subprocess.run([sys.executable, "-m", "gatrec", "train", "--data", str(data), "--model", "mf",
                           "--epochs", "1", "--no-mlflow", "--out", str(data.parent / "run")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and f"{f}: does not match manifest.json" in lines[0]


def test_unreadable_parquet_without_digests_names_the_file(data):
    m = json.loads((data / "manifest.json").read_text())
    del m["files"]  # a hand-made folder, without digests: the read error itself names the file
    (data / "manifest.json").write_text(json.dumps(m))
    f = data / "valid.parquet"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DataError, match=r"valid\.parquet: cannot read parquet"):
        Dataset.load(data)


def test_items_are_read_alone_from_a_folder_with_only_items_and_manifest(tmp_path, data):
    part = tmp_path / "items-only"
    part.mkdir()
    for name in ("items.parquet", "manifest.json"):
        shutil.copyfile(data / name, part / name)
    items, manifest = Dataset.load_items(part)  # what `gatrec embed` reads; no split files needed
    assert manifest["n_items"] == len(items) and items["item"].tolist() == list(range(len(items)))
    assert items.equals(Dataset.load(data).items.sort_values("item").reset_index(drop=True))


def test_items_read_alone_are_verified_against_the_manifest(data):
    _drop_rows(data / "items.parquet", 1)
    with pytest.raises(DataError, match=r"items\.parquet: does not match manifest\.json"):
        Dataset.load_items(data)


def test_items_digest_is_the_record_while_unchanged_else_the_file_hashed(data):
    from gatrec.data.dataset import items_file_digest
    from gatrec.fsutil import file_digest

    manifest = json.loads((data / "manifest.json").read_text())
    f = data / "items.parquet"
    assert items_file_digest(data, manifest) == manifest["files"]["items.parquet"]["sha256"] == file_digest(f)
    assert Dataset.load(data).items_digest == file_digest(f)
    _drop_rows(f, 1)  # not the recorded file any more: the digest describes what is there now
    assert items_file_digest(data, manifest) == file_digest(f) != manifest["files"]["items.parquet"]["sha256"]
    assert items_file_digest(data / "absent", manifest) is None
