"""Small prepared-dataset folders (items.parquet + manifest.json) and tiny images, built per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gatrec.features.text import TextConfig, TextEncoder
from tests.kit import write_items


@pytest.fixture(autouse=True)
def _no_shared_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's $GATREC_CACHE must not make these tests pass (or fail) by accident.
    monkeypatch.delenv("GATREC_CACHE", raising=False)


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """make_dataset(rows, source=None, name="prepared") → an items folder (tests/kit.py write_items)."""

    def make(rows: list[dict], source: Path | None = None, name: str = "prepared") -> Path:
        return write_items(tmp_path / name, rows, source=source or tmp_path / "raw")

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
