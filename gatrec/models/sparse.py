"""Sparse graph products for the graph models: CSR matmuls with hand-written backwards.

Hand-written because torch's own backward for a sparse CSR matmul transposes the matrix on every call, and
PyG's ``propagate`` materialises one E × d message per edge. Every graph here has symmetric structure, so a
transpose is a re-indexing, never a sort.

A training step scores only the batch's users and items, so ``RowBlock`` restricts a product to some output
rows (a batch touches well under all of them), forward and backward, with exactly the full product's values
and gradients at those rows. From the CPU profile of a step: CSR indices are int32 (with int64 torch
converts them on every product), gathers use ``index_select`` (faster than ``t[idx]``), and a layer's input
is gathered at the batch rows by the product itself, which adds that gradient in place (a separate gather's
backward writes a zeroed nodes × d tensor, and autograd one more sum). The figures are in BENCHMARKS.md,
Design notes.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


def index_dtype(n_edges: int) -> torch.dtype:
    """The index type for CSR matrices: int32 where it fits, which MKL takes as is (with int64 indices torch
    converts them on every product)."""
    return torch.int32 if n_edges < 2**31 - 1 else torch.int64


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": relied upon knowingly
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


@dataclass(frozen=True)
class EdgeCSR:
    """A graph with symmetric structure, its edges in CSR order (rows = targets, sorted by row then column).

    ``edge_index`` is the PyG view of the same edges (``[source=col, target=row]``), so per-edge tensors from
    PyG (attention) line up with the CSR values; ``reverse[e]`` is the position of edge e's reverse edge,
    which gives the transposed matrix without re-sorting.
    """

    crow: torch.Tensor
    col: torch.Tensor
    reverse: torch.Tensor
    edge_index: torch.Tensor
    n: int

    @classmethod
    def from_edges(cls, edge_index: torch.Tensor, n: int) -> tuple[EdgeCSR, torch.Tensor]:
        """Sort ``edge_index`` (2, E) into CSR order; returns the graph and the permutation applied (so
        per-edge attributes can follow). Raises ValueError unless every edge's reverse is present."""
        row, col = edge_index[1], edge_index[0]  # aggregate at the PyG target
        key = row * n + col
        key, perm = torch.sort(key)
        row, col = row[perm], col[perm]
        reverse = torch.searchsorted(key, col * n + row)
        if key.numel() and (reverse.max() >= key.numel() or not torch.equal(key[reverse], col * n + row)):
            raise ValueError("the graph must contain the reverse of every edge (symmetric structure)")
        crow = torch.zeros(n + 1, dtype=torch.long, device=key.device)
        crow[1:] = torch.cumsum(torch.bincount(row, minlength=n), 0)
        return cls(crow, col, reverse, torch.stack([col, row]), n), perm

    @functools.cached_property
    def compressed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``crow``, ``col`` and each edge's row in ``index_dtype`` (for products and ``index_select``)."""
        dtype = index_dtype(self.col.numel())
        return self.crow.to(dtype), self.col.to(dtype), self.edge_index[1].to(dtype)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        crow, col, _ = self.compressed
        return _csr(crow, col, values, (self.n, self.n))

    @functools.cached_property
    def structure(self) -> sp.csr_matrix:
        """The pattern as a scipy CSR matrix (on the CPU) whose values are the edges' positions, for slicing."""
        pos = np.arange(self.col.numel(), dtype=np.int64)
        return sp.csr_matrix((pos, self.col.cpu().numpy(), self.crow.cpu().numpy()), shape=(self.n, self.n))

    def block(self, rows: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> RowBlock:
        """The rows ``rows`` (sorted, distinct node ids) of this graph, all rows when None; ``weights``: fixed
        edge values (CSR order), else the block is the 0/1 pattern."""
        return RowBlock.full(self, weights) if rows is None else RowBlock.of(self, rows, weights)


@dataclass(frozen=True)
class RowBlock:
    """``B = A[rows, :]`` (r × n) of a graph with symmetric structure, and ``B^T = A[:, rows]`` (n × r).

    Both in CSR with each edge's row and column spelled out: ``row``/``t_col`` count in 0..r-1 (position in
    ``rows``), ``col``/``t_row`` are node ids. ``weights``/``t_weights``: fixed edge values of B and B^T, or
    None for the 0/1 pattern.
    """

    crow: torch.Tensor
    row: torch.Tensor
    col: torch.Tensor
    t_crow: torch.Tensor
    t_row: torch.Tensor
    t_col: torch.Tensor
    r: int
    n: int
    weights: torch.Tensor | None = None
    t_weights: torch.Tensor | None = None

    @classmethod
    def full(cls, g: EdgeCSR, weights: torch.Tensor | None = None) -> RowBlock:
        crow, col, row = g.compressed
        t_weights = None if weights is None else weights.index_select(0, g.reverse)
        return cls(crow, row, col, crow, row, col, g.n, g.n, weights, t_weights)

    @classmethod
    def of(cls, g: EdgeCSR, rows: torch.Tensor, weights: torch.Tensor | None = None) -> RowBlock:
        # scipy's compiled row slicing and transpose: several times faster than the same by torch gathers,
        # masks and cumsums on CPU.
        block = g.structure[rows.cpu().numpy()]
        t = block.T.tocsr()  # values: the position in g of the edge (rows[j], i) at (i, j)

        dtype = index_dtype(g.col.numel())

        def index(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(rows.device, dtype)

        def row_of_edges(m: sp.csr_matrix) -> torch.Tensor:
            return index(np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)))

        w = t_w = None
        if weights is not None:
            w, t_w = weights.index_select(0, index(block.data)), weights.index_select(0, index(t.data))
        return cls(index(block.indptr), row_of_edges(block), index(block.indices),
                   index(t.indptr), row_of_edges(t), index(t.indices), rows.numel(), g.n, w, t_w)

    def values(self, a: torch.Tensor | None, b: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Edge values of ``diag(a) B diag(b)`` (None: no scaling on that side), in ``like``'s dtype."""
        return _scaled(self.weights, a, self.row, b, self.col, like)

    def t_values(self, a: torch.Tensor | None, b: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """Edge values of its transpose, ``diag(b) B^T diag(a)``."""
        return _scaled(self.t_weights, b, self.t_row, a, self.t_col, like)

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.crow, self.col, values, (self.r, self.n))

    def t_matrix(self, values: torch.Tensor) -> torch.Tensor:
        return _csr(self.t_crow, self.t_col, values, (self.n, self.r))


def _scaled(weights: torch.Tensor | None, left: torch.Tensor | None, row: torch.Tensor,
            right: torch.Tensor | None, col: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = weights
    for scale, at in ((left, row), (right, col)):
        if scale is not None:
            picked = scale.index_select(0, at)  # (faster than scale[at] on CPU)
            values = picked if values is None else values * picked
    return like.new_ones(row.numel()) if values is None else values


def dense(grad: torch.Tensor) -> torch.Tensor:
    """A gradient as a strided tensor (autograd may hand a sparse one, e.g. from ``F.embedding``)."""
    return grad.to_dense() if grad.is_sparse else grad


def rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<a_i, b_i>`` for every row, by a batched matmul: it reads each operand once and uses every thread,
    where ``torch.linalg.vecdot`` writes and re-reads an n × d product."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


class _BlockSpmm(torch.autograd.Function):
    """``diag(a) B diag(b) x`` for a row block B, differentiable in ``a``, ``b``, ``x``; and ``x[gather]``.

    One sparse matmul each way, with the scalings folded into the E edge values (a_r b_c), and the gradients
    of ``a`` and ``b`` read off the two products (``a_r <g_r, out_r / a_r>``): no n × d scaling passes,
    which cost about as much as the matmul itself. Needs ``a, b > 0`` where they need gradients.
    ``x[gather]`` comes with it because its gradient is then added into ``x``'s in place: as a separate
    gather, its backward writes a zeroed (n, d) tensor and autograd one more (n, d) sum.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor | None, b: torch.Tensor | None, x: torch.Tensor, block: RowBlock,  # type: ignore[override]
                gather: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = block.matrix(block.values(a, b, x)) @ x
        ctx.block, ctx.gather = block, gather
        ctx.save_for_backward(a, b, x, out)
        return out, (x[:0] if gather is None else x.index_select(0, gather))

    @staticmethod
    def backward(ctx, grad: torch.Tensor, grad_gathered: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        a, b, x, out = ctx.saved_tensors
        block: RowBlock = ctx.block
        grad = dense(grad)
        grad_x = block.t_matrix(block.t_values(a, b, grad)) @ grad  # diag(b) B^T diag(a) g
        grad_a = rowdot(grad, out) / a if ctx.needs_input_grad[0] else None  # <g_r, (B diag(b) x)_r>
        grad_b = rowdot(grad_x, x) / b if ctx.needs_input_grad[1] else None  # <x_c, (B^T diag(a) g)_c>
        if ctx.gather is not None and grad_gathered is not None:
            grad_x.index_add_(0, ctx.gather, dense(grad_gathered))
        return grad_a, grad_b, grad_x, None, None


def block_spmm(x: torch.Tensor, block: RowBlock, a: torch.Tensor | None = None, b: torch.Tensor | None = None,
               gather: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, x[gather])`` with ``out[i] = a[i] * sum_{c in N(rows[i])} B_ic b[c] x[c]``; ``a`` (r,), ``b`` (n,)
    (None: 1); ``x[gather]`` is empty when ``gather`` is None."""
    return _BlockSpmm.apply(a, b, x.contiguous(), block, gather)  # type: ignore[no-any-return]


class _ValuedSpmm(torch.autograd.Function):
    """``csr(values) @ x`` differentiable in both ``values`` and ``x``."""

    @staticmethod
    def forward(ctx, values: torch.Tensor, x: torch.Tensor, graph: EdgeCSR) -> torch.Tensor:  # type: ignore[override]
        ctx.graph = graph
        ctx.save_for_backward(values, x)
        return graph.matrix(values) @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        values, x = ctx.saved_tensors
        graph: EdgeCSR = ctx.graph
        grad = dense(grad)
        grad_values = grad_x = None
        if ctx.needs_input_grad[0]:  # d/d a_rc of sum_r <g_r, sum_c a_rc x_c> = <g_r, x_c>, at the edges only
            pattern = graph.matrix(values.detach())
            grad_values = torch.sparse.sampled_addmm(pattern, grad, x.T, beta=0.0).values()
        if ctx.needs_input_grad[1]:
            grad_x = graph.matrix(values.index_select(0, graph.reverse)) @ grad
        return grad_values, grad_x, None


def spmm(values: torch.Tensor, x: torch.Tensor, graph: EdgeCSR) -> torch.Tensor:
    """``out[r] = sum_c values[(r, c)] * x[c]`` over the edges of ``graph`` (values in CSR order)."""
    return _ValuedSpmm.apply(values.contiguous(), x.contiguous(), graph)
