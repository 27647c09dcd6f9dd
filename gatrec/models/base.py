"""What every recommender shares: the model interface, the BPR objective and the training graph.

Every model scores ``user_emb @ item_emb.T (+ item_bias)``, so evaluation, export and serving never need
model code: a model only has to produce its final embeddings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import BaseModel

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset


class _SymmetricSpmm(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``: the backward is ``adj @ grad`` as well.

    torch's own backward for a sparse CSR matmul transposes the matrix on every call; reusing the
    (symmetric) matrix instead makes a 3-layer LightGCN forward+backward 2.5x faster on CPU
    (40 ms vs 99 ms on amazon-beauty, 2 threads).
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return torch.sparse.mm(adj, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, torch.sparse.mm(ctx.adj, grad)


@dataclass
class TrainGraph:
    """The user-item bipartite graph of the training split, on one device.

    Nodes are users ``0..n_users-1`` then items ``n_users..n_users+n_items-1``.

    * ``edge_index`` (2, 2E) long: every train interaction in both directions (for PyG layers);
    * ``edge_weight`` (2E,) float: the symmetric normalisation 1/sqrt(deg(src) deg(dst)) per edge;
    * ``norm_adj``: the same D^-1/2 A D^-1/2 as a torch sparse CSR (N, N) matrix (for ``propagate``).
    """

    n_users: int
    n_items: int
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    norm_adj: torch.Tensor
    degree: torch.Tensor

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    @property
    def item_degree(self) -> torch.Tensor:
        """Number of training interactions of each item."""
        return self.degree[self.n_users:]

    @classmethod
    def from_dataset(cls, ds: Dataset, device: torch.device | str = "cpu") -> TrainGraph:
        return cls.from_matrix(ds.csr("train"), device)

    @classmethod
    def from_interactions(cls, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                          device: torch.device | str = "cpu") -> TrainGraph:
        m = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
        return cls.from_matrix(m, device)

    @classmethod
    def from_matrix(cls, r: sp.spmatrix, device: torch.device | str = "cpu") -> TrainGraph:
        """Build from a binary user × item matrix (duplicates are merged)."""
        r = sp.csr_matrix(r, dtype=np.float32)
        r.sum_duplicates()
        r.data[:] = 1.0
        n_users, n_items = r.shape
        adj = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
        adj.sort_indices()
        deg = np.asarray(adj.sum(axis=1)).ravel()
        with np.errstate(divide="ignore"):
            dinv = np.where(deg > 0, deg ** -0.5, 0.0).astype(np.float32)
        # D^-1/2 A D^-1/2 in CSR order; the same order gives edge_index (rows sorted, so deterministic).
        coo = adj.tocoo()
        weight = dinv[coo.row] * dinv[coo.col]
        n = n_users + n_items
        crow = torch.from_numpy(adj.indptr.astype(np.int64))
        col = torch.from_numpy(adj.indices.astype(np.int64))
        w = torch.from_numpy(weight.astype(np.float32))
        with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we rely on, knowingly
            warnings.simplefilter("ignore", UserWarning)
            norm_adj = torch.sparse_csr_tensor(crow, col, w, (n, n), check_invariants=False).to(device)
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)).to(device)
        return cls(n_users=n_users, n_items=n_items, edge_index=edge_index, edge_weight=w.to(device),
                   norm_adj=norm_adj, degree=torch.from_numpy(deg.astype(np.float32)).to(device))

    def propagate(self, x: torch.Tensor) -> torch.Tensor:
        """One step of symmetric-normalised neighbourhood aggregation: ``norm_adj @ x`` (differentiable)."""
        return _SymmetricSpmm.apply(self.norm_adj, x)


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(pos - neg), computed stably."""
    return F.softplus(neg_scores - pos_scores).mean()


def l2_reg(*ego: torch.Tensor) -> torch.Tensor:
    """LightGCN's regulariser: half the squared L2 norm of the batch's ego (layer-0) embeddings, per triple."""
    return sum(e.pow(2).sum() for e in ego) / (2 * ego[0].shape[0])  # type: ignore[return-value]


# lr and batch size with the best valid NDCG@20 for MF, LightGCN and the GAT on amazon-office
# (bench/quality_configs.yaml); larger batches also mean fewer full-graph propagations per epoch.
TUNED_BPR_TRAINING: dict[str, Any] = {"lr": 5e-3, "batch_size": 8192}


class Recommender(torch.nn.Module):
    """A recommender: user and item representations whose dot product (plus an optional item bias) ranks.

    Subclasses set ``name``, ``Config`` (a pydantic model of their hyper-parameters), ``trainable`` and
    optionally ``train_defaults``.
    Trainable models implement ``loss`` on BPR triples; the others are fitted in ``__init__``.
    """

    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]
    trainable: ClassVar[bool] = True
    # Training settings (TrainConfig fields) this model defaults to when the user sets none: the tuned values
    # of BENCHMARKS.md, so that a run without tuning gets the benchmark's result.
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_users: int, n_items: int, config: BaseModel, graph: TrainGraph | None = None):
        super().__init__()
        self.n_users, self.n_items, self.config = n_users, n_items, config

    @classmethod
    def build(cls, dataset: Dataset, config: BaseModel, graph: TrainGraph | None) -> Recommender:
        """Construct for ``dataset`` (what the training loop calls). A model that needs more than the graph,
        e.g. item features stored beside the dataset, overrides this to load them."""
        return cls(dataset.n_users, dataset.n_items, config, graph)

    def loss(self, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss of a batch of (user, positive item, negative item) triples, and its parts."""
        raise NotImplementedError(f"{self.name} is not trained with gradients")

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (user_emb (n_users, d), item_emb (n_items, d)); called under ``torch.no_grad``."""
        raise NotImplementedError

    def item_bias(self) -> torch.Tensor | None:
        """Per-item score offset (n_items,), or None."""
        return None
