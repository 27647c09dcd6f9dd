"""Small prepared-dataset folders (items.parquet + manifest.json) and tiny images, built per test."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gatrec.features.text import TextConfig, TextEncoder

FIELDS = ("item_id", "title", "description", "brand", "categories")


@pytest.fixture(autouse=True)
def _no_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's $GATREC_CACHE must not make these tests pass (or fail) by accident.
    monkeypatch.delenv("GATREC_CACHE", raising=False)


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """make_dataset(rows, source=None, name="prepared") → a prepared folder; rows are dicts of item fields."""

    def make(rows: list[dict], source: Path | None = None, name: str = "prepared") -> Path:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        df = pd.DataFrame([{f: r.get(f, "") for f in FIELDS} | {k: v for k, v in r.items() if k == "image"}
                           for r in rows])
        df.insert(0, "item", np.arange(len(df), dtype=np.int32))
        df.to_parquet(d / "items.parquet", index=False)
        manifest = {"format_version": 1, "n_items": len(df), "digest": "test-digest",
                    "source": {"path": str(source or tmp_path / "raw")}}
        (d / "manifest.json").write_text(json.dumps(manifest))
        return d

    return make


@pytest.fixture(scope="session")
def minilm() -> TextEncoder:
    """The bundled all-MiniLM-L6-v2, loaded once; later encoders in the session reuse the same model."""
    enc = TextEncoder(TextConfig())
    enc.load()
    return enc


@pytest.fixture
def png() -> Callable[[Path, tuple[int, int, int]], Path]:
    def write(path: Path, color: tuple[int, int, int]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(sum(color))
        pixels = (np.array(color, dtype=np.float32) + rng.normal(0, 20, (24, 24, 3))).clip(0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        return path

    return write
