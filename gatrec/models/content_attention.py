"""Content attention: neighbour weights from what the nodes are, not from the ID embeddings being weighted.

The GAT's own attention reads the ID embeddings it re-weights, so it can only learn what the propagation
already knows (and overfits when its gradients reach them: gatrec/models/gat.py). Here each node has a fixed
*content key*, the logit of edge j -> i is ``t_l * cos(W k_i, W k_j)`` with a learned temperature ``t_l``
per layer (0 at the start: uniform attention, i.e. LightGCN's propagation) and an optional learned
projection ``W`` (identity at the start), and the values are the layer input. Keys (``content_keys``):

* ``features``: an item's key is its feature vector (``gatrec embed``; unit rows, reduced to ``dim`` by
  PCA), a user's the mean key of the items they interacted with: attention weighs an item by how well its
  content fits the user's profile, and a user, at an item, by how well their profile fits the item (GRCN's
  content-based edge refinement, Wei et al., MM 2020, as a softmax);
* ``interactions``: the rank-``dim`` truncated SVD of the normalised training matrix, users ``U S^1/2`` and
  items ``V S^1/2``: the low-rank fit of an edge, which down-weights interactions outside a user's main
  tastes (for data without item features).

A layer is ``torch_geometric.nn.TransformerConv`` (dot-product attention, one head, no root weight, bias or
edge features) with its query/key maps reading the keys and its value map the identity on the layer input,
in LightGCN's form ``D^1/2 conv(D^-1/2 x)`` as the GAT's layers; ``ContentAttention.conv`` builds that
layer and tests/models/test_content_attention.py checks outputs and gradients against its ``forward``.
Computed here without PyG's per-edge messages: the logits by one SDDMM (``torch.sparse.sampled_addmm``), the
softmax by PyG's ``softmax``, the sum by a CSR matmul (``gatrec.models.sparse.spmm``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F
from torch import nn

from gatrec.models.sparse import EdgeCSR, spmm

if TYPE_CHECKING:  # PyG is imported where a layer runs (gatrec/models/gat.py says why)
    from torch_geometric.nn import TransformerConv

KeySource = Literal["features", "interactions"]


def _unit_rows(a: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    return (a / np.maximum(norm, 1e-12)).astype(np.float32)


def content_keys(source: KeySource, train: sp.spmatrix, dim: int,
                 features: np.ndarray | None = None) -> torch.Tensor:
    """Unit content keys (n_users + n_items, k) for users then items, k = min(dim, what the source has).

    ``train``: the binary user × item training matrix; ``features`` (n_items, f): for ``features``.
    """
    r = sp.csr_matrix(train, dtype=np.float64)
    r.data[:] = 1.0
    n_users, n_items = r.shape
    if source == "features":
        if features is None:
            raise ValueError("content keys from features need the item features")
        f = _unit_rows(np.asarray(features, dtype=np.float64)).astype(np.float64)
        f = f - f.mean(axis=0)
        k = min(dim, *f.shape)
        _, _, vt = np.linalg.svd(f, full_matrices=False)  # PCA: the directions the items differ along
        items = f @ vt[:k].T
        users = sp.diags(1.0 / np.maximum(np.asarray(r.sum(axis=1)).ravel(), 1)) @ r @ items
    elif source == "interactions":
        du = np.maximum(np.asarray(r.sum(axis=1)).ravel(), 1) ** -0.5
        di = np.maximum(np.asarray(r.sum(axis=0)).ravel(), 1) ** -0.5
        norm = sp.diags(du) @ r @ sp.diags(di)
        k = min(dim, min(r.shape) - 1)
        # a fixed start vector: the keys, and so the runs, do not depend on the global RNG
        u, s, vt = spla.svds(norm, k=k, v0=np.ones(min(r.shape)) / math.sqrt(min(r.shape)))
        users, items = u * np.sqrt(s), vt.T * np.sqrt(s)
    else:
        raise ValueError(f"unknown content key source {source!r}")
    return torch.from_numpy(_unit_rows(np.vstack([users, items])))


class _EdgeDot(torch.autograd.Function):
    """``<q_r, k_c>`` for every edge (r, c) of ``graph`` (CSR order), by an SDDMM: never an E × k tensor."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, graph: EdgeCSR) -> torch.Tensor:  # type: ignore[override]
        ctx.graph = graph
        ctx.save_for_backward(q, k)
        pattern = graph.matrix(q.new_zeros(graph.col.numel()))
        return torch.sparse.sampled_addmm(pattern, q, k.T, beta=0.0).values()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        q, k = ctx.saved_tensors
        graph: EdgeCSR = ctx.graph
        grad = grad.contiguous()
        grad_q = graph.matrix(grad) @ k if ctx.needs_input_grad[0] else None
        grad_k = graph.matrix(grad.index_select(0, graph.reverse)) @ q if ctx.needs_input_grad[1] else None
        return grad_q, grad_k, None


