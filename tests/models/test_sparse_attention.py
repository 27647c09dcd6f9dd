"""The sparse-matmul aggregation equals the PyG layer's own forward, values and gradients."""

from __future__ import annotations

import pytest
import torch

from gatrec.models.gat import GATConfig, attention_conv
from gatrec.models.sparse import EdgeCSR
from gatrec.models.sparse_attention import attend, attend_and_gather, is_node_attention, logits
from tests.models.test_sparse import random_symmetric_graph


@pytest.mark.parametrize(("conv_kind", "slope"), [("gat", 0.2), ("gat", 1.0), ("gatv2", 0.2)])
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("with_edge_attr", [False, True])
@pytest.mark.parametrize("with_degree", [False, True])
def test_attend_equals_the_layers_forward(conv_kind: str, slope: float, heads: int, with_edge_attr: bool,
                                          with_degree: bool) -> None:
    """slope 1 without edge features takes the per-neighbour-weight path (``is_node_attention``)."""
    n, d = 40, 8
    edges = random_symmetric_graph(n, 200, seed=3)
    graph, perm = EdgeCSR.from_edges(edges, n)
    torch.manual_seed(0)
    conv = attention_conv(GATConfig(dim=d, heads=heads, conv=conv_kind, attention_scale=1.0,
                                    negative_slope=slope), edge_dim=1 if with_edge_attr else None)
    assert is_node_attention(conv, torch.ones(1) if with_edge_attr else None) == (slope == 1 and not with_edge_attr)
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
    params = [p for p in conv.parameters() if p.requires_grad]  # slope 1 freezes att_dst: it cancels
    fast_grads = [x.grad.clone()] + [p.grad.clone() for p in params]
    x.grad = None
    conv.zero_grad()
    slow = d_out * conv(d_in * x, graph.edge_index, attr)
    (slow * torch.arange(d)).sum().backward()
    slow_grads = [x.grad] + [p.grad for p in params]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_attend_refuses_layers_it_does_not_reproduce() -> None:
    from torch_geometric.nn import GATConv

    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(10, 30, seed=4), 10)
    with pytest.raises(ValueError, match="Tile"):
        attend(GATConv(4, 4, add_self_loops=False), torch.randn(10, 4), graph)


def test_node_attention_survives_extreme_logits_and_isolated_nodes() -> None:
    """Logits far apart give no NaN (in values or gradients); a node without neighbours gets 0, as in GATConv."""
    n, d = 6, 3
    edges = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])  # node 5 isolated
    graph, _ = EdgeCSR.from_edges(edges, n)
    conv = attention_conv(GATConfig(dim=d, attention_scale=1.0))
    with torch.no_grad():
        conv.parametrizations.att_src.original.fill_(1.0)
    x = torch.tensor([[0.0] * d, [0.0] * d, [100.0] * d, [-100.0] * d, [-100.0] * d, [1.0] * d],
                     requires_grad=True)
    out = attend(conv, x, graph)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(out[1], x[2].detach())  # node 1 attends (all but) only to the top neighbour
    torch.testing.assert_close(out[3], x[4].detach())  # far below the top logit: still its only neighbour
    assert torch.equal(out[5], torch.zeros(d))


@pytest.mark.parametrize("slope", [0.2, 1.0])
def test_detached_scores_change_only_the_embeddings_gradient(slope: float) -> None:
    n, d = 30, 6
    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(n, 120, seed=5), n)
    conv = attention_conv(GATConfig(dim=d, attention_scale=1.0, negative_slope=slope))
    with torch.no_grad():
        conv.parametrizations.att_src.original.normal_()
    x = torch.randn(n, d, requires_grad=True)
    degree = torch.randint(1, 5, (n, 1)).float()
    runs = []
    for detach in (False, True):
        out = attend(conv, x, graph, degree=degree, detach_scores=detach)
        (out * torch.arange(d)).sum().backward()
        runs.append((out.detach(), x.grad.clone(), conv.parametrizations.att_src.original.grad.clone()))
        x.grad = None
        conv.zero_grad()
    (out0, gx0, ga0), (out1, gx1, ga1) = runs
    torch.testing.assert_close(out0, out1)
    torch.testing.assert_close(ga0, ga1)  # the attention vector learns the same
    assert not torch.allclose(gx0, gx1)  # the embeddings no longer learn through the logits


@pytest.mark.parametrize(("slope", "heads"), [(1.0, 1), (1.0, 2), (0.2, 1)])
def test_attend_at_rows_equals_the_full_layer_at_those_rows(slope: float, heads: int) -> None:
    """Values and gradients (of x and of the attention vectors) as by indexing the full layer's output."""
    n, d = 40, 5
    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(n, 160, seed=8), n)
    conv = attention_conv(GATConfig(dim=d, heads=heads, attention_scale=1.0, negative_slope=slope))
    with torch.no_grad():
        conv.parametrizations.att_src.original.normal_()
    x = torch.randn(n, d, requires_grad=True)
    degree = torch.randint(1, 5, (n, 1)).float()
    rows = torch.tensor([1, 2, 7, 20, 39])
    weight = torch.randn(len(rows), d)
    runs = []
    for restricted in (False, True):
        if restricted:
            out, gathered = attend_and_gather(conv, x, graph, degree=degree, rows=rows, gather=rows)
        else:
            out, gathered = attend(conv, x, graph, degree=degree)[rows], x[rows]
        ((out + gathered.pow(2)) * weight).sum().backward()
        runs.append((out.detach(), gathered.detach(), x.grad.clone(), conv.parametrizations.att_src.original.grad.clone()))
        x.grad = None
        conv.zero_grad()
    for full, part in zip(*runs, strict=True):
        torch.testing.assert_close(part, full)


@pytest.mark.parametrize("n", [3, 37])  # fewer rows than chunks; chunks plus rows left over
def test_logits_match_the_matrix_product_in_values_and_gradients(n: int) -> None:
    x = torch.randn(n, 5, dtype=torch.float64, requires_grad=True)
    att = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(logits(x, att), x @ att.T)
    torch.autograd.gradcheck(logits, (x, att))
