"""What every recommender shares: the model interface, the BPR objective and the training graph.

Every model scores ``user_emb @ item_emb.T (+ item_bias)``, so evaluation, export and serving never need
model code: a model only has to produce its final embeddings.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from gatrec.models.sparse import EdgeCSR, RowBlock, block_spmm, dense, index_dtype

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset


class _SymmetricSpmm(torch.autograd.Function):
    """``adj @ x`` for a symmetric sparse ``adj``: the backward is ``adj @ grad`` as well.

    torch's own backward for a sparse CSR matmul transposes the matrix on every call; reusing the
    (symmetric) matrix instead is much faster (BENCHMARKS.md, Design notes).
    """

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, ctx.adj @ dense(grad)


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
        crow = torch.from_numpy(adj.indptr).to(index_dtype(adj.nnz))
        col = torch.from_numpy(adj.indices).to(index_dtype(adj.nnz))
        w = torch.from_numpy(weight.astype(np.float32))
        with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we rely on, knowingly
            warnings.simplefilter("ignore", UserWarning)
            norm_adj = torch.sparse_csr_tensor(crow, col, w, (n, n), check_invariants=False).to(device)
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)).to(device)
        return cls(n_users=n_users, n_items=n_items, edge_index=edge_index, edge_weight=w.to(device),
                   norm_adj=norm_adj, degree=torch.from_numpy(deg.astype(np.float32)).to(device))

    @functools.cached_property
    def _blocks(self) -> tuple[EdgeCSR, torch.Tensor, RowBlock]:
        csr, perm = EdgeCSR.from_edges(self.edge_index, self.n_nodes)
        weights = self.edge_weight[perm]
        return csr, weights, csr.block(None, weights)

    def propagate(self, x: torch.Tensor) -> torch.Tensor:
        """One step of symmetric-normalised neighbourhood aggregation: ``norm_adj @ x`` (differentiable)."""
        return _SymmetricSpmm.apply(self.norm_adj, x)

    def propagate_gather(self, x: torch.Tensor, gather: torch.Tensor,
                         rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(norm_adj @ x, x[gather])``, or ``norm_adj[rows] @ x`` (from those rows' edges alone) when ``rows``
        (sorted distinct node ids) is given; ``x[gather]``'s gradient is added into ``x``'s in place."""
        csr, weights, full = self._blocks
        return block_spmm(x, full if rows is None else csr.block(rows, weights), gather=gather)


def edge_ratings(dataset: Dataset, graph: TrainGraph) -> torch.Tensor:
    """Training ratings min-max scaled to [0, 1] (missing = 1), one per edge of ``graph.edge_index``."""
    from gatrec.errors import DataError

    df = dataset.train
    users, items = df["user"].to_numpy(), df["item"].to_numpy()
    r = df["rating"].to_numpy(dtype=np.float32)
    lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
    scaled = np.nan_to_num((r - lo) / (hi - lo) if hi > lo else np.ones_like(r), nan=1.0)
    total = sp.csr_matrix((scaled, (users, items)), shape=(dataset.n_users, dataset.n_items))
    count = sp.csr_matrix((np.ones_like(scaled), (users, items)), shape=total.shape)
    total.sum_duplicates()
    count.sum_duplicates()
    total.data /= count.data  # a repeated (user, item) pair keeps its mean rating
    adj = sp.bmat([[None, total], [total.T, None]], format="csr")
    adj.sort_indices()
    coo = adj.tocoo()  # the same (row-sorted CSR) edge order as TrainGraph.from_matrix
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    if not torch.equal(index, graph.edge_index.cpu()):
        raise DataError("ratings do not line up with the training graph", file=dataset.path / "train.parquet")
    return torch.from_numpy(coo.data.astype(np.float32))


