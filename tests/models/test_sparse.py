"""Sparse products with hand-written backwards: values and gradients against dense algebra."""

from __future__ import annotations

import pytest
import torch

from gatrec.models.sparse import EdgeCSR, block_spmm, spmm


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


def test_block_spmm_over_the_whole_graph_matches_dense_in_values_and_gradients() -> None:
    edges = random_symmetric_graph(25, 100, seed=6)
    graph, _ = EdgeCSR.from_edges(edges, 25)
    a, b = (torch.rand(25, dtype=torch.float64).add(0.1).requires_grad_() for _ in range(2))
    x = torch.randn(25, 4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b, x: block_spmm(x, graph.block(), a, b)[0], (a, b, x))
    adj = torch.zeros(25, 25, dtype=torch.float64).index_put((graph.edge_index[1], graph.edge_index[0]),
                                                             torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(block_spmm(x, graph.block(), a, b)[0], a[:, None] * (adj @ (b[:, None] * x)))


def dense_adjacency(graph: EdgeCSR, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.zeros(graph.n, graph.n, dtype=dtype).index_put((graph.edge_index[1], graph.edge_index[0]),
                                                                torch.tensor(1.0, dtype=dtype))


def test_row_block_is_the_graph_rows_and_its_transpose() -> None:
    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(30, 120, seed=9), 30)
    rows = torch.tensor([0, 4, 5, 17, 29])
    weights = torch.rand(graph.col.numel(), dtype=torch.float64)
    block = graph.block(rows, weights)
    w = torch.zeros(30, 30, dtype=torch.float64).index_put((graph.edge_index[1], graph.edge_index[0]), weights)
    torch.testing.assert_close(block.matrix(block.weights).to_dense(), w[rows])
    torch.testing.assert_close(block.t_matrix(block.t_weights).to_dense(), w[rows].T)
    torch.testing.assert_close(block.row.long(), torch.repeat_interleave(torch.arange(5), block.crow.diff().long()))
    full = graph.block(None, weights)
    torch.testing.assert_close(full.t_matrix(full.t_weights).to_dense(), w.T)


@pytest.mark.parametrize("restricted", [False, True])
def test_block_spmm_gradients_with_scalings_weights_and_gather(restricted: bool) -> None:
    n = 25
    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(n, 100, seed=10), n)
    rows = torch.tensor([2, 3, 11, 24]) if restricted else None
    block = graph.block(rows)
    r = n if rows is None else len(rows)
    a = torch.rand(r, dtype=torch.float64).add(0.1).requires_grad_()
    b = torch.rand(n, dtype=torch.float64).add(0.1).requires_grad_()
    x = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    gather = torch.tensor([0, 3, 7, 24])
    torch.autograd.gradcheck(lambda a, b, x: block_spmm(x, block, a, b, gather), (a, b, x))
    adj = dense_adjacency(graph)[slice(None) if rows is None else rows]
    out, gathered = block_spmm(x, block, a, b, gather)
    torch.testing.assert_close(out, a[:, None] * (adj @ (b[:, None] * x)))
    torch.testing.assert_close(gathered, x[gather])
    weights = torch.rand(graph.col.numel(), dtype=torch.float64)  # fixed (non-symmetric) edge values
    fixed = graph.block(rows, weights)
    torch.autograd.gradcheck(lambda x: block_spmm(x, fixed, gather=gather), (x,))
