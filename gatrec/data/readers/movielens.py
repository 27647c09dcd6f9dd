"""MovieLens 100K (``u.data`` + ``u.item``) and 1M (``ratings.dat`` + ``movies.dat``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gatrec.data.readers.base import RawData, drop_blank_rows, items_frame, numeric_column, open_text
from gatrec.errors import DataError
from gatrec.log import get

log = get(__name__)

RATING_FILES = ("u.data", "ratings.dat")
# The fixed genre order of u.item's 19 flag columns, used when u.genre is not beside it.
GENRES_100K = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
               "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
               "Thriller", "War", "Western")
FIELDS = ("user_id", "item_id", "rating", "timestamp")


def find_ratings(folder: Path) -> Path | None:
    return next((folder / n for n in RATING_FILES if (folder / n).is_file()), None)


def read_movielens(path: Path) -> RawData:
    ratings = path if path.is_file() else find_ratings(path)
    if ratings is None:
        raise DataError(f"no MovieLens ratings file (looked for {', '.join(RATING_FILES)})", file=path)
    folder = ratings.parent
    if ratings.name == "ratings.dat":
        # "u::i::r::t" split on single colons gives empty fields between; the C parser stays fast.
        inter = _read_table(ratings, sep=":", usecols=[0, 2, 4, 6])
        movies, items = folder / "movies.dat", None
        if movies.is_file():
            items = _read_movies_1m(movies)
    else:
        inter = _read_table(ratings, sep="\t", usecols=[0, 1, 2, 3])
        movies, items = folder / "u.item", None
        if movies.is_file():
            items = _read_items_100k(movies, folder / "u.genre")
    files = [ratings] + ([movies] if items is not None else [])
    log.info("movielens read", file=str(ratings), interactions=len(inter), items=0 if items is None else len(items))
    return RawData(interactions=inter, items=items, format="movielens", files=files)


def _read_table(path: Path, sep: str, usecols: list[int]) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False, usecols=usecols,
                          skip_blank_lines=False, encoding="latin-1")
    except pd.errors.EmptyDataError as exc:
        raise DataError("empty file", file=path) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"malformed ratings file (expected user{sep}item{sep}rating{sep}timestamp): {exc}",
                        file=path) from exc
    raw.columns = list(FIELDS)
    raw, lines = drop_blank_rows(raw, first_line=1)  # no header line
    if raw.empty:
        raise DataError("empty file", file=path)
    for col in ("user_id", "item_id"):
        empty = (raw[col].str.strip() == "").to_numpy()
        if empty.any():
            raise DataError("missing value", file=path, line=int(lines[np.argmax(empty)]), field=col)
    return pd.DataFrame({
        "user_id": raw["user_id"].str.strip().to_numpy(dtype=object),
        "item_id": raw["item_id"].str.strip().to_numpy(dtype=object),
        "rating": numeric_column(raw["rating"], file=path, field="rating", lines=lines),
        "timestamp": numeric_column(raw["timestamp"], file=path, field="timestamp", lines=lines, integer=True),
    })


def _read_items_100k(path: Path, genre_file: Path) -> pd.DataFrame:
    genres = list(GENRES_100K)
    if genre_file.is_file():
        with open_text(genre_file, encoding="latin-1") as fh:
            pairs = [ln.strip().rsplit("|", 1) for ln in fh if ln.strip()]
        genres = [name for name, _ in sorted(pairs, key=lambda p: int(p[1]))]
    cols: dict[str, list[str]] = {"item_id": [], "title": [], "categories": []}
    with open_text(path, encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("|")
            if len(parts) < 2:
                raise DataError("expected 'movie id|title|...'", file=path, line=lineno, field="title")
            flags = parts[-len(genres):] if len(parts) >= 5 + len(genres) else []
            cols["item_id"].append(parts[0].strip())
            cols["title"].append(parts[1].strip())
            cols["categories"].append(", ".join(g for g, f in zip(genres, flags, strict=True) if f.strip() == "1"))
    return items_frame(cols)


def _read_movies_1m(path: Path) -> pd.DataFrame:
    cols: dict[str, list[str]] = {"item_id": [], "title": [], "categories": []}
    with open_text(path, encoding="latin-1") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("::")
            if len(parts) != 3:
                raise DataError("expected 'MovieID::Title::Genres'", file=path, line=lineno)
            cols["item_id"].append(parts[0].strip())
            cols["title"].append(parts[1].strip())
            cols["categories"].append(", ".join(g for g in parts[2].strip().split("|") if g))
    return items_frame(cols)
