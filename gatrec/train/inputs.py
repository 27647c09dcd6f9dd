"""The item inputs a model asks for at build time (:class:`gatrec.models.base.ItemInputs`), read from the
feature store beside a prepared dataset, or computed from its training interactions.

The feature folder is only read: a kNN graph with another ``k`` than ``gatrec embed`` built is computed
in memory, so concurrent trainings with different ``knn_k`` leave the folder as embed wrote it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset


class DatasetInputs:
    """:class:`~gatrec.models.base.ItemInputs` of one prepared dataset."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def features(self, kind: str, features_dir: str | None = None) -> np.ndarray:
        from gatrec.features.store import load_features

        return load_features(self.dataset, kind, features_dir=features_dir)  # type: ignore[arg-type]

    def knn(self, source: str, k: int, features_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if source == "interactions":
            from gatrec.graph.interactions import interaction_knn

            return interaction_knn(self.dataset.csr("train"), k)
        from gatrec.features.store import load_knn

        return load_knn(self.dataset, source, k, features_dir=features_dir,  # type: ignore[arg-type]
                        build_missing=True)
