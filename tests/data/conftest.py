"""Fixtures for the data tests: tiny hand-made raw folders and the shared real datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available at {SHARED_DATA}")
    return SHARED_DATA


def write_folder(folder: Path, rows: list[tuple], header: str = "user_id,item_id,timestamp",
                 items: list[dict] | None = None) -> Path:
    """A plain-format raw folder: interactions.csv from ``rows`` and optional items.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [header] + [",".join(map(str, r)) for r in rows]
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    if items is not None:
        (folder / "items.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return folder


def grid_rows(n_users: int = 12, n_items: int = 10, per_user: int = 7) -> list[tuple]:
    """A dense-enough deterministic history: user u rates items u, u+1, ... (mod n_items) at times 0, 1, ..."""
    return [(f"u{u}", f"i{(u + j) % n_items}", j) for u in range(n_users) for j in range(per_user)]


@pytest.fixture
def make_folder():
    return write_folder


@pytest.fixture
def make_rows():
    return grid_rows