def edge_dot(q: torch.Tensor, k: torch.Tensor, graph: EdgeCSR) -> torch.Tensor:
    """Per-edge ``<q[target], k[source]>`` over ``graph``'s edges in CSR order, differentiable in both."""
    return _EdgeDot.apply(q.contiguous(), k.contiguous(), graph)  # type: ignore[no-any-return]


class ContentAttention(nn.Module):
    """``n_layers`` attention layers over one graph whose logits are ``t_l cos(W key_i, W key_j)``.

    ``rate``: the learning-rate factor of the temperatures (``t = rate * raw``; under Adam a ``rate`` times
    larger step: cosines lie in [-1, 1], so a temperature needs to reach several units to matter, and a
    training run has a few hundred steps on office). ``learn_projection``: also learn ``W`` (starts as the
    identity, at the base rate); else the cosines are fixed and only the temperatures learn.
    """

    def __init__(self, keys: torch.Tensor, n_layers: int, rate: float = 1.0, learn_projection: bool = False):
        super().__init__()
        self.register_buffer("keys", keys, persistent=False)  # rebuilt from the data by GAT.build
        self.rate = rate
        self.raw_temperature = nn.Parameter(keys.new_zeros(n_layers))
        k = keys.shape[1]
        self.projection = nn.Parameter(torch.eye(k, device=keys.device)) if learn_projection else None

    @property
    def temperature(self) -> torch.Tensor:
        return self.rate * self.raw_temperature

    def projected(self) -> torch.Tensor:
        """The unit keys seen by the logits, (n, k)."""
        return self.keys if self.projection is None else F.normalize(self.keys @ self.projection, dim=1)

    def similarity(self, graph: EdgeCSR) -> torch.Tensor:
        """``cos(W key_target, W key_source)`` per edge of ``graph`` (CSR order)."""
        p = self.projected()
        return edge_dot(p, p, graph)

    def layer(self, i: int, x: torch.Tensor, graph: EdgeCSR, degree: torch.Tensor,
              similarity: torch.Tensor | None = None) -> torch.Tensor:
        """``D^1/2 conv_i(D^-1/2 x)`` over ``graph`` (``degree`` (n, 1)); ``similarity``: ``similarity(graph)``,
        when already computed (it is the same for every layer)."""
        sim = self.similarity(graph) if similarity is None else similarity
        target, source = graph.edge_index[1], graph.edge_index[0]
        from torch_geometric.utils import softmax

        alpha = softmax(self.temperature[i] * sim, target, num_nodes=graph.n)
        inv_sqrt = degree.clamp(min=1).rsqrt().view(-1)
        # (D^1/2 A D^-1/2)_rc = alpha_rc sqrt(d_r / d_c): with uniform alpha = 1/d_r, LightGCN's 1/sqrt(d_r d_c)
        values = alpha * inv_sqrt.index_select(0, source) / inv_sqrt.index_select(0, target)
        return spmm(values, x, graph)

    def propagate(self, x: torch.Tensor, graph: EdgeCSR, degree: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of every layer, each the input of the next, starting from ``x``."""
        sim = self.similarity(graph)
        outs = []
        for i in range(len(self.raw_temperature)):
            x = self.layer(i, x, graph, degree, sim)
            outs.append(x)
        return outs

    def conv(self, i: int, dim: int) -> TransformerConv:
        """Layer ``i`` as the PyG layer it is: ``TransformerConv`` on input rows ``[key, x]`` (x of size
        ``dim``), sharing this module's parameters, so ``D^1/2 conv(cat([keys, D^-1/2 x]))`` is ``layer``."""
        k = self.keys.shape[1]
        if k > dim:
            raise ValueError(f"content keys ({k}) wider than the layer ({dim})")
        from torch_geometric.nn import TransformerConv

        conv = TransformerConv(k + dim, dim, heads=1, root_weight=False, bias=False)
        conv.lin_query = _KeyMap(self, k, dim, lambda: self.temperature[i] * math.sqrt(dim))
        conv.lin_key = _KeyMap(self, k, dim, lambda: 1.0)
        conv.lin_value = _Columns(k)
        return conv


class _KeyMap(nn.Module):
    """TransformerConv's query/key map: ``scale() * normalize(key @ W)``, zero-padded to the layer width."""

    def __init__(self, owner: ContentAttention, k: int, dim: int, scale):  # type: ignore[no-untyped-def]
        super().__init__()
        self.owner, self.k, self.dim, self.scale = [owner], k, dim, scale  # a list: not a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = self.owner[0]
        keys = x[:, : self.k]
        p = keys if owner.projection is None else F.normalize(keys @ owner.projection, dim=1)
        return F.pad(self.scale() * p, (0, self.dim - self.k))

    def reset_parameters(self) -> None:  # TransformerConv.reset_parameters calls it: nothing to reset
        pass


class _Columns(nn.Module):
    """TransformerConv's value map: the identity on the layer input (the columns after the key)."""

    def __init__(self, start: int):
        super().__init__()
        self.start = start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:]

    def reset_parameters(self) -> None:
        pass
