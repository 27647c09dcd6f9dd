"""Edge-weight normalisation of graphs given as ``(edge_index, weight)``."""

from __future__ import annotations

import torch


def sym_norm_weights(edge_index: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """``D^-1/2 W D^-1/2`` edge weights of a symmetric weighted graph."""
    deg = torch.zeros(n, dtype=weight.dtype, device=weight.device).index_add_(0, edge_index[0], weight)
    inv = deg.clamp(min=1e-12).rsqrt()
    return inv[edge_index[0]] * weight * inv[edge_index[1]]
