"""Graph-attention recommender: PyG ``GATConv`` over the user-item graph plus a frozen item-item kNN graph.

Design (what made it beat LightGCN on Amazon 5-core; see the research log cited in the report):

* **LightGCN-shaped attention.** Each layer is ``D^1/2 GATConv(D^-1/2 x)`` with one head, no self-loops,
  no bias, no non-linearity and the linear map fixed to the identity. With zero attention parameters the
  softmax is uniform (1/deg), so a layer equals LightGCN's ``D^-1/2 A D^-1/2 x``; training then learns how
  to re-weight neighbours. The final representation is the mean over layers 0..L, as in LightGCN.
* **Damped attention.** The attention vectors are reparametrised as ``attention_scale * raw``: under Adam
  that is the same as a ``attention_scale`` times smaller learning rate for them. At full rate the
  attention overfits within a few epochs (office valid NDCG@20 0.052 vs 0.059 for mean aggregation).
* **Frozen item-item graph (FREEDOM).** Item ID embeddings are also propagated over the symmetric-normalised
  kNN graph of the item features (``gatrec embed`` writes it), through a GATConv of the same form, and the
  result is added to the items' final representation.
* **Item input** = ID embedding + a projection of the item features (text 384 / image 512 / fused, by a
  linear layer trained jointly), with dropout on the features.
* **Edge weights from ratings**, where the data has them, enter the attention logits (``edge_dim=1``).
* Degree-sensitive **edge dropout** (FREEDOM's pruning) re-samples the user-item graph at every step.

Scores stay ``user_emb @ item_emb.T``, so export, evaluation and serving need no model code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.nn.utils import parametrize
from torch_geometric.nn import GATConv, GATv2Conv

from gatrec import log as glog
from gatrec.errors import DataError
from gatrec.models.base import Recommender, TrainGraph, bpr_loss, l2_reg

if TYPE_CHECKING:
    from gatrec.data.dataset import Dataset

log = glog.get(__name__)

Features = Literal["none", "text", "image", "fused"]


class GATConfig(BaseModel):
    """Hyper-parameters of the GAT recommender; the defaults are the best validation config on office."""

    model_config = ConfigDict(extra="forbid")

    features: Features = Field("none", description="item features added to the ID embedding")
    loss: Literal["bpr", "bce"] = Field("bpr", description="bpr, or bce on the positive and sampled negative")
    dim: int = Field(128, ge=1, description="embedding / hidden size")
    n_layers: int = Field(2, ge=0, description="attention layers over the user-item graph")
    heads: int = Field(1, ge=1, description="attention heads per layer (averaged, so the size stays dim)")
    conv: Literal["gat", "gatv2"] = Field("gat", description="torch_geometric GATConv or GATv2Conv")
    attention_scale: float = Field(0.1, gt=0, le=1, description="learning-rate factor of the attention")
    attention_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on attention coefficients")
    edge_dropout: float = Field(0.0, ge=0, lt=1, description="share of user-item edges dropped per step")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's layer-0 embeddings")
    feature_dropout: float = Field(0.0, ge=0, lt=1)
    knn_source: Literal["auto", "none", "text", "image", "fused", "interactions"] = Field(
        "auto", description="item-item graph: auto = the features used, or interactions when features=none")
    knn_k: int = Field(20, ge=1, description="neighbours per item in the item-item graph")
    knn_weight: float = Field(1.0, ge=0, description="weight of the item-item propagation in the item output")
    knn_attention: bool = Field(True, description="attention over kNN neighbours (else fixed weights)")
    features_dir: str | None = Field(None, description="where `gatrec embed` wrote features; None = DATA/features")
    use_ratings: bool = Field(True, description="feed normalised ratings into attention where the data has them")

    def resolved_knn_source(self) -> str:
        if self.knn_source != "auto":
            return self.knn_source
        return "interactions" if self.features == "none" else self.features


class _Scale(nn.Module):
    """Parametrisation ``p = scale * raw``: under Adam, a ``scale`` times smaller step for ``p``."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.scale


class _Tile(nn.Module):
    """The GATConv input map fixed to the identity (one copy per head): no transformation on the ID path."""

    def __init__(self, heads: int):
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.heads == 1 else x.repeat(1, self.heads)

    def reset_parameters(self) -> None:  # GATConv.reset_parameters calls it
        pass


def attention_conv(config: GATConfig, edge_dim: int | None = None) -> GATConv | GATv2Conv:
    """A GATConv/GATv2Conv that starts as mean aggregation and learns attention at a damped rate."""
    d, heads = config.dim, config.heads
    common = dict(heads=heads, concat=False, add_self_loops=False, bias=False, dropout=config.attention_dropout,
                  edge_dim=edge_dim)
    if config.conv == "gat":
        conv: GATConv | GATv2Conv = GATConv(d, d, **common)
        conv.lin = _Tile(heads)
        names = ["att_src", "att_dst"] + (["att_edge"] if edge_dim is not None else [])
    else:  # GATv2: a^T LeakyReLU(x_i + x_j [+ W_e e_ij]), one attention vector
        conv = GATv2Conv(d, d, share_weights=True, **common)
        conv.lin_l = conv.lin_r = _Tile(heads)
        names = ["att"]
    for name in names:
        nn.init.zeros_(getattr(conv, name))  # uniform attention at the start: exactly LightGCN
        parametrize.register_parametrization(conv, name, _Scale(config.attention_scale))
    return conv


