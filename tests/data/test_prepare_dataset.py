"""prepare_dataset end to end: output folder, manifest, atomic replace, determinism, real data."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from gatrec.data import Dataset, prepare
from gatrec.data.prepare import prepare_dataset
from gatrec.errors import DataError, GatrecError

FILES = ("train.parquet", "valid.parquet", "test.parquet", "users.parquet", "items.parquet", "manifest.json")


@pytest.fixture
def raw(tmp_path, make_folder, make_rows):
    rows = make_rows(n_users=12, n_items=10, per_user=7)
    rows = [(u, i, t, 1 + (t % 5)) for u, i, t in rows]
    rows += [("u0", "i0", 50, 2), ("u1", "i9", 1, 4)]  # a later duplicate, and a user with only 1 item of i9
    items = [{"item_id": f"i{k}", "title": f"Item {k}", "categories": [["A", "B"], ["A"]]} for k in range(9)]
    return make_folder(tmp_path / "raw", rows, header="user_id,item_id,timestamp,rating", items=items)


def test_writes_the_prepared_folder(tmp_path, raw):
    out = prepare_dataset(raw, tmp_path / "out", kcore=5)
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, ".gatrec-output.json", ".gatrec-verified.json"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["created_by"].startswith("gatrec ")
    assert sorted(m["files"]) == sorted(FILES[:5]) and all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert m["source"]["format"] == "folder"
    assert [f["name"] for f in m["source"]["files"]] == ["interactions.csv", "items.jsonl"]
    assert all(len(f["sha256"]) == 64 for f in m["source"]["files"])
    assert m["cleaning"] == {"kcore": 5, "min_rating": None, "input_interactions": 86,
                             "dropped_duplicates": 1, "dropped_by_rating": 0, "dropped_by_kcore": 0}
    assert (m["n_users"], m["n_items"], m["n_interactions"]) == (12, 10, 85)
    assert m["split"] == {"protocol": "mmrec", "seed": 0}
    ds = Dataset.load(out)
    assert sum(m["counts"].values()) == 85 == len(ds.train) + len(ds.valid) + len(ds.test)
    assert (m["counts"]["valid"], m["counts"]["test"]) == (12, 12)  # every user has 7-8 items: 1 + 1
    assert ds.train["user"].dtype == np.int32 and ds.train["item"].dtype == np.int32
    assert ds.train["timestamp"].dtype == np.int64 and ds.train["rating"].dtype == np.float32
    assert ds.users["user_id"].tolist()[:3] == ["u0", "u1", "u10"]
    items = ds.items.set_index("item_id")
    assert list(ds.items.columns) == ["item", "item_id", "title", "description", "brand", "categories"]
    assert items.loc["i3", "title"] == "Item 3" and items.loc["i3", "categories"] == "A, B"
    assert items.loc["i9", "title"] == "" and items.loc["i9", "categories"] == ""  # no metadata line
    # The duplicate (u0, i0) kept its earliest timestamp.
    u0, i0 = 0, int(items.loc["i0", "item"])
    every = [ds.train, ds.valid, ds.test]
    assert [int(t) for d in every for t in d.loc[(d["user"] == u0) & (d["item"] == i0), "timestamp"]] == [0]


def test_rating_threshold_and_kcore_counts(tmp_path, raw):
    out = prepare_dataset(raw, tmp_path / "out", kcore=3, min_rating=3)
    c = json.loads((out / "manifest.json").read_text())["cleaning"]
    assert c["dropped_duplicates"] == 1 and c["dropped_by_rating"] > 0
    ds = Dataset.load(out)
    every = np.concatenate([d["user"] for d in (ds.train, ds.valid, ds.test)])
    assert np.bincount(every).min() >= 3
    assert min(d["rating"].min() for d in (ds.train, ds.valid, ds.test)) >= 3


def test_deterministic_bytes_and_digest(tmp_path, raw):
    a = prepare_dataset(raw, tmp_path / "a", seed=1)
    b = prepare_dataset(raw, tmp_path / "b", seed=1)
    c = prepare_dataset(raw, tmp_path / "c", seed=2)
    for name in FILES[:5]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    digest = [json.loads((p / "manifest.json").read_text())["digest"] for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]


def test_failure_midway_keeps_existing_output(tmp_path, raw, monkeypatch):
    out = prepare_dataset(raw, tmp_path / "out", seed=0)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    # The parquet files are already written into the temp folder when the manifest write fails.
    monkeypatch.setattr(prepare, "write_json", disk_full)
    with pytest.raises(OSError, match="No space"):
        prepare_dataset(raw, out, seed=7)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]  # no temp folder left behind


def test_bad_input_leaves_no_output(tmp_path, make_folder):
    folder = make_folder(tmp_path / "raw", [("u1", "a", "x")])
    with pytest.raises(DataError, match=r"interactions\.csv:2, field 'timestamp'"):
        prepare_dataset(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_kcore_removing_everything(tmp_path, make_folder):
    folder = make_folder(tmp_path / "raw", [("u1", "a", 1), ("u2", "a", 2), ("u2", "b", 3)])
    with pytest.raises(DataError, match="k-core filtering removed every interaction"):
        prepare_dataset(folder, tmp_path / "out")


def test_temporal_split_without_timestamps(tmp_path, make_folder, make_rows):
    folder = make_folder(tmp_path / "raw", [r[:2] for r in make_rows()], header="user_id,item_id")
    with pytest.raises(DataError, match="field 'timestamp'"):
        prepare_dataset(folder, tmp_path / "out", split="leave-one-out")
    out = prepare_dataset(folder, tmp_path / "out", split="mmrec")
    assert "timestamp" not in Dataset.load(out).train


def test_config_errors(tmp_path, raw):
    with pytest.raises(GatrecError, match="unknown split 'random'; valid splits: mmrec, user-temporal"):
        prepare_dataset(raw, tmp_path / "out", split="random")
    with pytest.raises(GatrecError, match="unknown format 'csv'; valid formats: auto, folder, amazon-2014"):
        prepare_dataset(raw, tmp_path / "out", fmt="csv")
    with pytest.raises(GatrecError, match="kcore"):
        prepare_dataset(raw, tmp_path / "out", kcore=-1)
    with pytest.raises(DataError, match="does not exist"):
        prepare_dataset(tmp_path / "missing", tmp_path / "out")
    with pytest.raises(GatrecError, match="would replace the input folder"):
        prepare_dataset(raw, raw)
    assert (raw / "interactions.csv").is_file()


@pytest.mark.realdata
def test_amazon_office_2014(tmp_path, shared_data):
    src = shared_data / "amazon-office-2014"
    if not src.is_dir():
        pytest.skip(f"{src} not available")
    start = time.perf_counter()
    out = prepare_dataset(src, tmp_path / "office")
    elapsed = time.perf_counter() - start
    m = json.loads((out / "manifest.json").read_text())
    assert (m["n_users"], m["n_items"], m["n_interactions"]) == (4905, 2420, 53258)  # already 5-core
    assert m["cleaning"]["dropped_by_kcore"] == 0
    assert elapsed < 15, f"prepare took {elapsed:.1f}s"
    ds = Dataset.load(out)
    assert (ds.items["title"] != "").mean() > 0.99


@pytest.mark.realdata
def test_amazon_beauty_2014_is_fast(tmp_path, shared_data):
    src = shared_data / "amazon-beauty-2014"
    if not src.is_dir():
        pytest.skip(f"{src} not available")
    start = time.perf_counter()
    out = prepare_dataset(src, tmp_path / "beauty", split="user-temporal")
    elapsed = time.perf_counter() - start
    m = json.loads((out / "manifest.json").read_text())
    assert (m["n_users"], m["n_items"], m["n_interactions"]) == (22363, 12101, 198502)
    assert elapsed < 20, f"prepare took {elapsed:.1f}s"
    ds = Dataset.load(out)
    # user-temporal: every user's test interactions come after their training ones.
    last_train = ds.train.groupby("user")["timestamp"].max()
    first_test = ds.test.groupby("user")["timestamp"].min()
    assert (first_test > last_train.reindex(first_test.index)).all()
