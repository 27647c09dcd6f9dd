"""The plain folder reader and format auto-detection, including every bad-input message."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from gatrec.data.readers import FORMATS, read_raw
from gatrec.errors import DataError


def test_reads_csv_with_items(tmp_path, make_folder):
    (tmp_path / "img").mkdir()
    items = [
        {"item_id": "a", "title": "Pen", "description": ["Blue", "ink"], "brand": "Bic",
         "categories": [["Office", "Pens"], ["Office", "Writing"]], "image": "img/a.jpg"},
        {"item_id": "b", "title": "Pad", "categories": "Paper", "image": "https://x.test/b.jpg"},
    ]
    folder = make_folder(tmp_path, [("u1", "a", 5, 3.5), ("u2", "b", 7, 4)],
                         header="user_id,item_id,timestamp,rating", items=items)
    raw = read_raw(folder)
    assert raw.format == "folder"
    assert [p.name for p in raw.files] == ["interactions.csv", "items.jsonl"]
    df = raw.interactions
    assert df["user_id"].tolist() == ["u1", "u2"] and df["item_id"].tolist() == ["a", "b"]
    assert df["timestamp"].dtype == np.int64 and df["timestamp"].tolist() == [5, 7]
    assert df["rating"].tolist() == [3.5, 4.0]
    it = raw.items.set_index("item_id")
    assert it.loc["a", "description"] == "Blue ink"
    assert it.loc["a", "categories"] == "Office, Pens, Writing"  # flattened, duplicates dropped
    assert it.loc["b", "categories"] == "Paper"
    assert it.loc["b", "brand"] == ""
    assert it.loc["a", "image"] == str((tmp_path / "img" / "a.jpg").resolve())
    assert it.loc["b", "image"] == "https://x.test/b.jpg"


def test_reads_csv_gz_and_parquet(tmp_path):
    rows = "user_id,item_id\nu1,a\nu1,b\n"
    gz = tmp_path / "gz"
    gz.mkdir()
    with gzip.open(gz / "interactions.csv.gz", "wt") as fh:
        fh.write(rows)
    raw = read_raw(gz)
    assert raw.interactions["item_id"].tolist() == ["a", "b"]
    assert "timestamp" not in raw.interactions and raw.items is None

    pq_dir = tmp_path / "pq"
    pq_dir.mkdir()
    pd.DataFrame({"user_id": [10, 11], "item_id": ["x", "y"], "timestamp": [3, 4]}).to_parquet(
        pq_dir / "interactions.parquet")
    raw = read_raw(pq_dir, "folder")
    assert raw.interactions["user_id"].tolist() == ["10", "11"]
    assert raw.interactions["timestamp"].tolist() == [3, 4]


def test_missing_column_names_column_file_and_header_line(tmp_path, make_folder):
    folder = make_folder(tmp_path, [("u1", 5)], header="user_id,timestamp")
    with pytest.raises(DataError) as err:
        read_raw(folder)
    msg = str(err.value)
    assert "interactions.csv:1" in msg and "item_id" in msg
    assert err.value.field == "item_id" and err.value.line == 1


@pytest.mark.parametrize("field,header,bad_row", [
    ("timestamp", "user_id,item_id,timestamp", ("u3", "c", "yesterday")),
    ("rating", "user_id,item_id,rating", ("u3", "c", "five")),
])
def test_non_numeric_value_names_line_and_field(tmp_path, make_folder, field, header, bad_row):
    folder = make_folder(tmp_path, [("u1", "a", 1), ("u2", "b", 2), bad_row, ("u4", "d", 4)], header=header)
    with pytest.raises(DataError) as err:
        read_raw(folder)
    # Header is line 1, so the third data row is line 4 of the file.
    assert re.search(r"interactions\.csv:4\b", str(err.value))
    assert f"field '{field}'" in str(err.value)
    assert err.value.line == 4 and err.value.field == field


def test_blank_lines_are_skipped_but_counted(tmp_path):
    (tmp_path / "interactions.csv").write_bytes(b"user_id,item_id,timestamp\r\nu1,a,1\r\n\r\nu2,b,x\r\n\r\n")
    with pytest.raises(DataError, match=r"interactions\.csv:4, field 'timestamp'"):
        read_raw(tmp_path)
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\nu1,a,1\n\nu2,b,2\n\n")
    assert read_raw(tmp_path).interactions["user_id"].tolist() == ["u1", "u2"]


def test_fractional_timestamp_is_rejected(tmp_path, make_folder):
    folder = make_folder(tmp_path, [("u1", "a", 1), ("u2", "b", 2.5)])
    with pytest.raises(DataError, match=r"interactions\.csv:3.*timestamp.*not an integer"):
        read_raw(folder)


def test_parquet_bad_value_names_row(tmp_path):
    pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"], "rating": ["4", "bad"]}).to_parquet(
        tmp_path / "interactions.parquet")
    with pytest.raises(DataError, match=r"interactions\.parquet.*field 'rating'.*row 2"):
        read_raw(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "interactions.csv").write_text("")
    with pytest.raises(DataError, match=r"interactions\.csv.*empty file"):
        read_raw(tmp_path)


def test_header_only(tmp_path):
    (tmp_path / "interactions.csv").write_text("user_id,item_id\n")
    with pytest.raises(DataError, match=r"interactions\.csv:2.*no interactions"):
        read_raw(tmp_path)


def test_missing_id_value_names_line(tmp_path):
    (tmp_path / "interactions.csv").write_text("user_id,item_id\nu1,a\n,b\n")
    with pytest.raises(DataError, match=r"interactions\.csv:3, field 'user_id'"):
        read_raw(tmp_path)


def test_malformed_items_jsonl_names_line(tmp_path, make_folder):
    folder = make_folder(tmp_path, [("u1", "a", 1)])
    (folder / "items.jsonl").write_text(json.dumps({"item_id": "a"}) + "\n{\"item_id\": \"b\", oops\n")
    with pytest.raises(DataError, match=r"items\.jsonl:2: malformed JSON"):
        read_raw(folder)


def test_items_jsonl_without_item_id(tmp_path, make_folder):
    folder = make_folder(tmp_path, [("u1", "a", 1)])
    (folder / "items.jsonl").write_text(json.dumps({"title": "no id"}) + "\n")
    with pytest.raises(DataError, match=r"items\.jsonl:1, field 'item_id'"):
        read_raw(folder)


def test_unknown_format_lists_valid_ones(tmp_path, make_folder):
    folder = make_folder(tmp_path, [("u1", "a", 1)])
    with pytest.raises(DataError) as err:
        read_raw(folder, "amazon-1999")
    for fmt in FORMATS:
        assert fmt in str(err.value)


def test_missing_input_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_raw(tmp_path / "nope")


def test_unrecognisable_folder_lists_what_was_looked_for(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError) as err:
        read_raw(tmp_path)
    msg = str(err.value)
    for expected in ("interactions.csv", "reviews_<Cat>_5.json.gz", "<Cat>.jsonl.gz", "u.data", "ratings.dat"):
        assert expected in msg
