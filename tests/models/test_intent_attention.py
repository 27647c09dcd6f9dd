"""DGCF-style intent routing (gatrec/models/intent_attention.py): a dense reference for values and gradients,
LightGCN at temperature 0, and the GAT built with it."""

from __future__ import annotations

import torch

from gatrec.models.intent_attention import intent_layer, routes
from gatrec.models.sparse import EdgeCSR


def _graph(n_users: int = 5, n_items: int = 4, seed: int = 0) -> EdgeCSR:
    g = torch.Generator().manual_seed(seed)
    pairs = torch.nonzero(torch.rand(n_users, n_items, generator=g) < 0.6)
    ui = torch.stack([pairs[:, 0], pairs[:, 1] + n_users])
    return EdgeCSR.from_edges(torch.cat([ui, ui.flip(0)], dim=1), n_users + n_items)[0]


def _reference(x: torch.Tensor, edge_index: torch.Tensor, k: int, t: float) -> torch.Tensor:
    """The formula with dense per-intent matrices: x'_k = D_k^-1/2 R_k D_k^-1/2 x_k."""
    n, c = x.shape[0], x.shape[1] // k
    h = torch.tanh(x).view(n, k, c)
    outs = []
    for j in range(k):
        affinity = torch.zeros(n, n, k, dtype=x.dtype)
        for e in range(edge_index.shape[1]):
            s, r = int(edge_index[0, e]), int(edge_index[1, e])
            affinity[r, s] = (h[r] * h[s]).sum(-1)
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[edge_index[1], edge_index[0]] = True
        share = torch.where(mask, torch.softmax(t * affinity, dim=2)[..., j], 0.0)
        deg = share.sum(1)
        inv = torch.where(deg > 0, deg, 1.0).rsqrt()
        outs.append((inv[:, None] * share * inv[None, :]) @ x[:, j * c:(j + 1) * c])
    return torch.cat(outs, dim=1)


def test_layer_equals_the_dense_formula_in_values_and_gradients() -> None:
    graph = _graph()
    x = torch.randn(graph.n, 6, dtype=torch.float64, requires_grad=True)
    got = intent_layer(x, graph, 3, 0.7, detach=False)
    want = _reference(x, graph.edge_index, 3, 0.7)
    torch.testing.assert_close(got, want)
    w = torch.randn_like(got)
    (g_got,) = torch.autograd.grad((got * w).sum(), x)
    (g_want,) = torch.autograd.grad((want * w).sum(), x)
    torch.testing.assert_close(g_got, g_want)
    assert torch.autograd.gradcheck(lambda v: intent_layer(v, graph, 3, 0.7, detach=False), (x,))


def test_detached_routing_passes_gradients_through_the_sum_only() -> None:
    graph = _graph(seed=1)
    x = torch.randn(graph.n, 4, dtype=torch.float64, requires_grad=True)
    out = intent_layer(x, graph, 2, 1.0, detach=True)
    torch.testing.assert_close(out, intent_layer(x, graph, 2, 1.0, detach=False))  # same values
    (grad,) = torch.autograd.grad(out.sum(), x)
    with torch.no_grad():  # the routing held constant: the output is linear in x
        share = routes(x, graph, 2, 1.0)
    assert torch.isfinite(grad).all() and share.shape == (graph.edge_index.shape[1], 2)
    torch.testing.assert_close(share.sum(1), torch.ones(share.shape[0], dtype=share.dtype))


def test_temperature_zero_is_lightgcn() -> None:
    graph = _graph(seed=2)
    x = torch.randn(graph.n, 8, dtype=torch.float64)
    deg = torch.bincount(graph.edge_index[1], minlength=graph.n).to(x.dtype)
    inv = torch.where(deg > 0, deg, 1.0).rsqrt()
    a = torch.zeros(graph.n, graph.n, dtype=x.dtype)
    a[graph.edge_index[1], graph.edge_index[0]] = 1.0
    torch.testing.assert_close(intent_layer(x, graph, 4, 0.0), (inv[:, None] * a * inv[None, :]) @ x)
