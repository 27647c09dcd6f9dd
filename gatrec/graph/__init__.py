"""Graphs built from the data: the item–item cosine kNN graph (:mod:`gatrec.graph.knn`, torch or faiss,
blockwise), the item co-occurrence kNN graph (:mod:`gatrec.graph.interactions`) and edge-weight
normalisation (:mod:`gatrec.graph.normalize`). Importing the package loads none of them (models import
``normalize`` alone)."""

from __future__ import annotations

from typing import Any

__all__ = ["KnnConfig", "knn_graph"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gatrec.graph import knn

        return getattr(knn, name)
    raise AttributeError(name)
