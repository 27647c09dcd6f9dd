"""Graph-attention recommender: PyG ``GATConv`` over the user-item graph and over an item-item kNN graph.

Every choice below was selected on validation NDCG@20; the measurements are in BENCHMARKS.md (Quality,
Design notes).

* **LightGCN-shaped attention.** A layer is ``D^1/2 GATConv(D^-1/2 x)``: one head, no self-loops, no bias,
  no non-linearity, the input map fixed to the identity. With zero attention vectors the softmax is
  uniform (1/deg), so a layer is exactly LightGCN's ``D^-1/2 A D^-1/2 x``; learned attention (``attention_on``)
  re-weights neighbours from there. The output is the mean over layers 0..L, as in LightGCN (or, with
  ``layer_combine="attention"``, each node's own softmax mix of them: gatrec/models/layer_attention.py).
* **Learned attention that cannot overfit the embeddings.** The attention vectors are ``attention_scale * raw``
  (under Adam an ``attention_scale`` times smaller step), the logit is linear (``negative_slope=1``: then
  GATConv's attention is exactly a learned weight per neighbour, ``softmax_j <a, x_j>``, computed by two plain
  sparse matmuls), and the logits read the embeddings detached (``attention_detach``): only the attention
  vectors learn from them, because embeddings that co-adapt with the attention overfit.
* **Item-item graph (FREEDOM).** Item ID embeddings are also propagated over the kNN graph of the item
  features (passed in by the caller, from ``gatrec embed``'s folder) by a GATConv of the same form, and added
  to the item output. Without features there is none by default (a co-occurrence graph scored no better).
* **Degree-sensitive edge dropout (FREEDOM).** Each training step sees a sample of the user-item edges,
  drawn with probability ~ 1/sqrt(deg_u deg_i), renormalised; evaluation uses the full graph.
* **Item input** = ID embedding + ``gate * Linear(features)`` with the gate starting at 0, so the features
  come in only as far as they help.
* **Edge weights from ratings**, where the data has them, enter learned attention logits (``edge_dim=1``).
* **XSimGCL's contrastive term** (``cl_weight`` 0.1, gatrec/models/contrastive.py): every layer's output is
  perturbed while training and the final representations are contrasted with layer 1's. It is what lifts
  validation here, as much for uniform attention as for learned.

* **Attention is off by default** (``attention_on="none"``: every attention vector stays at 0, so the layers
  propagate exactly as LightGCN's): no learned attention has scored above that uniform control on
  validation. Kept as options: learned GATConv attention on both graphs or one (``attention_on``), logits
  from content keys (``attention_keys``), per-node attention over the layers (``layer_combine``) and
  DGCF-style intent routing (``conv="intents"``, gatrec/models/intent_attention.py).

Scores stay ``user_emb @ item_emb.T``, so export, evaluation and serving need no model code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, model_validator
from torch import nn
from torch.nn.utils import parametrize

from gatrec import log as glog
from gatrec.errors import DataError
from gatrec.graph.normalize import sym_norm_weights
from gatrec.models.base import (
    TUNED_BPR_TRAINING,
    BatchRows,
    ItemInputs,
    Recommender,
    TrainGraph,
    edge_ratings,
    gather_rows,
    triple_loss,
)
from gatrec.models.content_attention import ContentAttention, content_keys
from gatrec.models.contrastive import ContrastiveFields, add_contrastive, perturb
from gatrec.models.intent_attention import intent_layer
from gatrec.models.layer_attention import LayerAttention
from gatrec.models.sparse import EdgeCSR, spmm
from gatrec.models.sparse_attention import Tile, attend, attend_and_gather

if TYPE_CHECKING:
    # PyG is imported where a layer is built or run, not here: importing torch_geometric loads its datasets
    # and LLM modules (seconds of CPU), and the CLI reads this module's config without building a layer
    # (`train --help`, config checks, eval, sweeps' spaces). tests/models/test_gat.py keeps it that way.
    from torch_geometric.nn import GATConv, GATv2Conv

    from gatrec.data.dataset import Dataset

log = glog.get(__name__)

KnnSource = Literal["auto", "none", "text", "image", "fused", "interactions"]


class GATConfig(ContrastiveFields):
    """Hyper-parameters of the GAT recommender; defaults = the best on validation NDCG@20 (BENCHMARKS.md)."""

    model_config = ConfigDict(extra="forbid")

    # XSimGCL's contrastive term is on by default: it lifts validation with and without item features and
    # with learned or uniform attention alike (BENCHMARKS.md, issue 14). Propagations it cannot perturb
    # (intent routing, content keys) turn it off unless it is asked for (_contrastive_where_supported).
    cl_weight: float = Field(0.1, ge=0, description="XSimGCL: weight of the contrastive (InfoNCE) term; 0 = "
                             "off (the default is 0 with conv=intents or content attention_keys)")
    cl_rows: int = Field(1024, ge=2, description="XSimGCL: at most this many of a batch's users (and items), drawn "
                         "at random, are contrasted: the InfoNCE costs rows^2 x dim")
    features: Literal["none", "text", "image", "fused"] = Field(
        "none", description="item features added to the item ID embedding (from `gatrec embed`)")
    loss: Literal["bpr", "bce"] = Field("bpr", description="bpr, or binary cross-entropy on pos/neg pairs")
    dim: int = Field(128, ge=1, description="embedding (= hidden) size")
    n_layers: int = Field(2, ge=0, description="attention layers over the user-item graph")
    heads: int = Field(1, ge=1, description="attention heads per layer (averaged, so the size stays dim)")
    conv: Literal["gat", "gatv2", "intents"] = Field(
        "gat", description="user-item layers: torch_geometric GATConv or GATv2Conv, or intents: DGCF-style "
        "routing of each edge among latent intents (gatrec/models/intent_attention.py; the kNN layer stays a "
        "GATConv)")
    intents: int = Field(4, ge=1, description="conv=intents: latent intents (dim must be a multiple)")
    intent_temperature: float = Field(1.0, ge=0, description="conv=intents: scale of the edge-intent "
                                      "affinities (0 = uniform shares: LightGCN's propagation)")
    attention_scale: float = Field(0.01, gt=0, le=1, description="learning-rate factor of attention vectors")
    negative_slope: float = Field(
        1.0, ge=0, le=1, description="GATConv's LeakyReLU slope on the logits; 1 = linear: attention is then "
        "a learned weight per neighbour (GAT's static attention, exactly) and a layer costs two plain sparse "
        "matmuls instead of a per-edge softmax (sparse_attention._node_attention)")
    attention_detach: bool = Field(True, description="logits read the embeddings without passing gradients "
                                   "to them: only the attention vectors learn whom to weight (else the "
                                   "embeddings co-adapt with the attention and overfit)")
    attention_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on attention coefficients")
    edge_dropout: float | None = Field(
        None, ge=0, lt=1, description="share of user-item edges dropped per step; None = 0.8 with a "
        "feature kNN graph, else 0 (without one, dropping edges only loses signal)")
    reg_weight: float = Field(1e-4, ge=0, description="L2 on the batch's layer-0 ID embeddings")
    init_std: float | None = Field(None, gt=0, description="ID embeddings ~ N(0, init_std) as LightGCN's; "
                                   "None = Xavier uniform")
    feature_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on item features")
    feature_gate: bool = Field(True, description="scale projected features by a learned gate starting at 0")
    knn_source: KnnSource = Field(
        "auto", description="item-item graph: auto = the features used, none when features=none (an "
        "item co-occurrence graph, `interactions`, scored no better and costs more time)")
    knn_k: int = Field(20, ge=1, description="neighbours per item in the item-item graph (embed builds 20)")
    knn_weight: float = Field(1.0, ge=0, description="weight of the item-item propagation (0 = off)")
    knn_attention: bool = Field(True, description="attention over kNN neighbours (else cosine weights)")
    attention_on: Literal["none", "both", "user_item", "item_item"] = Field(
        "none", description="the graphs whose attention is learned; elsewhere the attention vectors stay at 0 "
        "(uniform weights: LightGCN's propagation), and a frozen user-item attention ignores ratings. none is "
        "the default because no learned attention has scored above it on validation (BENCHMARKS.md, issue 14)")
    features_dir: str | None = Field(None, description="`gatrec embed` output; None = DATA/features")
    use_ratings: bool = Field(True, description="normalised ratings weight the attention, where present")
    attention_keys: Literal["embeddings", "features", "interactions"] = Field(
        "embeddings", description="what the attention logits read: the ID embeddings (GATConv), or fixed "
        "content keys (TransformerConv, gatrec/models/content_attention.py): the item features (needs "
        "features) or the low-rank SVD of the training interactions; content keys ignore ratings")
    content_rate: float = Field(10.0, gt=0, description="learning-rate factor of the content attention's "
                                "temperatures (1e-9 freezes them at 0: uniform attention)")
    content_projection: bool = Field(False, description="content attention also learns a projection of the keys")
    content_dim: int = Field(64, ge=1, description="size of the content keys (PCA of the features, or the "
                             "SVD's rank), at most dim")
    layer_combine: Literal["mean", "attention", "hop_attention"] = Field(
        "mean", description="how the layer outputs 0..L make the output: their mean (LightGCN), per-node "
        "softmax attention over them, or hop_attention: layer 0 keeps its mean share and the attention shares "
        "the rest among layers 1..L (gatrec/models/layer_attention.py; both start exactly as the mean)")

    @model_validator(mode="before")
    @classmethod
    def _contrastive_where_supported(cls, data: object) -> object:
        if isinstance(data, dict) and "cl_weight" not in data and (
                data.get("conv") == "intents" or data.get("attention_keys", "embeddings") != "embeddings"):
            return {**data, "cl_weight": 0.0}
        return data

    @model_validator(mode="after")
    def _keys_have_content(self) -> GATConfig:
        if self.attention_keys == "features" and self.features == "none":
            raise ValueError("attention_keys=features needs item features (features=text, image or fused)")
        if self.cl_weight > 0 and (self.attention_keys != "embeddings" or self.conv == "intents"):
            raise ValueError("the contrastive term (cl_weight > 0) needs attention_keys=embeddings and GATConv "
                             "or GATv2Conv layers")
        if self.conv == "intents" and (self.dim % self.intents or self.attention_keys != "embeddings"):
            raise ValueError("conv=intents needs dim a multiple of intents and attention_keys=embeddings")
        if self.attention_on != "both" and self.attention_keys != "embeddings":
            raise ValueError(f"attention_keys={self.attention_keys} learns content attention on both graphs: it "
                             "needs attention_on=both")
        return self

    def learns_user_item_attention(self) -> bool:
        return self.attention_on in ("both", "user_item")

    def learns_item_item_attention(self) -> bool:
        return self.attention_on in ("both", "item_item")

    def ratings_in_attention(self) -> bool:
        """Whether ratings enter the user-item attention: they are an input of GATConv's logits only, so not
        when that attention is frozen uniform or routed by intents."""
        return self.use_ratings and self.learns_user_item_attention() and self.conv != "intents"

    def resolved_knn_source(self) -> str:
        if self.knn_weight == 0:
            return "none"
        if self.knn_source != "auto":
            return self.knn_source
        return self.features  # "none" when there are no features

    def resolved_edge_dropout(self) -> float:
        if self.edge_dropout is not None:
            return self.edge_dropout
        return 0.8 if self.resolved_knn_source() not in ("none", "interactions") else 0.0


class _Scale(nn.Module):
    """Parametrisation ``p = scale * raw``: under Adam, a ``scale`` times smaller step for ``p``."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return raw * self.scale


