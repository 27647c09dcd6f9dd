"""Amazon review dumps as published: 2014 (McAuley), 2018 (Ni et al.) and 2023 (Hou et al.).

Reviews are streamed line by line into column lists; metadata lines of items that never occur in
the reviews are skipped before parsing (a cheap regex finds the id), which matters for the 2014
meta files: they are Python literals, and ``ast.literal_eval`` is slow.
"""

from __future__ import annotations

import ast
import json
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gatrec.data.readers.base import ItemRecords, RawData, iter_records, numeric_column, text_value
from gatrec.errors import DataError
from gatrec.log import get

log = get(__name__)


@dataclass(frozen=True)
class Spec:
    review_suffix: str          # "<prefix><Cat>[_5]<suffix>"
    review_prefix: str
    meta_suffix: str
    keys: tuple[str, str, str, str]  # user, item, rating, timestamp fields of a review
    meta_item_key: str
    meta_parse: Callable[[str], Any]
    meta_kind: str
    meta_id_re: re.Pattern[str]


def _id_re(key: str, quote: str) -> re.Pattern[str]:
    return re.compile(rf"{quote}{key}{quote}\s*:\s*{quote}([^{quote}]+){quote}")


SPECS: dict[str, Spec] = {
    "amazon-2014": Spec(".json.gz", "reviews_", ".json.gz", ("reviewerID", "asin", "overall", "unixReviewTime"),
                        "asin", ast.literal_eval, "Python-literal", _id_re("asin", "'")),
    "amazon-2018": Spec(".json.gz", "", ".json.gz", ("reviewerID", "asin", "overall", "unixReviewTime"),
                        "asin", json.loads, "JSON", _id_re("asin", '"')),
    # 2023 reviews name the variant in "asin"; "parent_asin" is the product that metadata describes.
    "amazon-2023": Spec(".jsonl.gz", "", ".jsonl.gz", ("user_id", "parent_asin", "rating", "timestamp"),
                        "parent_asin", json.loads, "JSON", _id_re("parent_asin", '"')),
}


def review_files(folder: Path, fmt: str) -> dict[str, Path]:
    """Category name -> review dump of that format found in ``folder``."""
    spec = SPECS[fmt]
    found: dict[str, Path] = {}
    for p in sorted(folder.glob(f"{spec.review_prefix}*{spec.review_suffix}")):
        name = p.name
        if name.startswith("meta_") or (not spec.review_prefix and name.startswith("reviews_")):
            continue
        cat = name[len(spec.review_prefix):-len(spec.review_suffix)]
        found[cat[:-2] if cat.endswith("_5") else cat] = p
    return found


def pick_category(files: dict[str, Path], category: str | None, folder: Path, fmt: str) -> tuple[str, Path]:
    if not files:
        raise DataError(f"no {fmt} review dump found", file=folder)
    if category is None:
        if len(files) > 1:
            raise DataError(f"several categories found ({', '.join(files)}); choose one with --category",
                            file=folder)
        return next(iter(files.items()))
    norm = {c.lower().replace(" ", "_"): c for c in files}
    key = category.lower().replace(" ", "_")
    if key not in norm:
        raise DataError(f"category {category!r} not found; available: {', '.join(files)}", file=folder)
    return norm[key], files[norm[key]]


def read_amazon(path: Path, fmt: str, category: str | None = None) -> RawData:
    spec = SPECS[fmt]
    if path.is_file():
        folder, review = path.parent, path
        cat = next((c for c, p in review_files(folder, fmt).items() if p == path), None)
    else:
        folder = path
        cat, review = pick_category(review_files(folder, fmt), category, folder, fmt)
    inter = _read_reviews(review, spec)
    files = [review]
    items = None
    meta = folder / f"meta_{cat}{spec.meta_suffix}" if cat is not None else None
    if meta is not None and meta.is_file():
        items = _read_meta(meta, fmt, spec, wanted=set(inter["item_id"].unique()))
        files.append(meta)
    else:
        log.warning("no metadata file; items get no text", expected=str(meta) if meta else None)
    return RawData(interactions=inter, items=items, format=fmt, files=files)


def _read_reviews(path: Path, spec: Spec) -> pd.DataFrame:
    ukey, ikey, rkey, tkey = spec.keys
    users: list[str] = []
    items: list[str] = []
    ratings: list[Any] = []
    times: list[Any] = []
    lines = array("q")
    for lineno, obj in iter_records(path, desc=path.name):
        try:
            u, i, r, t = obj[ukey], obj[ikey], obj[rkey], obj[tkey]
        except KeyError as exc:
            raise DataError("missing field", file=path, line=lineno, field=str(exc.args[0])) from exc
        users.append(str(u))
        items.append(str(i))
        ratings.append(r)
        times.append(t)
        lines.append(lineno)
    line_no = np.frombuffer(lines, dtype=np.int64)
    df = pd.DataFrame({"user_id": np.array(users, dtype=object), "item_id": np.array(items, dtype=object)})
    df["rating"] = numeric_column(ratings, file=path, field=rkey, lines=line_no)
    df["timestamp"] = numeric_column(times, file=path, field=tkey, lines=line_no, integer=True)
    log.info("reviews read", file=str(path), interactions=len(df))
    return df


def _read_meta(path: Path, fmt: str, spec: Spec, wanted: set[str]) -> pd.DataFrame:
    records = ItemRecords()

    def parse(line: str) -> Any:
        m = spec.meta_id_re.search(line)
        if m is not None and m.group(1) not in wanted:
            return {}  # not an item of these reviews: skip without the costly parse
        return spec.meta_parse(line)

    for lineno, obj in iter_records(path, desc=path.name, parse=parse, what=spec.meta_kind):
        if not obj:
            continue
        item = obj.get(spec.meta_item_key)
        if item is None:
            raise DataError("missing item id", file=path, line=lineno, field=spec.meta_item_key)
        if str(item) not in wanted:
            continue
        records.add(str(item), title=obj.get("title"), description=obj.get("description"),
                    brand=obj.get("store" if fmt == "amazon-2023" else "brand"),
                    categories=obj.get("category" if fmt == "amazon-2018" else "categories"),
                    image=_image(obj, fmt))
    items = records.frame()
    log.info("metadata read", file=str(path), items=len(items))
    return items


def _image(obj: dict, fmt: str) -> str:
    if fmt == "amazon-2014":
        return text_value(obj.get("imUrl"))
    if fmt == "amazon-2018":
        for key in ("imageURLHighRes", "imageURL"):
            urls = obj.get(key) or []
            if urls:
                return text_value(urls[0])
        return ""
    for img in obj.get("images") or []:
        if isinstance(img, dict) and (url := img.get("hi_res") or img.get("large")):
            return str(url)
    return ""