class GAT(Recommender):
    name = "gat"
    Config = GATConfig

    def __init__(self, n_users: int, n_items: int, config: GATConfig, graph: TrainGraph | None = None, *,
                 features: np.ndarray | None = None, knn: tuple[torch.Tensor, torch.Tensor] | None = None,
                 ratings: torch.Tensor | None = None):
        super().__init__(n_users, n_items, config, graph)
        if graph is None:
            raise ValueError("gat needs the training graph")
        if (features is None) != (config.features == "none"):
            raise ValueError(f"features={config.features!r} but features were {'not ' * (features is None)}given")
        self.graph = graph
        device = graph.edge_index.device
        self.embedding = nn.Parameter(torch.empty(n_users + n_items, config.dim, device=device))
        nn.init.xavier_uniform_(self.embedding)
        # Rating edge weights (in [0, 1], aligned with graph.edge_index) feed the attention logits.
        self.register_buffer("edge_attr", None if ratings is None else ratings.view(-1, 1).to(device))
        edge_dim = None if ratings is None else 1
        self.convs = nn.ModuleList([attention_conv(config, edge_dim) for _ in range(config.n_layers)])
        self.register_buffer("edge_keep_weight", graph.edge_weight.clone())
        self.register_buffer("feats", None if features is None else torch.as_tensor(features, device=device))
        self.proj = None if features is None else nn.Linear(features.shape[1], config.dim, device=device)
        self.knn_conv = None
        self.register_buffer("knn_index", None)
        self.register_buffer("knn_adj", None)
        if knn is not None and config.knn_weight > 0:
            index, weight = knn[0].to(device), knn[1].to(device)
            self.knn_index = index
            if config.knn_attention:
                self.knn_conv = attention_conv(config)
            else:
                w = sym_norm_weights(index, weight, n_items)
                self.knn_adj = torch.sparse_coo_tensor(index, w, (n_items, n_items)).coalesce()

    # -- construction from a prepared dataset -------------------------------------------------------------
    @classmethod
    def build(cls, dataset: Dataset, config: GATConfig, graph: TrainGraph | None) -> GAT:
        if graph is None:
            raise ValueError("gat needs the training graph")
        features = None
        if config.features != "none":
            features = _load_features(dataset.path, config.features, config.features_dir)
        source = config.resolved_knn_source()
        knn = None
        if source == "interactions":
            knn = interaction_knn(dataset.csr("train"), config.knn_k)
        elif source != "none" and config.knn_weight > 0:
            knn = _load_knn(dataset.path, source, config.knn_k, config.features_dir)
        ratings = None
        if config.use_ratings and "rating" in dataset.train.columns:
            ratings = _edge_ratings(dataset, graph)
        log.info("gat_inputs", features=config.features, feature_dim=None if features is None else features.shape[1],
                 knn=source, knn_edges=None if knn is None else int(knn[0].shape[1]), ratings=ratings is not None)
        return cls(dataset.n_users, dataset.n_items, config, graph, features=features, knn=knn, ratings=ratings)

    # -- forward --------------------------------------------------------------------------------------------
    def ego(self) -> torch.Tensor:
        """Layer-0 node inputs: ID embeddings, plus projected features on the item rows."""
        if self.proj is None:
            return self.embedding
        f = F.dropout(self.feats, self.config.feature_dropout, self.training)
        users, items = self.embedding[: self.n_users], self.embedding[self.n_users:]
        return torch.cat([users, items + self.proj(f)])

    def _train_edges(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The user-item edges of this step: all, or a degree-sensitive sample when training with dropout."""
        edge_index, edge_attr = self.graph.edge_index, self.edge_attr
        p = self.config.edge_dropout
        if not (self.training and p > 0):
            return edge_index, edge_attr
        # Keep (1-p) of the undirected edges, drawn with probability ~ 1/sqrt(deg_u deg_i) (FREEDOM), so
        # edges between popular nodes, the least informative, are the ones most often dropped.
        src, dst = edge_index
        upper = torch.nonzero(src < dst).flatten()  # each undirected user-item edge once
        keep = upper[torch.multinomial(self.edge_keep_weight[upper], int(len(upper) * (1 - p)))]
        kept = torch.cat([edge_index[:, keep], edge_index[:, keep].flip(0)], dim=1)
        attr = None if edge_attr is None else torch.cat([edge_attr[keep], edge_attr[keep]])
        return kept, attr

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (users, items): layer-mean of attention propagation, items plus their kNN propagation."""
        x = self.ego()
        edge_index, edge_attr = self._train_edges()
        deg = torch.bincount(edge_index[1], minlength=x.shape[0]).to(x.dtype).clamp(min=1).unsqueeze(1)
        inv_sqrt, sqrt = deg.rsqrt(), deg.sqrt()
        out = x
        for conv in self.convs:
            # D^1/2 softmax-mean(D^-1/2 x) = D^-1/2 A D^-1/2 x when attention is uniform (LightGCN).
            x = sqrt * conv(inv_sqrt * x, edge_index, edge_attr)
            out = out + x
        out = out / (len(self.convs) + 1)
        users, items = out[: self.n_users], out[self.n_users:]
        if self.knn_index is not None:
            items = items + self.config.knn_weight * self._knn(self.embedding[self.n_users:])
        return users, items

    def _knn(self, h: torch.Tensor) -> torch.Tensor:
        if self.knn_conv is None:
            return torch.sparse.mm(self.knn_adj, h)
        deg = torch.bincount(self.knn_index[1], minlength=h.shape[0]).to(h.dtype).clamp(min=1).unsqueeze(1)
        return deg.sqrt() * self.knn_conv(deg.rsqrt() * h, self.knn_index)

    def loss(self, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        u_all, i_all = self.propagate()
        u, p, n = u_all[users], i_all[pos], i_all[neg]
        pos_s, neg_s = (u * p).sum(-1), (u * n).sum(-1)
        if self.config.loss == "bpr":
            main = bpr_loss(pos_s, neg_s)
        else:  # binary cross-entropy: the positive is a 1, the sampled negative a 0
            main = F.softplus(-pos_s).mean() + F.softplus(neg_s).mean()
        e = self.embedding
        reg = self.config.reg_weight * l2_reg(e[users], e[self.n_users + pos], e[self.n_users + neg])
        return main + reg, {self.config.loss: main.detach(), "reg": reg.detach()}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()

    def attention_parameters(self) -> list[torch.Tensor]:
        """The raw (unscaled) attention vectors of every layer (for inspection and tests)."""
        return [p for name, p in self.named_parameters() if ".parametrizations.att" in f".{name}"]


def _load_features(dataset_dir: Path, kind: str, features_dir: str | None) -> np.ndarray:
    from gatrec.features.store import load_features

    try:
        return load_features(dataset_dir, kind, features_dir=features_dir)  # type: ignore[arg-type]
    except DataError as exc:
        # The store's message names the file and says to run `gatrec embed`; say what needed it.
        raise DataError(f"gat --features {kind} needs the item features that `gatrec embed --data "
                        f"{dataset_dir}` writes: {exc}") from None


def _load_knn(dataset_dir: Path, kind: str, k: int, features_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    from gatrec.features.store import load_knn

    try:
        return load_knn(dataset_dir, kind, k, features_dir=features_dir, build_missing=True)  # type: ignore[arg-type]
    except DataError as exc:
        raise DataError(f"gat knn_source={kind} needs the item features that `gatrec embed --data "
                        f"{dataset_dir}` writes: {exc}") from None


def _edge_ratings(dataset: Dataset, graph: TrainGraph) -> torch.Tensor:
    """Training ratings scaled to [0, 1], one per edge of ``graph.edge_index`` (both directions)."""
    df = dataset.train
    r = df["rating"].to_numpy(dtype=np.float32)
    lo, hi = float(np.nanmin(r)), float(np.nanmax(r))
    scaled = np.nan_to_num((r - lo) / (hi - lo) if hi > lo else np.ones_like(r), nan=1.0)
    m = sp.csr_matrix((scaled, (df["user"].to_numpy(), df["item"].to_numpy())),
                      shape=(dataset.n_users, dataset.n_items))
    m.sum_duplicates()  # a repeated (user, item) pair keeps the mean rating
    count = sp.csr_matrix((np.ones_like(scaled), (df["user"].to_numpy(), df["item"].to_numpy())), shape=m.shape)
    count.sum_duplicates()
    m.data /= count.data
    adj = sp.bmat([[None, m], [m.T, None]], format="csr")
    adj.sort_indices()
    coo = adj.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    if not torch.equal(index, graph.edge_index.cpu()):
        raise DataError("ratings do not line up with the training graph", file=dataset.path / "train.parquet")
    return torch.from_numpy(coo.data.astype(np.float32))


def sym_norm_weights(edge_index: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """``D^-1/2 W D^-1/2`` edge weights of a symmetric weighted graph."""
    deg = torch.zeros(n, dtype=weight.dtype, device=weight.device).index_add_(0, edge_index[0], weight)
    inv = deg.clamp(min=1e-12).rsqrt()
    return inv[edge_index[0]] * weight * inv[edge_index[1]]


def interaction_knn(train: sp.csr_matrix, k: int, block: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Item-item kNN graph by cosine of the items' training-user sets (for ``features=none``).

    Exact, blockwise (``block`` items × all items at a time, never the full item × item matrix); edges of
    zero similarity (items with no common user) are dropped. Same format as ``gatrec.graph.knn.knn_graph``.
    """
    from gatrec.graph.knn import symmetrize

    r = sp.csr_matrix(train, dtype=np.float32).T.tocsr()
    r.data[:] = 1.0
    norms = np.sqrt(np.asarray(r.sum(axis=1)).ravel())
    r = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ r
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