def attention_conv(config: GATConfig, edge_dim: int | None = None, learn: bool = True) -> GATConv | GATv2Conv:
    """A GATConv/GATv2Conv that starts as mean aggregation and learns attention at a damped rate (with
    ``learn=False`` its attention vectors stay at 0: mean aggregation throughout)."""
    from torch_geometric.nn import GATConv, GATv2Conv

    d, heads = config.dim, config.heads
    conv_kind = "gat" if config.conv == "intents" else config.conv  # the kNN layer of an intents model
    common = dict(heads=heads, concat=False, add_self_loops=False, bias=False,
                  dropout=config.attention_dropout, edge_dim=edge_dim, negative_slope=config.negative_slope)
    if conv_kind == "gat":
        conv: GATConv | GATv2Conv = GATConv(d, d, **common)
        conv.lin = Tile(heads)
        names = ["att_src", "att_dst"] + (["att_edge"] if edge_dim is not None else [])
        if config.negative_slope == 1.0:  # a linear logit: <a_dst, x_i> cancels in i's softmax, so freeze it at 0
            nn.init.zeros_(conv.att_dst.requires_grad_(False))
            names.remove("att_dst")
    else:  # GATv2: a^T LeakyReLU(x_i + x_j [+ W_e e_ij]), a single attention vector
        conv = GATv2Conv(d, d, share_weights=True, **common)
        conv.lin_l = conv.lin_r = Tile(heads)
        names = ["att"]
    for name in names:
        nn.init.zeros_(getattr(conv, name))  # uniform attention at the start
        if learn:
            parametrize.register_parametrization(conv, name, _Scale(config.attention_scale))
        else:
            getattr(conv, name).requires_grad_(False)
    return conv


