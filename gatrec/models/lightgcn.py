"""LightGCN (He et al., SIGIR 2020), with the semantics of ``torch_geometric.nn.LightGCN``.

The final representation is the mean over layers 0..L of embeddings propagated on the symmetric-normalised
user-item graph (alpha = 1/(L+1)), and the BPR regulariser acts on the layer-0 (ego) embeddings. Only the
initialisation differs from PyG's: N(0, init_std) as in the paper's code (see ``LightGCNConfig``).

Propagation multiplies by the cached sparse CSR matrix (``TrainGraph.propagate``) instead of running
``LGConv`` on ``edge_index``: the same result, much faster on CPU (BENCHMARKS.md, Design notes).

A training step computes the loss from the batch's rows only (``propagate_rows``): the last layer from those
rows' edges, each layer's input gathered there with its product (``TrainGraph.propagate_gather``). The loss
and its gradients are those of the full propagation (tests/models/test_recommenders.py).
"""

from __future__ import annotations

import torch
from pydantic import ConfigDict, Field

from gatrec.models.base import BatchRows, RowsRecommender, TrainGraph, normal_table, triple_loss
from gatrec.models.contrastive import ContrastiveFields, add_contrastive, perturb


class LightGCNConfig(ContrastiveFields):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(64, ge=1, description="embedding size")
    n_layers: int = Field(3, ge=0, description="propagation layers (0 = matrix factorisation)")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's layer-0 embeddings")
    init_std: float = Field(0.1, gt=0, description="ID embeddings ~ N(0, init_std), as the official LightGCN "
                            "code (PyG's smaller Xavier init leaves a long plateau)")


class LightGCN(RowsRecommender):
    name = "lightgcn"
    Config = LightGCNConfig

    def __init__(self, n_users: int, n_items: int, config: LightGCNConfig, graph: TrainGraph | None = None):
        super().__init__(n_users, n_items, config, graph)
        if graph is None:
            raise ValueError("lightgcn needs the training graph")
        self.graph = graph
        self.embedding = normal_table(n_users + n_items, config.dim, config.init_std)

    def propagate(self) -> torch.Tensor:
        """Layer-mean of the propagated embeddings of all nodes, (n_users + n_items, dim)."""
        x = self.embedding
        out = x
        for _ in range(self.config.n_layers):
            x = self.graph.propagate(x)
            out = out + x
        return out / (self.config.n_layers + 1)

    def propagate_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``propagate()[rows]`` and ``embedding[rows]`` (sorted distinct node ids), computed for them."""
        out, ego, _ = self._rows(rows)
        return out, ego

    def _rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``propagate_rows`` and every layer's output at ``rows`` (layer 0 first)."""
        x, at_rows = self.embedding, []
        eps = self.config.cl_noise_now(self.training)  # XSimGCL's perturbation of each layer (contrastive.py)
        for depth in range(1, self.config.n_layers + 1):
            last = depth == self.config.n_layers
            x, x_in = self.graph.propagate_gather(x, rows, rows if last else None)  # x_in: this layer's input
            x = perturb(x, eps)
            at_rows.append(x_in)
        if not at_rows:  # no layers: matrix factorisation
            ego = x.index_select(0, rows)
            return ego, ego, [ego]
        return (sum(at_rows) + x) / (len(at_rows) + 1), at_rows[0], [*at_rows, x]

    def loss(self, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = BatchRows.of(self.n_users, users, pos, neg)
        out, ego, layers = self._rows(batch.rows)
        return add_contrastive(triple_loss(out, ego, batch, self.config.reg_weight), out, layers, batch.rows,
                               self.n_users, self.config)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.propagate()
        return out[: self.n_users], out[self.n_users:]
