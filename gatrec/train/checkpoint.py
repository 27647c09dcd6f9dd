"""Per-epoch training checkpoints: written atomically, loaded without unpickling arbitrary objects.

A checkpoint holds everything needed to continue bit-for-bit: model and optimizer state, the RNG states of
torch / numpy / python, the epoch, the best result so far (with its model state), the patience counter and
the history. Everything is stored as tensors and plain containers, so ``torch.load(weights_only=True)``
reads it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gatrec.errors import GatrecError
from gatrec.fsutil import atomic_file

LAST = "last.pt"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` via a temp file and a rename: a kill never leaves a torn checkpoint."""
    with atomic_file(path, "wb") as fh:
        torch.save(state, fh)


def load(path: str | Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a checkpoint from another version or a damaged file
        raise GatrecError(f"{path}: cannot read checkpoint ({exc}); rerun with --overwrite") from exc


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module``'s state (so later training steps do not change it)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
