"""Amazon 2014 / 2018 / 2023 dumps, written here as tiny gzip files in their published shapes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from gatrec.data.readers import detect_format, read_raw
from gatrec.errors import DataError


def gz_lines(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return path


def review_2014(user: str, asin: str, rating: float, ts: int) -> str:
    return json.dumps({"reviewerID": user, "asin": asin, "reviewerName": "X", "helpful": [0, 0],
                       "reviewText": "fine", "overall": rating, "summary": "ok", "unixReviewTime": ts,
                       "reviewTime": "01 1, 2014"})


def write_2014(folder: Path, cat: str = "Office_Products") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gz_lines(folder / f"reviews_{cat}_5.json.gz", [
        review_2014("U1", "B001", 5.0, 1400000000),
        review_2014("U1", "B002", 3.0, 1400000100),
        "",  # blank lines are skipped
        review_2014("U2", "B001", 4.0, 1400000200),
    ])
    meta = [  # Python literals (repr), not JSON: single quotes, as published
        {"asin": "B001", "title": "Bob's pen", "description": "Blue ink", "brand": "Bic",
         "categories": [["Office Products", "Pens"], ["Office Products", "Writing"]],
         "imUrl": "http://images.test/B001.jpg", "related": {"also_bought": ["B002"]}},
        {"asin": "B002", "title": "Paper", "categories": [["Office Products"]]},
        {"asin": "B999", "title": "never reviewed"},
    ]
    gz_lines(folder / f"meta_{cat}.json.gz", [repr(m) for m in meta])
    return folder


def test_amazon_2014_reviews_and_python_literal_meta(tmp_path):
    folder = write_2014(tmp_path)
    assert "'asin': 'B001'" in gzip.open(folder / "meta_Office_Products.json.gz", "rt").read()
    assert detect_format(folder) == "amazon-2014"
    raw = read_raw(folder)
    assert raw.format == "amazon-2014"
    df = raw.interactions
    assert df["user_id"].tolist() == ["U1", "U1", "U2"]
    assert df["item_id"].tolist() == ["B001", "B002", "B001"]
    assert df["rating"].tolist() == [5.0, 3.0, 4.0]
    assert df["timestamp"].tolist() == [1400000000, 1400000100, 1400000200]
    items = raw.items.set_index("item_id")
    assert set(items.index) == {"B001", "B002"}  # items without reviews are not kept
    assert items.loc["B001", "title"] == "Bob's pen"
    assert items.loc["B001", "brand"] == "Bic"
    assert items.loc["B001", "categories"] == "Office Products, Pens, Writing"
    assert items.loc["B001", "image"] == "http://images.test/B001.jpg"
    assert items.loc["B002", "image"] == ""


def test_amazon_2014_file_path_and_category_choice(tmp_path):
    write_2014(tmp_path, "Office_Products")
    write_2014(tmp_path, "Beauty")
    with pytest.raises(DataError, match=r"several categories found \(Beauty, Office_Products\).*--category"):
        read_raw(tmp_path)
    raw = read_raw(tmp_path, category="beauty")
    assert raw.files[0].name == "reviews_Beauty_5.json.gz" and raw.files[1].name == "meta_Beauty.json.gz"
    with pytest.raises(DataError, match="category 'Toys' not found; available: Beauty, Office_Products"):
        read_raw(tmp_path, "amazon-2014", category="Toys")
    raw = read_raw(tmp_path / "reviews_Office_Products_5.json.gz")
    assert raw.format == "amazon-2014" and raw.files[1].name == "meta_Office_Products.json.gz"


def test_amazon_2014_malformed_review_line(tmp_path):
    gz_lines(tmp_path / "reviews_Toys_5.json.gz", [review_2014("U1", "B1", 5.0, 1), '{"reviewerID": "U2",'])
    with pytest.raises(DataError, match=r"reviews_Toys_5\.json\.gz:2: malformed JSON"):
        read_raw(tmp_path)


def test_amazon_2014_missing_field_and_bad_number(tmp_path):
    gz_lines(tmp_path / "reviews_Toys_5.json.gz", [review_2014("U1", "B1", 5.0, 1),
                                                    json.dumps({"reviewerID": "U2", "asin": "B1", "overall": 4})])
    with pytest.raises(DataError, match=r"reviews_Toys_5\.json\.gz:2, field 'unixReviewTime'"):
        read_raw(tmp_path)
    gz_lines(tmp_path / "reviews_Toys_5.json.gz", [review_2014("U1", "B1", 5.0, 1), review_2014("U2", "B1", "x", 2)])
    with pytest.raises(DataError, match=r"reviews_Toys_5\.json\.gz:2, field 'overall'"):
        read_raw(tmp_path)


def test_amazon_2014_malformed_meta_line_of_a_reviewed_item(tmp_path):
    folder = write_2014(tmp_path)
    gz_lines(folder / "meta_Office_Products.json.gz", ["{'asin': 'B002', 'title': 'ok'}", "{'asin': 'B001', 'title': "])
    with pytest.raises(DataError, match=r"meta_Office_Products\.json\.gz:2: malformed Python-literal line"):
        read_raw(folder)


def test_amazon_2014_without_meta(tmp_path):
    gz_lines(tmp_path / "reviews_Toys_5.json.gz", [review_2014("U1", "B1", 5.0, 1)])
    raw = read_raw(tmp_path)
    assert raw.items is None and len(raw.interactions) == 1


def test_amazon_2018(tmp_path):
    gz_lines(tmp_path / "Office_Products_5.json.gz", [
        json.dumps({"overall": 5.0, "verified": True, "reviewTime": "x", "reviewerID": "A1", "asin": "P1",
                    "style": {"Color:": " Red"}, "unixReviewTime": 1500000000}),
        json.dumps({"overall": 2.0, "reviewerID": "A2", "asin": "P2", "vote": "3", "unixReviewTime": 1500000001}),
    ])
    gz_lines(tmp_path / "meta_Office_Products.json.gz", [
        json.dumps({"asin": "P1", "title": "Stapler", "description": ["Staples", "paper."], "brand": "Acme",
                    "category": ["Office Products", "Staplers"], "imageURL": ["http://i.test/s.jpg"],
                    "imageURLHighRes": ["http://i.test/S.jpg"]}),
        json.dumps({"asin": "P2", "title": "Tape", "category": [], "imageURL": []}),
    ])
    assert detect_format(tmp_path) == "amazon-2018"
    raw = read_raw(tmp_path)
    assert raw.interactions["item_id"].tolist() == ["P1", "P2"]
    assert raw.interactions["rating"].tolist() == [5.0, 2.0]
    items = raw.items.set_index("item_id")
    assert items.loc["P1", "description"] == "Staples paper."
    assert items.loc["P1", "categories"] == "Office Products, Staplers"
    assert items.loc["P1", "image"] == "http://i.test/S.jpg"  # high-res preferred
    assert items.loc["P2", "image"] == "" and items.loc["P2", "brand"] == ""


def test_amazon_2023_uses_parent_asin(tmp_path):
    gz_lines(tmp_path / "All_Beauty.jsonl.gz", [
        json.dumps({"rating": 5.0, "title": "t", "text": "x", "images": [], "asin": "V1", "parent_asin": "P1",
                    "user_id": "AG1", "timestamp": 1588687728923, "helpful_vote": 0, "verified_purchase": True}),
        json.dumps({"rating": 4.0, "asin": "V2", "parent_asin": "P1", "user_id": "AG2", "timestamp": 1588687728999}),
    ])
    gz_lines(tmp_path / "meta_All_Beauty.jsonl.gz", [
        json.dumps({"main_category": "All Beauty", "title": "Lipstick", "description": ["Red.", "Matte."],
                    "store": "Glow", "categories": ["Beauty", "Makeup"], "parent_asin": "P1",
                    "images": [{"thumb": "t.jpg", "large": "http://i.test/L.jpg", "variant": "MAIN",
                                "hi_res": None}]}),
    ])
    assert detect_format(tmp_path) == "amazon-2023"
    raw = read_raw(tmp_path)
    assert raw.interactions["item_id"].tolist() == ["P1", "P1"]
    assert raw.interactions["timestamp"].tolist() == [1588687728923, 1588687728999]
    item = raw.items.set_index("item_id").loc["P1"]
    assert (item["title"], item["brand"], item["description"]) == ("Lipstick", "Glow", "Red. Matte.")
    assert item["categories"] == "Beauty, Makeup" and item["image"] == "http://i.test/L.jpg"


def test_empty_dump(tmp_path):
    gz_lines(tmp_path / "All_Beauty.jsonl.gz", [])
    with pytest.raises(DataError, match=r"All_Beauty\.jsonl\.gz: empty file"):
        read_raw(tmp_path)


def test_prepare_amazon_2014_keeps_text_and_images(tmp_path):
    from gatrec.data import Dataset
    from gatrec.data.prepare import prepare_dataset

    out = prepare_dataset(write_2014(tmp_path / "raw"), tmp_path / "out", kcore=0, split="leave-one-out")
    ds = Dataset.load(out)
    assert ds.manifest["source"]["format"] == "amazon-2014"
    assert [f["name"] for f in ds.manifest["source"]["files"]] == ["reviews_Office_Products_5.json.gz",
                                                                   "meta_Office_Products.json.gz"]
    assert ds.items["item_id"].tolist() == ["B001", "B002"]
    assert ds.items["image"].tolist() == ["http://images.test/B001.jpg", ""]
    assert ds.items["categories"].tolist() == ["Office Products, Pens, Writing", "Office Products"]
    assert ds.train["rating"].tolist() == [5.0, 3.0, 4.0]  # fewer than 3 per user: all in train


def test_amazon_meta_and_a_folders_items_jsonl_give_the_same_item_table(tmp_path):
    # One item-record builder (readers/base.py ItemRecords) for both formats: the same metadata read from an
    # Amazon 2014 meta file and from a plain folder's items.jsonl cleans to the same rows.
    amazon = read_raw(write_2014(tmp_path / "amazon")).items
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user_id,item_id\nU1,B001\nU1,B002\nU2,B001\n")
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"item_id": " B001 ", "title": " Bob's pen", "description": "Blue ink", "brand": "Bic",
         "categories": [["Office Products", "Pens"], ["Office Products", "Writing"]],
         "image": "http://images.test/B001.jpg"},
        {"item_id": "B002", "title": "Paper", "categories": [["Office Products"]]},
        {"item_id": "B002", "title": "a second record of B002: the first one is kept"},
    ]))
    plain = read_raw(folder, fmt="folder").items
    assert plain.equals(amazon), (plain, amazon)
    assert plain.columns.tolist() == ["item_id", "title", "description", "brand", "categories", "image"]


def test_item_records_without_any_image_have_no_image_column():
    from gatrec.data.readers.base import ItemRecords

    records = ItemRecords()
    records.add("a", title=["Two", "parts"], categories="Pens")
    records.add("b", description=None, categories=[["X", "Y"], ["X"]])
    items = records.frame()
    assert items.columns.tolist() == ["item_id", "title", "description", "brand", "categories"]
    assert items.to_dict("records") == [
        {"item_id": "a", "title": "Two parts", "description": "", "brand": "", "categories": "Pens"},
        {"item_id": "b", "title": "", "description": "", "brand": "", "categories": "X, Y"}]
