"""Item images → open_clip image embeddings (ViT-B-32 by default), batched, missing images masked."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gatrec import log as glog
from gatrec.errors import GatrecError
from gatrec.features.download import is_url

log = glog.get(__name__)


class ImageConfig(BaseModel):
    """Which CLIP image tower embeds item pictures, and how pictures are fetched."""

    model_config = ConfigDict(extra="forbid")

    model: str = "ViT-B-32"
    # A checkpoint file, an open_clip pretrained tag (downloads when online), or "none" = random init.
    weights: str = "openai"
    batch_size: int = Field(32, ge=1, le=1024)
    device: str | None = None
    seed: int = Field(0, description="seeds random init so 'none' weights are reproducible (and cacheable)")
    download_workers: int = Field(16, ge=1, le=128)
    download_retries: int = Field(3, ge=0, le=10)
    download_timeout: float = Field(20.0, gt=0)

    @property
    def random_weights(self) -> bool:
        return self.weights.lower() == "none"


def resolve_image_ref(ref: Any, source_dir: Path | None) -> str | None:
    """A URL as is, an absolute path as is, a relative path against the raw input folder; None = no image."""
    if ref is None or (isinstance(ref, float) and np.isnan(ref)):
        return None
    ref = str(ref).strip()
    if not ref:
        return None
    if is_url(ref):
        return ref
    p = Path(ref).expanduser()
    if not p.is_absolute() and source_dir is not None:
        p = source_dir / p
    return str(p)


def image_key(path: Path) -> str | None:
    """sha256 of the file's bytes; None when the file cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@functools.lru_cache(maxsize=2)  # one build per process (tests, sweeps)
def _load_model(name: str, pretrained: str | None, seed: int, device: str) -> tuple[Any, Any]:
    import open_clip
    import torch

    try:
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained,
                                                                         device=device)
    except Exception as exc:
        raise GatrecError(
            f"cannot load open_clip {name!r} with weights {pretrained!r}: {exc}. Offline? Pass "
            "--image-weights PATH (a local checkpoint) or --image-weights none (random init)") from exc
    return model.eval(), preprocess


class ImageEncoder:
    """Loads the open_clip model lazily: runs whose images are all cached never build it."""

    def __init__(self, cfg: ImageConfig):
        self.cfg = cfg
        self.loads = 0

    @cached_property
    def weights_id(self) -> str:
        if self.cfg.random_weights:
            import open_clip

            return f"random:seed{self.cfg.seed}:open_clip{open_clip.__version__}"
        p = Path(self.cfg.weights).expanduser()
        if p.is_file():
            from gatrec.fsutil import file_digest

            return f"file:{file_digest(p)[:16]}"
        return f"tag:{self.cfg.weights}"

    @property
    def namespace(self) -> str:
        return f"image|{self.cfg.model}|{self.weights_id}|normalized"

    @cached_property
    def _loaded(self) -> tuple[Any, Any, str]:
        import torch

        self.loads += 1
        device = self.cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        pretrained = None if self.cfg.random_weights else self.cfg.weights
        if pretrained is not None and Path(pretrained).expanduser().exists():
            pretrained = str(Path(pretrained).expanduser())
        model, preprocess = _load_model(self.cfg.model, pretrained, self.cfg.seed, device)
        log.info("image_model_loaded", model=self.cfg.model, weights=self.cfg.weights, device=device)
        return model, preprocess, device

    def load(self) -> None:
        self._loaded  # noqa: B018 (cached_property: loads once)

    @property
    def dim(self) -> int:
        return int(self._loaded[0].visual.output_dim)

    def _prepare(self, path: str) -> Any:
        from PIL import Image

        try:
            with Image.open(path) as im:
                return self._loaded[1](im.convert("RGB"))
        except Exception as exc:  # PIL raises many types for corrupt files; a bad image is just missing
            log.debug("image_unreadable", path=path, error=str(exc))
            return None

    def encode(self, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(L2-normalised float32 [n_ok, dim], ok mask [len(paths)]): unreadable images are skipped."""
        import torch
        from tqdm import tqdm

        model, _, device = self._loaded
        ok = np.zeros(len(paths), dtype=bool)
        out: list[np.ndarray] = []
        bs = self.cfg.batch_size
        with ThreadPoolExecutor(max_workers=4) as pool, torch.inference_mode():
            for start in tqdm(range(0, len(paths), bs), desc="embed images", unit="batch", disable=None):
                tensors = list(pool.map(self._prepare, paths[start:start + bs]))
                keep = [i for i, t in enumerate(tensors) if t is not None]
                ok[[start + i for i in keep]] = True
                if keep:
                    x = torch.stack([tensors[i] for i in keep]).to(device)
                    feats = model.encode_image(x, normalize=True)
                    out.append(feats.float().cpu().numpy())
        emb = np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)
        return np.ascontiguousarray(emb, dtype=np.float32), ok
