"""Raw data readers: one per source format, behind ``read_raw(path, fmt)``.

``fmt="auto"`` looks at the folder (or the file given) and picks the format from the file names.
"""

from __future__ import annotations

import time
from pathlib import Path

from gatrec.data.readers.amazon import SPECS, read_amazon, review_files
from gatrec.data.readers.base import RawData
from gatrec.data.readers.folder import INTERACTION_FILES, find_interactions, read_folder
from gatrec.data.readers.movielens import RATING_FILES, find_ratings, read_movielens
from gatrec.errors import DataError
from gatrec.log import get

__all__ = ["FORMATS", "RawData", "detect_format", "read_raw"]

log = get(__name__)

FORMATS = ("auto", "folder", "amazon-2014", "amazon-2018", "amazon-2023", "movielens")
LOOKED_FOR = (f"{' / '.join(INTERACTION_FILES)} (folder), reviews_<Cat>_5.json.gz (amazon-2014), "
              f"<Cat>_5.json.gz (amazon-2018), <Cat>.jsonl.gz (amazon-2023), "
              f"{' / '.join(RATING_FILES)} (movielens)")


def detect_format(path: Path) -> str:
    """Name the format of a folder (or of one file in it) from its file names."""
    if path.is_file():
        name = path.name
        if name in INTERACTION_FILES:
            return "folder"
        if name in RATING_FILES:
            return "movielens"
        for fmt in SPECS:
            if path in review_files(path.parent, fmt).values():
                return fmt
        raise DataError(f"unrecognised input file; expected one of: {LOOKED_FOR}", file=path)
    if find_interactions(path) is not None:
        return "folder"
    found = [fmt for fmt in SPECS if review_files(path, fmt)]
    if len(found) > 1:
        raise DataError(f"several dump formats in one folder ({', '.join(found)}); pass --format", file=path)
    if found:
        return found[0]
    if find_ratings(path) is not None:
        return "movielens"
    raise DataError(f"nothing recognisable in the folder; looked for {LOOKED_FOR}", file=path)


def read_raw(path: str | Path, fmt: str = "auto", category: str | None = None) -> RawData:
    """Read interactions (and item metadata where the source has it) in the given or detected format."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError("input path does not exist", file=path)
    if fmt == "auto":
        fmt = detect_format(path)
        log.info("format detected", format=fmt, path=str(path))
    start = time.perf_counter()
    if fmt == "folder":
        if path.is_file():
            if path.name not in INTERACTION_FILES:
                raise DataError(f"expected one of {', '.join(INTERACTION_FILES)}", file=path)
            path = path.parent
        raw = read_folder(path)
    elif fmt == "movielens":
        raw = read_movielens(path)
    else:
        raw = read_amazon(path, fmt, category)
    if raw.interactions.empty:
        raise DataError("no interactions in the input", file=raw.files[0] if raw.files else path)
    log.info("read done", format=fmt, interactions=len(raw.interactions),
             items_with_metadata=0 if raw.items is None else len(raw.items),
             seconds=round(time.perf_counter() - start, 2))
    return raw
