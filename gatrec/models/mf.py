"""Matrix factorisation trained with BPR (Rendle et al., UAI 2009)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from gatrec.models.base import RowsRecommender, TrainGraph, normal_table


class MFConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: int = Field(64, ge=1, description="embedding size")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's embeddings")
    init_std: float = Field(0.01, gt=0, description="embeddings ~ N(0, init_std); small, as usual for BPR-MF "
                            "(LightGCN's 0.1 suits propagated, averaged embeddings: MF fits noise early)")


class MF(RowsRecommender):
    name = "mf"
    Config = MFConfig

    def __init__(self, n_users: int, n_items: int, config: MFConfig, graph: TrainGraph | None = None):
        super().__init__(n_users, n_items, config, graph)
        # One table for users then items, laid out like LightGCN's.
        self.embedding = normal_table(n_users + n_items, config.dim, config.init_std)

    def propagate_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.embedding[rows]
        return e, e

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embedding[: self.n_users], self.embedding[self.n_users:]