class ItemInputs(Protocol):
    """What a model may read beside the dataset, handed to :meth:`Recommender.build` by its caller
    (``gatrec.train.inputs.DatasetInputs``), so that no model knows where features are stored or how
    graphs are built. Errors are DataErrors naming the file and what to run."""

    def features(self, kind: str, features_dir: str | None = None) -> np.ndarray:
        """float32 [n_items, d] item features of ``kind`` (text, image, fused)."""
        ...

    def knn(self, source: str, k: int, features_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The item–item graph over ``source`` (a feature kind, or ``interactions``) with ``k`` neighbours:
        ``(edge_index [2, E], edge_weight [E])``, symmetric, no self-loops, cosine weights."""
        ...


@dataclass(frozen=True)
class BatchRows:
    """A batch of (user, positive, negative) triples as node rows of the user-then-item table.

    ``rows``: the distinct node ids, sorted; ``index`` (3, B): where each triple's user, positive and negative
    are in ``rows``; ``counts``: how often each row occurs in the batch. A step needs the model's output at
    these rows only (so a graph model can run its last layer there), and one gather of them instead of
    three: each gather's backward writes a zeroed (nodes × dim) gradient, which costs more than the
    gather itself.
    """

    rows: torch.Tensor
    index: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def of(cls, n_users: int, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> BatchRows:
        nodes = torch.cat([users, pos + n_users, neg + n_users])
        rows, inverse, counts = torch.unique(nodes, return_inverse=True, return_counts=True)
        return cls(rows, inverse.view(3, -1), counts)


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``x[rows]`` of a parameter ``x`` that also gets a dense gradient elsewhere in the step: this gradient is
    sparse, and autograd adds it into the dense one, where indexing's backward writes a zeroed (n, d) tensor
    and then one more sum. (Not for computed tensors: the op that made one may not take a sparse gradient;
    nor as the only use of a parameter: Adam takes no sparse gradient.)"""
    return F.embedding(rows, x, sparse=True)


def triple_loss(final: torch.Tensor, ego: torch.Tensor, batch: BatchRows, reg_weight: float,
                kind: str = "bpr") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of a batch from the model's final (``final``) and layer-0 (``ego``) representations
    at ``batch.rows``: BPR (or binary cross-entropy on the positive and the negative) plus LightGCN's
    regulariser, half the squared L2 norm of the triples' ego embeddings per triple."""
    u, p, n = final.index_select(0, batch.index.view(-1)).view(3, -1, final.shape[1])
    pos_s, neg_s = (u * p).sum(-1), (u * n).sum(-1)
    if kind == "bpr":
        main = F.softplus(neg_s - pos_s).mean()  # -log sigmoid(pos - neg), stably
    else:  # binary cross-entropy: the positive labelled 1, the sampled negative 0
        main = F.softplus(-pos_s).mean() + F.softplus(neg_s).mean()
    # sum over the 3B triple members of |e|^2 / 2B, each distinct row counted as often as it occurs
    reg = reg_weight * (batch.counts * ego.pow(2).sum(1)).sum() / (2 * batch.index.shape[1])
    return main + reg, {kind: main.detach(), "reg": reg.detach()}


# lr and batch size with the best valid NDCG@20 for MF, LightGCN and the GAT (BENCHMARKS.md); larger
# batches also mean fewer full-graph propagations per epoch.
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
    # Models whose scores tie often (counts) are evaluated with ties ranked by the lower item index, the
    # order the registry's popularity baseline and the serving top-K use; topk's order among ties is
    # unspecified, and a popularity model would then score below the baseline it equals.
    stable_ties: ClassVar[bool] = False
    # Training settings (TrainConfig fields) this model defaults to when the user sets none: the tuned values
    # of BENCHMARKS.md, so that a run without tuning gets the benchmark's result.
    train_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, n_users: int, n_items: int, config: BaseModel, graph: TrainGraph | None = None):
        super().__init__()
        self.n_users, self.n_items, self.config = n_users, n_items, config

    @classmethod
    def build(cls, dataset: Dataset, config: BaseModel, graph: TrainGraph | None,
              inputs: ItemInputs | None = None) -> Recommender:
        """Construct for ``dataset`` (what the training loop calls). A model that needs more than the graph,
        e.g. item features, overrides this and asks ``inputs`` for them."""
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


class RowsRecommender(Recommender):
    """A trained recommender whose loss needs its output at the batch's rows only: subclasses implement
    ``propagate_rows`` (final and layer-0 representations at sorted distinct node ids); the loss is
    :func:`triple_loss` over them, one propagation per batch."""

    train_defaults = TUNED_BPR_TRAINING

    def propagate_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def loss(self, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = BatchRows.of(self.n_users, users, pos, neg)
        return triple_loss(*self.propagate_rows(batch.rows), batch, self.config.reg_weight,
                           getattr(self.config, "loss", "bpr"))


def normal_table(rows: int, dim: int, std: float) -> torch.nn.Parameter:
    """One embedding table (users then items) drawn from N(0, std)."""
    table = torch.nn.Parameter(torch.empty(rows, dim))
    torch.nn.init.normal_(table, std=std)
    return table