def _degree(index: torch.Tensor, n: int) -> torch.Tensor:
    return torch.bincount(index, minlength=n).float().unsqueeze(1)


class GAT(Recommender):
    name = "gat"
    Config = GATConfig
    train_defaults = TUNED_BPR_TRAINING

    def __init__(self, n_users: int, n_items: int, config: GATConfig, graph: TrainGraph | None = None, *,
                 features: np.ndarray | None = None, knn: tuple[torch.Tensor, torch.Tensor] | None = None,
                 ratings: torch.Tensor | None = None, content: torch.Tensor | None = None):
        super().__init__(n_users, n_items, config, graph)
        if graph is None:
            raise ValueError("gat needs the training graph")
        if (features is None) != (config.features == "none"):
            raise ValueError(f"features={config.features!r} but feature vectors were "
                             f"{'not ' * (features is None)}given")
        self.graph = graph
        dev = graph.edge_index.device
        learn_ui, learn_knn = config.learns_user_item_attention(), config.learns_item_item_attention()
        self.intents = config.conv == "intents"
        if not config.ratings_in_attention():
            ratings = None
        n = n_users + n_items
        self.edge_dropout = config.resolved_edge_dropout()
        emb = torch.empty(n, config.dim, device=dev)
        self.embedding = nn.Parameter(nn.init.xavier_uniform_(emb) if config.init_std is None
                                      else nn.init.normal_(emb, std=config.init_std))
        # attention_keys != embeddings: the logits read fixed content keys (content_attention.py) instead
        self.content: ContentAttention | None = None
        if config.attention_keys != "embeddings":
            if content is None:
                raise ValueError(f"attention_keys={config.attention_keys!r} needs the content keys")
            content = content.to(dev)
            self.content = ContentAttention(content, config.n_layers, config.content_rate,
                                            config.content_projection)
        self.convs = nn.ModuleList([attention_conv(config, None if ratings is None else 1, learn_ui)
                                    for _ in range(0 if self.content is not None or self.intents
                                                   else config.n_layers)])
        self.layer_attention = (None if config.layer_combine == "mean" else LayerAttention(
            config.dim, config.n_layers, config.attention_detach, config.layer_combine == "hop_attention", dev))
        # The full user-item graph in CSR order (attention is summed by a sparse matmul: sparse_attention.py).
        self.ui_graph, perm = EdgeCSR.from_edges(graph.edge_index, n)
        # Data-derived tensors are rebuilt by `build`, so they stay out of checkpoints (persistent=False).
        self.register_buffer("edge_attr", None if ratings is None else ratings.view(-1, 1).to(dev)[perm], False)
        self.register_buffer("degree", graph.degree.view(-1, 1), False)  # the full graph's, already counted
        # Each undirected edge once (user -> item), with FREEDOM's keep weight 1/sqrt(deg_u deg_i).
        upper = torch.nonzero(graph.edge_index[0] < graph.edge_index[1]).flatten()
        self.register_buffer("upper", upper, False)
        self.register_buffer("upper_weight", graph.edge_weight[upper], False)  # edges between hubs go first
        self.register_buffer("ratings_upper", None if ratings is None else ratings.view(-1, 1).to(dev)[upper], False)
        self.register_buffer("feats", None if features is None else torch.as_tensor(features).to(dev), False)
        self.proj = None if features is None else nn.Linear(features.shape[1], config.dim, device=dev)
        use_gate = features is not None and config.feature_gate
        self.gate = nn.Parameter(torch.zeros((), device=dev)) if use_gate else None
        self.knn_conv: GATConv | GATv2Conv | None = None
        self.knn_graph: EdgeCSR | None = None
        self.knn_content: ContentAttention | None = None
        if knn is not None and config.knn_weight > 0:
            index, weight = knn[0].to(dev), knn[1].to(dev)
            self.knn_graph, perm = EdgeCSR.from_edges(index, n_items)
            if config.knn_attention:
                if content is None:
                    self.knn_conv = attention_conv(config, learn=learn_knn)
                else:
                    self.knn_content = ContentAttention(content[n_users:], 1, config.content_rate,
                                                        config.content_projection)
                self.register_buffer("knn_degree", _degree(index[1], n_items), False)
            else:  # fixed cosine weights, symmetric-normalised (FREEDOM's frozen graph)
                self.register_buffer("knn_weights", sym_norm_weights(index, weight, n_items)[perm], False)

    @classmethod
    def build(cls, dataset: Dataset, config: GATConfig, graph: TrainGraph | None,
              inputs: ItemInputs | None = None) -> GAT:
        """Ask ``inputs`` for what the config needs beside the dataset: features, the kNN graph; ratings."""
        if graph is None:
            raise ValueError("gat needs the training graph")
        features, source, knn = None, config.resolved_knn_source(), None
        if config.features != "none" or source != "none":
            if inputs is None:
                raise ValueError(f"gat with features={config.features}, knn_source={source} needs item inputs")
            hint = f"needs the item features that `gatrec embed --data {dataset.path}` writes"
            try:  # the store's message names the file; say what needed it and what to run
                if config.features != "none":
                    what = f"gat --features {config.features}"
                    features = inputs.features(config.features, config.features_dir)
                if source != "none":
                    what = f"gat knn_source={source}"
                    knn = inputs.knn(source, config.knn_k, config.features_dir)
            except DataError as exc:
                raise DataError(f"{what} {hint}: {exc}") from None
        ratings = None
        if config.ratings_in_attention() and "rating" in dataset.train.columns:
            ratings = edge_ratings(dataset, graph)
        content = None
        if config.attention_keys != "embeddings":
            content = content_keys(config.attention_keys, dataset.csr("train"), min(config.content_dim, config.dim),
                                   features)
        log.info("gat_inputs", features=config.features, knn=source,
                 knn_edges=None if knn is None else int(knn[0].shape[1]),
                 edge_dropout=config.resolved_edge_dropout(), ratings=ratings is not None,
                 attention_keys=config.attention_keys)
        return cls(dataset.n_users, dataset.n_items, config, graph, features=features, knn=knn,
                   ratings=ratings, content=content)

    def ego(self) -> torch.Tensor:
        """Layer-0 node inputs: ID embeddings, plus (gated) projected features on the item rows."""
        if self.proj is None:
            return self.embedding
        f = self.proj(F.dropout(self.feats, self.config.feature_dropout, self.training))
        if self.gate is not None:
            f = self.gate * f
        return torch.cat([self.embedding[: self.n_users], self.embedding[self.n_users:] + f])

    def _edges(self) -> tuple[EdgeCSR, torch.Tensor | None, torch.Tensor]:
        """This step's user-item graph (a degree-sensitive sample while training), attributes, degrees."""
        if not (self.training and self.edge_dropout > 0):
            return self.ui_graph, self.edge_attr, self.degree
        sample = torch.multinomial(self.upper_weight, max(1, int(len(self.upper) * (1 - self.edge_dropout))))
        kept = self.graph.edge_index[:, self.upper[sample]]
        n = self.n_users + self.n_items
        graph, perm = EdgeCSR.from_edges(torch.cat([kept, kept.flip(0)], dim=1), n)
        attr = None if self.ratings_upper is None else self.ratings_upper[sample].repeat(2, 1)[perm]
        return graph, attr, _degree(kept.flatten(), n)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (users, items): layer-mean (or layer attention) of attention propagation; items plus their kNN
        propagation."""
        x = self.ego()
        graph, edge_attr, degree = self._edges()
        out = self._combine(x, self._layers(x, graph, edge_attr, degree), self.n_users)
        users, items = out[: self.n_users], out[self.n_users:]
        if self.knn_graph is not None:
            items = items + self.config.knn_weight * self._knn(None)
        return users, items

    def _layers(self, x: torch.Tensor, graph: EdgeCSR, edge_attr: torch.Tensor | None,
                degree: torch.Tensor) -> Iterator[torch.Tensor]:
        """The outputs of layers 1..L over the whole graph, one at a time (each the next one's input)."""
        if self.content is not None:
            yield from self.content.propagate(x, graph, degree)
        if self.intents:
            t = self.config.intent_temperature if self.config.learns_user_item_attention() else 0.0
            for _ in range(self.config.n_layers):
                x = intent_layer(x, graph, self.config.intents, t, self.config.attention_detach)
                yield x
        for conv in self.convs:
            # D^1/2 softmax-mean(D^-1/2 x) = D^-1/2 A D^-1/2 x while attention is uniform (LightGCN).
            x = attend(conv, x, graph, edge_attr, degree, self.config.attention_detach)
            yield x

    def propagate_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The final representations at ``rows`` (sorted distinct node ids) and ``embedding[rows]``, computed
        for those rows: the last layer runs at them alone, and each layer's input is gathered there with it."""
        out, ego, _ = self._rows(rows)
        return out, ego

    def _rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``propagate_rows`` and every user-item layer's output at ``rows`` (layer 0 first)."""
        if self.content is not None or self.intents:  # the full propagation, then its rows (both compute all)
            users, items = self.propagate()
            return torch.cat([users, items]).index_select(0, rows), gather_rows(self.embedding, rows), []
        x = self.ego()
        graph, edge_attr, degree = self._edges()
        eps = self.config.cl_noise_now(self.training)  # XSimGCL's perturbation of each layer (contrastive.py)
        at_rows = []
        for depth, conv in enumerate(self.convs, 1):
            last = depth == len(self.convs)
            x, x_in = attend_and_gather(conv, x, graph, edge_attr, degree, self.config.attention_detach,
                                        rows if last else None, gather=rows)
            x = perturb(x, eps)
            at_rows.append(x_in)
        at_rows.append(x if self.convs else x.index_select(0, rows))
        n_u = int(torch.searchsorted(rows, self.n_users))
        out = self._combine(at_rows[0], at_rows[1:], n_u)
        # layer 0 is the embedding, or it and the features: then ego() passes the embedding a dense gradient
        ego = at_rows[0] if self.proj is None else gather_rows(self.embedding, rows)
        if self.knn_graph is not None:
            out = torch.cat([out[:n_u], out[n_u:] + self.config.knn_weight * self._knn(rows[n_u:] - self.n_users)])
        return out, ego, at_rows  # type: ignore[return-value]

    def _combine(self, first: torch.Tensor, rest: Iterable[torch.Tensor], n_users: int) -> torch.Tensor:
        """The output from layer 0 and the outputs of layers 1..L (the first ``n_users`` rows are users): their
        mean, as a running sum (no layer kept longer than needed), or the layer attention."""
        if self.layer_attention is not None:
            return self.layer_attention([first, *rest], n_users)
        out, count = first, 1
        for layer in rest:
            out, count = out + layer, count + 1
        return out if count == 1 else out / count

    def _knn(self, item_rows: torch.Tensor | None) -> torch.Tensor:
        """Item ID embeddings propagated over the item-item graph (at ``item_rows`` when given)."""
        h = self.embedding[self.n_users:]
        if self.knn_content is not None:
            h = self.knn_content.layer(0, h, self.knn_graph, self.knn_degree)  # type: ignore[arg-type]
            return h if item_rows is None else h.index_select(0, item_rows)
        if self.knn_conv is not None:
            return attend(self.knn_conv, h, self.knn_graph, degree=self.knn_degree,  # type: ignore[arg-type]
                          detach_scores=self.config.attention_detach, rows=item_rows)
        h = spmm(self.knn_weights, h, self.knn_graph)  # type: ignore[arg-type]
        return h if item_rows is None else h.index_select(0, item_rows)

    def loss(self, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        batch = BatchRows.of(self.n_users, users, pos, neg)  # one propagation per batch, as LightGCN
        out, ego, layers = self._rows(batch.rows)
        return add_contrastive(triple_loss(out, ego, batch, self.config.reg_weight, self.config.loss), out, layers,
                               batch.rows, self.n_users, self.config)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()

    def attention_parameters(self) -> list[torch.Tensor]:
        """The raw (before ``attention_scale``) attention vectors of every layer."""
        return [p for name, p in self.named_parameters() if ".parametrizations.att" in f".{name}"]

