"""Item–item graphs: :func:`gatrec.graph.knn.knn_graph` (cosine kNN, torch or faiss, blockwise)."""

from __future__ import annotations

from gatrec.graph.knn import KnnConfig, knn_graph

__all__ = ["KnnConfig", "knn_graph"]
