"""Shared pieces of the raw readers: the ``RawData`` result, streaming line reads, value checks."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm
from tqdm.utils import CallbackIOWrapper

from gatrec.errors import DataError

TEXT_FIELDS = ("title", "description", "brand", "categories")
# Largest integer value accepted (timestamps, ids): 2**53, the last one float64 holds exactly; epoch
# milliseconds are far below it.
MAX_INTEGER = 2**53


@dataclass
class RawData:
    """What a reader returns, before cleaning.

    ``interactions``: ``user_id``, ``item_id`` (str) plus ``rating`` (float64) and ``timestamp`` (int64)
    where the source has them, in input order. ``items``: ``item_id`` plus the text fields and optional
    ``image``, or None when the source has no item metadata.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None
    format: str
    files: list[Path] = field(default_factory=list)


def open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    """Open a plain or gzip text file (by suffix)."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding)
    return open(path, encoding=encoding)


def stream_lines(path: Path, desc: str, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based) with a progress bar over the bytes on disk.

    Gzip dumps are decompressed on the fly so a 1.7M-review file never sits in memory as text.
    """
    with open(path, "rb") as raw, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=desc,
                                       disable=None, leave=False) as bar:
        wrapped: Any = CallbackIOWrapper(bar.update, raw, "read")
        binary = gzip.GzipFile(fileobj=wrapped) if path.suffix == ".gz" else wrapped
        try:
            with io.TextIOWrapper(binary, encoding=encoding, errors="strict") as text:
                yield from enumerate(text, start=1)
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # truncated gzip, wrong encoding
            raise DataError(f"cannot read file: {exc}", file=path) from exc


def iter_records(path: Path, desc: str, parse: Callable[[str], Any] = json.loads,
                 what: str = "JSON") -> Iterator[tuple[int, dict]]:
    """Parse one object per non-blank line; a bad line stops with file and line number."""
    seen = False
    for lineno, line in stream_lines(path, desc):
        if not line.strip():
            continue
        seen = True
        try:
            obj = parse(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise DataError(f"malformed {what} line: {exc}", file=path, line=lineno) from exc
        if not isinstance(obj, dict):
            raise DataError(f"expected one {what} object per line, got {type(obj).__name__}",
                            file=path, line=lineno)
        yield lineno, obj
    if not seen:
        raise DataError("empty file", file=path)


def numeric_column(values: Iterable[Any], *, file: Path, field: str, lines: np.ndarray | None = None,
                   integer: bool = False, row_word: str = "line") -> np.ndarray:
    """Convert a column to float64/int64; the first bad value stops with its line (or row) number.

    ``lines`` maps each value to the line number the user sees; without it values are numbered
    from 1 (``row_word`` then says "row", e.g. for parquet).
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.reset_index(drop=True)
    # Columns a parser already typed skip the (slow) text conversion.
    num = series if series.dtype.kind in "iuf" else pd.to_numeric(series, errors="coerce")
    if integer and num.dtype.kind in "iu":
        big = num.to_numpy() > MAX_INTEGER if num.dtype.kind == "u" else np.abs(num.to_numpy()) > MAX_INTEGER
        if not big.any():
            return num.to_numpy(dtype=np.int64)
        _raise_bad(series, big, "an integer in range", file=file, field=field, lines=lines, row_word=row_word)
    arr = num.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr)
    if integer:
        # NaN is already bad; this adds fractions, and values beyond 2**53, where float64 (and the int64 they
        # become) can no longer hold every integer: 1e20 would wrap to the most negative int64.
        bad |= (np.floor(arr) != arr) | (np.abs(arr) > MAX_INTEGER)
    if bad.any():
        _raise_bad(series, bad, "an integer in range" if integer else "a finite number", file=file, field=field,
                   lines=lines, row_word=row_word)
    return arr.astype(np.int64) if integer else arr


def _raise_bad(series: pd.Series, bad: np.ndarray, kind: str, *, file: Path, field: str,
               lines: np.ndarray | None, row_word: str) -> None:
    i = int(np.argmax(bad))
    where = int(lines[i]) if lines is not None else i + 1
    value = series.iloc[i]
    shown = repr(value.item() if isinstance(value, np.generic) else value)  # inf, not np.float64(inf)
    msg = f"value {shown} is not {kind}"
    if row_word == "line":
        raise DataError(msg, file=file, line=where, field=field)
    raise DataError(f"{row_word} {where}: {msg}", file=file, field=field)


def drop_blank_rows(df: pd.DataFrame, first_line: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop rows read from blank lines; return the rest with the file line number of each row.

    Text tables are read with blank lines kept (as all-empty rows) so that numbering stays exact.
    """
    lines = np.arange(first_line, first_line + len(df))
    blank = (df.fillna("") == "").all(axis=1).to_numpy()
    return df[~blank].reset_index(drop=True), lines[~blank]


def text_value(value: Any) -> str:
    """Free text from a string, a (nested) list of strings, or nothing."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in (text_value(v) for v in value) if t)
    return str(value).strip()


def categories_value(value: Any) -> str:
    """Categories from a string or (nested) lists: flattened, de-duplicated in order, joined with ", "."""
    flat: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif v is not None and (t := str(v).strip()):
            flat.append(t)

    walk(value)
    return ", ".join(dict.fromkeys(flat))


def items_frame(records: dict[str, list[str]]) -> pd.DataFrame:
    """Build the raw item table, keeping the first record of an item id seen twice."""
    df = pd.DataFrame(records)
    for col in ("item_id", *TEXT_FIELDS):
        if col not in df:
            df[col] = ""
    return df.drop_duplicates("item_id", keep="first").reset_index(drop=True)


class ItemRecords:
    """The raw item table of a metadata file, one record at a time, each text field cleaned the one way
    (``text_value``; categories by ``categories_value``); :meth:`frame` keeps the first record of an item
    id seen twice and has no ``image`` column when no item has an image."""

    def __init__(self) -> None:
        self.cols: dict[str, list[str]] = {c: [] for c in ("item_id", *TEXT_FIELDS, "image")}

    def add(self, item_id: str, *, title: Any = None, description: Any = None, brand: Any = None,
            categories: Any = None, image: str = "") -> None:
        for col, value in (("item_id", item_id), ("title", text_value(title)),
                           ("description", text_value(description)), ("brand", text_value(brand)),
                           ("categories", categories_value(categories)), ("image", image)):
            self.cols[col].append(value)

    def frame(self) -> pd.DataFrame:
        items = items_frame(self.cols)
        return items if (items["image"] != "").any() else items.drop(columns="image")
