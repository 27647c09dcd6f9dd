"""The item–item kNN graph of the training interactions (for models without item features)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from gatrec.graph.knn import symmetrize


def interaction_knn(train: sp.csr_matrix, k: int, block: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Item-item kNN graph by cosine of the items' training-user sets.

    Exact and blockwise (``block`` items × all items at a time); edges of zero similarity (no common user)
    are dropped. Same format as ``gatrec.graph.knn.knn_graph``: symmetric, no self-loops, weight = cosine.
    """
    r = sp.csr_matrix(train, dtype=np.float32).T.tocsr()
    r.data[:] = 1.0
    r = sp.diags(1.0 / np.maximum(np.sqrt(np.asarray(r.sum(axis=1)).ravel()), 1e-12)) @ r
    rt = r.T.tocsr()
    n = r.shape[0]
    k = min(k, n - 1)
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        s = torch.from_numpy((r[start:stop] @ rt).toarray())
        s[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf  # no self-loops
        v, i = s.topk(k, dim=1)
        idx[start:stop], sim[start:stop] = i.numpy(), v.numpy()
    edge_index, weight = symmetrize(idx, sim)
    keep = weight > 0
    return edge_index[:, keep], weight[keep]
