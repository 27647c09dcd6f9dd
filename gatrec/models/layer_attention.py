"""Per-node attention over the layer outputs: each user and item weighs its own propagation depths.

LightGCN, and the GAT built on it, end with the plain mean of the layer outputs ``h_0 .. h_L``: every node
gets the same mix of its own embedding and of its 1-, 2-, ... hop neighbourhoods. Which depth is
informative differs between nodes (a user with few interactions is described by their neighbourhood, a
heavy user by their own embedding; a niche item by its few co-consumers, a hub by much wider smoothing), so
here each node ``n`` mixes its layers with its own weights::

    out_n = sum_l alpha_nl h_nl,   alpha_n = softmax_l(<h_n0 W + a_l, h_nl>)

a query read from the node's layer-0 input (``W``, d × d) plus one learned vector per layer (``a_l``: the
depth's global preference), with separate parameters for users and for items. Both start at zero, so every
``alpha_nl`` starts at exactly ``1 / (L + 1)`` and the model starts as the mean-combined one (the sum is
computed as ``sum_l w_l h_l / sum_l w_l`` with ``w = 1`` then, in the mean's own order, so the outputs are
equal bit for bit). The scores read the layers detached when ``detach`` is set (the GAT's
``attention_detach``), so, as for the neighbour attention, only the layer attention's own parameters learn
from them.

Trained on the BPR loss, the attention over all layers can put each node back on its own ID embedding
(``alpha_n0`` -> 1): that is matrix factorisation, which fits the training edges best and generalises worst.
``fixed_ego`` keeps layer 0 at its mean share ``1 / (L + 1)`` (its weight is the mean of the others', so the
start is still exactly the mean) and lets each node choose only how far its neighbourhood reaches: its
softmax over layers ``1..L`` shares the rest. Node-local: an n × d product and ``L + 1`` row dot products, no per-edge work, so the batch-rows
training path (``GAT._rows``) and the full propagation combine identically.
"""

from __future__ import annotations

import torch
from torch import nn

# exp() of scores more than this below the row's top one is taken as exp(-_SPREAD): no 0/0 rows
_SPREAD = 40.0


class LayerAttention(nn.Module):
    """Softmax attention of each node over its ``n_layers + 1`` layer outputs (users first, then items)."""

    def __init__(self, dim: int, n_layers: int, detach: bool = True, fixed_ego: bool = False,
                 device: torch.device | str | None = None):
        super().__init__()
        self.detach = detach
        self.fixed_ego = fixed_ego and n_layers > 0
        self.query = nn.Parameter(torch.zeros(2, dim, dim, device=device))  # W for users, items
        self.layer_query = nn.Parameter(torch.zeros(2, n_layers + 1, dim, device=device))  # a_l for users, items

    def scores(self, layers: list[torch.Tensor], n_users: int) -> torch.Tensor:
        """``<h_n0 W + a_l, h_nl>``, (n, L + 1); the first ``n_users`` rows are users."""
        seen = [h.detach() for h in layers] if self.detach else layers
        parts = []
        for side, rows in enumerate((slice(0, n_users), slice(n_users, None))):
            hs = [h[rows] for h in seen]
            q = hs[0] @ self.query[side]
            parts.append(torch.stack([((q + self.layer_query[side, i]) * h).sum(1) for i, h in enumerate(hs)], 1))
        return torch.cat(parts)

    def weights(self, layers: list[torch.Tensor], n_users: int) -> torch.Tensor:
        """Unnormalised softmax weights ``exp(s - max s)`` per node and layer, (n, L + 1): all 1 at the start;
        with ``fixed_ego``, layer 0's is the mean of the others' (its share stays ``1 / (L + 1)``)."""
        s = self.scores(layers, n_users)
        if self.fixed_ego:
            s = s[:, 1:]
        w = torch.exp((s - s.max(dim=1, keepdim=True).values.detach()).clamp(min=-_SPREAD))
        return torch.cat([w.mean(dim=1, keepdim=True), w], dim=1) if self.fixed_ego else w

    def alpha(self, layers: list[torch.Tensor], n_users: int) -> torch.Tensor:
        """The attention ``alpha_nl`` (rows sum to 1)."""
        w = self.weights(layers, n_users)
        return w / w.sum(dim=1, keepdim=True)

    def forward(self, layers: list[torch.Tensor], n_users: int) -> torch.Tensor:
        """``sum_l alpha_nl h_nl`` at the rows of ``layers`` (each (n, d), layer 0 first)."""
        if len(layers) != self.layer_query.shape[1]:
            raise ValueError(f"{len(layers)} layer outputs for an attention over {self.layer_query.shape[1]}")
        w = self.weights(layers, n_users)
        out = w[:, :1] * layers[0]
        for i in range(1, len(layers)):
            out = out + w[:, i : i + 1] * layers[i]
        return out / w.sum(dim=1, keepdim=True)
