"""Intent-aware (disentangled) propagation over the user-item graph, after DGCF's factor routing (Wang et al.,
"Disentangled Graph Collaborative Filtering", SIGIR 2020).

The embedding is split into ``K`` chunks, one per latent intent. Every edge shares itself among the intents
by a softmax over its per-intent affinities, ``route_k(u, i) = softmax_k(t <tanh(x_u,k), tanh(x_i,k)>)``, and
intent ``k``'s chunk propagates over the graph weighted by those shares, symmetric-normalised by the
per-intent degrees: ``x'_k = D_k^-1/2 R_k D_k^-1/2 x_k`` with ``D_k = diag(R_k 1)``. The attention is
therefore dynamic (it depends on both ends of an edge, unlike GATConv's per-neighbour weight) and has no
parameters of its own: the embeddings decide the routing. One routing pass per layer, from the layer's input
(DGCF iterates it); the affinity is symmetric in the edge's ends (tanh on both), so both directions of an
undirected edge share one route; DGCF's independence term between intents is left out.

At ``t = 0`` every share is ``1/K``, ``D_k = D/K``, and a layer is exactly LightGCN's ``D^-1/2 A D^-1/2 x``:
the uniform-attention control. ``detach``: the affinities read the embeddings without passing gradients
to them (as the GAT's ``attention_detach``).
"""

from __future__ import annotations

import torch

from gatrec.models.sparse import EdgeCSR, spmm


def routes(x: torch.Tensor, graph: EdgeCSR, n_intents: int, temperature: float) -> torch.Tensor:
    """Each edge's share per intent, (E, K), rows summing to 1 (edges in ``graph``'s CSR order)."""
    h = torch.tanh(x).view(x.shape[0], n_intents, -1)
    target, source = graph.edge_index[1], graph.edge_index[0]
    affinity = (h.index_select(0, target) * h.index_select(0, source)).sum(-1)
    return torch.softmax(temperature * affinity, dim=1)


def intent_layer(x: torch.Tensor, graph: EdgeCSR, n_intents: int, temperature: float,
                 detach: bool = True) -> torch.Tensor:
    """One propagation layer: intent ``k``'s columns of ``x`` over the graph weighted by the edges' shares."""
    if x.shape[1] % n_intents:
        raise ValueError(f"embedding size {x.shape[1]} is not a multiple of {n_intents} intents")
    route = routes(x.detach() if detach else x, graph, n_intents, temperature)
    target, source = graph.edge_index[1], graph.edge_index[0]
    degree = torch.zeros(graph.n, n_intents, dtype=x.dtype, device=x.device).index_add(0, target, route)
    inv_sqrt = torch.where(degree > 0, degree, 1.0).rsqrt()
    values = route * inv_sqrt.index_select(0, target) * inv_sqrt.index_select(0, source)
    chunks = x.view(x.shape[0], n_intents, -1)
    return torch.cat([spmm(values[:, k], chunks[:, k], graph) for k in range(n_intents)], dim=1)
