"""The kNN graph equals an independent dense brute force, for both backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gatrec.graph.knn import KnnConfig, choose_backend, knn_graph


def brute_force(x: np.ndarray, k: int) -> dict[tuple[int, int], float]:
    """Dense cosine matrix, argsort per row, union of both directions (a different code path on purpose)."""
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    edges: dict[tuple[int, int], float] = {}
    for i, row in enumerate(sim):
        for j in np.argsort(-row, kind="stable")[:k]:
            edges[(i, int(j))] = edges[(int(j), i)] = float(row[j])
    return edges


def as_dict(edge_index: torch.Tensor, weight: torch.Tensor) -> dict[tuple[int, int], float]:
    return {(int(a), int(b)): float(w) for (a, b), w in zip(edge_index.T.tolist(), weight, strict=True)}


@pytest.mark.parametrize(("backend", "block_rows"), [("torch", None), ("torch", 7), ("faiss", None)])
def test_matches_brute_force(backend: str, block_rows: int | None) -> None:
    x = np.random.default_rng(0).normal(size=(150, 16)).astype(np.float32)
    edge_index, weight = knn_graph(x, 5, backend, block_rows=block_rows)
    assert edge_index.dtype == torch.long and weight.dtype == torch.float32
    got, ref = as_dict(edge_index, weight), brute_force(x, 5)
    assert got.keys() == ref.keys()
    np.testing.assert_allclose([got[e] for e in ref], list(ref.values()), atol=1e-5)


def test_symmetric_without_self_loops_and_each_item_has_its_k() -> None:
    x = torch.randn(80, 8, generator=torch.Generator().manual_seed(3))
    edge_index, weight = knn_graph(x, 4)
    pairs = set(map(tuple, edge_index.T.tolist()))
    assert all((b, a) in pairs for a, b in pairs)
    assert not (edge_index[0] == edge_index[1]).any()
    assert (torch.bincount(edge_index[0], minlength=80) >= 4).all()
    assert weight.le(1 + 1e-6).all()


def test_duplicates_small_inputs_and_masks() -> None:
    x = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)  # exact duplicates: self must still go
    for backend in ("torch", "faiss"):
        edge_index, _ = knn_graph(x, 10, backend)  # k larger than n-1 is clipped
        assert not (edge_index[0] == edge_index[1]).any() and edge_index.shape[1] == 12
    edge_index, _ = knn_graph(x, 1, mask=np.array([True, False, True, True]))
    assert 1 not in edge_index.flatten().tolist()
    assert edge_index.max() == 3  # indices stay in the full item space
    edge_index, weight = knn_graph(x[:1], 3)
    assert edge_index.shape == (2, 0) and weight.shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        knn_graph(np.array([[np.nan, 1.0], [1.0, 1.0]]), 1)


def test_backend_choice() -> None:
    assert choose_backend(100) == "torch" and choose_backend(50_000) == "faiss"
    assert choose_backend(50_000, "torch") == "torch" and choose_backend(10, "faiss") == "faiss"
    assert KnnConfig().k == 20
