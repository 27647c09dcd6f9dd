"""The plain folder format: ``interactions.{csv,csv.gz,parquet}`` plus optional ``items.jsonl``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gatrec.data.readers.base import (
    ItemRecords,
    RawData,
    drop_blank_rows,
    iter_records,
    numeric_column,
    text_value,
)
from gatrec.errors import DataError
from gatrec.log import get

log = get(__name__)

INTERACTION_FILES = ("interactions.csv", "interactions.csv.gz", "interactions.parquet")
ITEMS_FILE = "items.jsonl"
REQUIRED = ("user_id", "item_id")


def find_interactions(folder: Path) -> Path | None:
    found = [folder / n for n in INTERACTION_FILES if (folder / n).is_file()]
    if len(found) > 1:
        raise DataError(f"several interaction files, keep one: {', '.join(p.name for p in found)}", file=folder)
    return found[0] if found else None


def read_folder(folder: Path) -> RawData:
    path = find_interactions(folder)
    if path is None:
        raise DataError(f"no interaction file (looked for {', '.join(INTERACTION_FILES)})", file=folder)
    inter = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    files = [path]
    items = None
    if (folder / ITEMS_FILE).is_file():
        items = read_items_jsonl(folder / ITEMS_FILE)
        files.append(folder / ITEMS_FILE)
    return RawData(interactions=inter, items=items, format="folder", files=files)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # A numeric column with a bad value stays text, so the value can be reported; blank lines are kept
        # so that line numbers in messages match the file (header = line 1).
        df = pd.read_csv(path, dtype={c: str for c in REQUIRED}, keep_default_na=False, skip_blank_lines=False,
                         encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError("empty file", file=path) from exc
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise DataError(f"malformed CSV: {exc}", file=path, line=int(m.group(1)) if m else None) from exc
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read file: {exc}", file=path) from exc
    df.columns = [str(c).strip() for c in df.columns]
    _check_columns(df, path, line=1)
    df, lines = drop_blank_rows(df, first_line=2)
    if df.empty:
        raise DataError("no interactions (the file has only a header)", file=path, line=2)
    for col in REQUIRED:
        empty = (df[col].str.strip() == "").to_numpy()
        if empty.any():
            raise DataError("missing value", file=path, line=int(lines[np.argmax(empty)]), field=col)
    return _typed(df, path, lines, "line")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"cannot read parquet file: {exc}", file=path) from exc
    _check_columns(df, path, line=None)
    if df.empty:
        raise DataError("empty file (no rows)", file=path)
    for col in REQUIRED:
        missing = df[col].isna().to_numpy()
        if missing.any():
            raise DataError(f"row {int(np.argmax(missing)) + 1}: missing value", file=path, field=col)
    if "timestamp" in df and pd.api.types.is_datetime64_any_dtype(df["timestamp"]):
        df["timestamp"] = df["timestamp"].astype("datetime64[s]").astype(np.int64)
    return _typed(df, path, None, "row")


def _check_columns(df: pd.DataFrame, path: Path, line: int | None) -> None:
    for col in REQUIRED:
        if col not in df.columns:
            raise DataError(f"missing column '{col}' (found: {', '.join(map(str, df.columns))})",
                            file=path, line=line, field=col)


def _typed(df: pd.DataFrame, path: Path, lines: np.ndarray | None, row_word: str) -> pd.DataFrame:
    out = pd.DataFrame({"user_id": df["user_id"].astype(str).str.strip().to_numpy(dtype=object),
                        "item_id": df["item_id"].astype(str).str.strip().to_numpy(dtype=object)})
    if "rating" in df:
        out["rating"] = numeric_column(df["rating"], file=path, field="rating", lines=lines, row_word=row_word)
    if "timestamp" in df:
        out["timestamp"] = numeric_column(df["timestamp"], file=path, field="timestamp", lines=lines,
                                          integer=True, row_word=row_word)
    return out


def read_items_jsonl(path: Path) -> pd.DataFrame:
    """``items.jsonl``: one JSON object per line with ``item_id`` and optional text and ``image``."""
    records = ItemRecords()
    for lineno, obj in iter_records(path, desc="items"):
        item_id = obj.get("item_id")
        if item_id is None or str(item_id).strip() == "":
            raise DataError("missing item id", file=path, line=lineno, field="item_id")
        records.add(str(item_id).strip(), title=obj.get("title"), description=obj.get("description"),
                    brand=obj.get("brand"), categories=obj.get("categories"),
                    image=_image_ref(obj.get("image"), path.parent))
    items = records.frame()
    log.info("items read", file=str(path), items=len(items))
    return items


def _image_ref(value: object, folder: Path) -> str:
    """Keep URLs as they are; make relative paths absolute so the prepared data can live elsewhere."""
    ref = text_value(value[0] if isinstance(value, list) and value else value)
    if not ref or re.match(r"^[a-z][a-z0-9+.-]*://", ref, re.I) or Path(ref).is_absolute():
        return ref
    return str((folder / ref).resolve())
