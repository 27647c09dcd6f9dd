"""The sparse-matmul aggregation equals the PyG layer's own forward, values and gradients."""

from __future__ import annotations

import pytest
import torch

from gatrec.models.gat import GATConfig, attention_conv
from gatrec.models.sparse_attention import EdgeCSR, attend, spmm


def random_symmetric_graph(n: int, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (2, m), generator=g)
    keep = src != dst
    edges = torch.stack([src[keep], dst[keep]])
    edges = torch.unique(torch.cat([edges, edges.flip(0)], dim=1), dim=1)
    return edges[:, torch.randperm(edges.shape[1], generator=g)]  # any order in, CSR order inside


def test_from_edges_sorts_and_finds_reverse_edges() -> None:
    edges = random_symmetric_graph(30, 120, seed=1)
    graph, perm = EdgeCSR.from_edges(edges, 30)
    assert torch.equal(graph.edge_index, edges[:, perm])
    src, dst = graph.edge_index
    assert torch.equal(src[graph.reverse], dst) and torch.equal(dst[graph.reverse], src)
    assert torch.equal(graph.crow.diff(), torch.bincount(dst, minlength=30))


def test_from_edges_rejects_a_one_way_edge() -> None:
    with pytest.raises(ValueError, match="reverse"):
        EdgeCSR.from_edges(torch.tensor([[0, 1, 2], [1, 0, 0]]), 3)


def test_spmm_matches_dense_in_values_and_gradients() -> None:
    edges = random_symmetric_graph(25, 100, seed=2)
    graph, _ = EdgeCSR.from_edges(edges, 25)
    values = torch.rand(edges.shape[1], dtype=torch.float64, requires_grad=True)
    x = torch.randn(25, 4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda v, h: spmm(v, h, graph), (values, x))
    dense = torch.zeros(25, 25, dtype=torch.float64).index_put((graph.edge_index[1], graph.edge_index[0]),
                                                               values.detach())
    torch.testing.assert_close(spmm(values, x, graph), dense @ x)


@pytest.mark.parametrize("conv_kind", ["gat", "gatv2"])
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("with_edge_attr", [False, True])
@pytest.mark.parametrize("with_degree", [False, True])
def test_attend_equals_the_layers_forward(conv_kind: str, heads: int, with_edge_attr: bool,
                                          with_degree: bool) -> None:
    n, d = 40, 8
    edges = random_symmetric_graph(n, 200, seed=3)
    graph, perm = EdgeCSR.from_edges(edges, n)
    torch.manual_seed(0)
    conv = attention_conv(GATConfig(dim=d, heads=heads, conv=conv_kind, attention_scale=1.0),
                          edge_dim=1 if with_edge_attr else None)
    with torch.no_grad():  # non-uniform attention, so the test sees it
        for p in conv.parameters():
            p.normal_()
    attr = torch.rand(edges.shape[1], 1)[perm] if with_edge_attr else None
    x = torch.randn(n, d, requires_grad=True)
    # with a degree vector: D^1/2 conv(D^-1/2 x), degrees not all 1 (and one 0, which counts as 1)
    degree = torch.randint(0, 6, (n, 1)).float() if with_degree else None
    d_in, d_out = (torch.ones(n, 1), torch.ones(n, 1)) if degree is None else (
        degree.clamp(min=1).rsqrt(), degree.clamp(min=1).sqrt())
    fast = attend(conv, x, graph, attr, degree)
    (fast * torch.arange(d)).sum().backward()
    fast_grads = [x.grad.clone()] + [p.grad.clone() for p in conv.parameters()]
    x.grad = None
    conv.zero_grad()
    slow = d_out * conv(d_in * x, graph.edge_index, attr)
    (slow * torch.arange(d)).sum().backward()
    slow_grads = [x.grad] + [p.grad for p in conv.parameters()]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_attend_refuses_layers_it_does_not_reproduce() -> None:
    from torch_geometric.nn import GATConv

    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(10, 30, seed=4), 10)
    with pytest.raises(ValueError, match="Tile"):
        attend(GATConv(4, 4, add_self_loops=False), torch.randn(10, 4), graph)
