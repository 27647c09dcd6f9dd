"""Most-popular baseline: every user gets the items with the most training interactions."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from gatrec.models.base import Recommender, TrainGraph


class PopConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transform: Literal["log1p", "count"] = Field(
        "log1p", description="item score from its training count (log1p keeps scores small; same ranking)")


class Popularity(Recommender):
    """Scores are an item bias only (user and item embeddings are zero vectors of size 1)."""

    name = "pop"
    Config = PopConfig
    trainable = False
    stable_ties = True

    def __init__(self, n_users: int, n_items: int, config: PopConfig, graph: TrainGraph | None = None):
        super().__init__(n_users, n_items, config, graph)
        if graph is None:
            raise ValueError("pop needs the training graph to count item interactions")
        counts = graph.item_degree.detach().to(torch.float32)
        self.register_buffer("bias", torch.log1p(counts) if config.transform == "log1p" else counts)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.bias.device
        return torch.zeros(self.n_users, 1, device=dev), torch.zeros(self.n_items, 1, device=dev)

    def item_bias(self) -> torch.Tensor:
        return self.bias
