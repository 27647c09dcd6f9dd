"""Training-free fusion of modalities: L2-normalise each, concatenate, PCA to a compact, deterministic basis.

(The jointly trained MLP fusion lives in the GAT model; this one feeds the kNN graph and simple models.)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def fill_missing(x: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Rows where ``present`` is False get the (re-normalised) mean of the present rows."""
    x = np.array(x, dtype=np.float32, copy=True)
    if present.all() or not present.any():
        return x
    mean = x[present].mean(axis=0, keepdims=True)
    x[~present] = l2_normalize(mean)
    return x


def pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Project centred ``x`` on its top ``dim`` principal axes: (scores [n, dim'], explained-variance ratio).

    Exact and deterministic (float64, no randomness): thin SVD when n ≤ d, otherwise the eigenvectors of
    the d×d scatter matrix (far cheaper than an SVD of a tall n×d matrix). Each axis's sign is fixed so its
    largest-magnitude loading is positive, making output reproducible across runs. ``dim' = min(dim, n, d)``.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    dim = min(dim, n, d)
    xc = x - x.mean(axis=0, keepdims=True)
    if n <= d:
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        var, axes = s**2, vt
    else:
        evals, evecs = np.linalg.eigh(xc.T @ xc)
        order = np.argsort(evals)[::-1]
        var, axes = np.clip(evals[order], 0.0, None), evecs[:, order].T
    axes = axes[:dim]
    signs = np.sign(axes[np.arange(dim), np.abs(axes).argmax(axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    ratio = var[:dim] / (var.sum() or 1.0)
    return (xc @ axes.T).astype(np.float32), ratio.astype(np.float32)


def fuse(arrays: Sequence[np.ndarray], dim: int = 128) -> tuple[np.ndarray, float]:
    """PCA(concat(l2(a) for a in arrays)) → (float32 [n, min(dim, n, Σd)], explained-variance fraction)."""
    if not arrays:
        raise ValueError("nothing to fuse")
    x = np.concatenate([l2_normalize(a) for a in arrays], axis=1)
    scores, ratio = pca(x, dim)
    return scores, float(ratio.sum())
