"""The GAT recommender: shapes and gradients, attention actually in use, LightGCN equivalence at start,
features/kNN loading from the `gatrec embed` folder, and a short training run that beats popularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.nn import GATConv

from gatrec.data.dataset import Dataset
from gatrec.errors import DataError
from gatrec.graph.interactions import interaction_knn
from gatrec.models import get
from gatrec.models.base import TrainGraph
from gatrec.models.gat import GAT, GATConfig
from gatrec.models.lightgcn import LightGCN, LightGCNConfig
from gatrec.train import checkpoint
from gatrec.train.config import TrainConfig
from gatrec.train.inputs import DatasetInputs
from gatrec.train.loop import train
from tests.kit import write_features, write_prepared
from tests.models.test_recommenders import assert_loss_matches_reference

N_CLUSTERS = 4


def write_dataset(folder: Path, **kw: object) -> Path:
    """Users with cluster tastes (personalisation pays, popularity does not), leave-one-out split."""
    return write_prepared(folder, n_users=96, n_items=48, per_user=10, n_clusters=N_CLUSTERS, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("gat") / "data")


@pytest.fixture(scope="module")
def data_with_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = write_dataset(tmp_path_factory.mktemp("gat_text") / "data")
    write_features(d, n_clusters=N_CLUSTERS)
    return d


def build(data: Path, **params: object) -> GAT:
    ds = Dataset.load(data)
    torch.manual_seed(0)
    model = get("gat").build(ds, GATConfig(**params), TrainGraph.from_dataset(ds), DatasetInputs(ds))
    assert isinstance(model, GAT)
    return model


def test_registered_and_built_from_gatconv(data: Path) -> None:
    model = build(data, dim=8, n_layers=3, knn_source="none")
    assert get("gat") is GAT
    assert len(model.convs) == 3 and all(isinstance(c, GATConv) for c in model.convs)
    assert all(not c.add_self_loops and c.bias is None and c.heads == 1 for c in model.convs)


def test_forward_backward_reaches_embeddings_features_and_attention(data_with_text: Path) -> None:
    model = build(data_with_text, dim=8, features="text", knn_k=5, feature_gate=False, attention_on="both")
    ds = Dataset.load(data_with_text)
    users, items = model.embeddings()
    assert users.shape == (ds.n_users, 8) and items.shape == (ds.n_items, 8)
    u, p, n = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7, 8])
    loss, parts = model.loss(u, p, n)
    assert torch.isfinite(loss) and set(parts) == {"bpr", "reg", "cl"}  # XSimGCL on by default
    loss.backward()
    assert model.embedding.grad is not None and model.embedding.grad.abs().sum() > 0
    assert model.proj is not None and model.proj.weight.grad.abs().sum() > 0
    att = model.attention_parameters()
    # One per user-item layer + one for the attention over the kNN graph: the logit is linear by default
    # (negative_slope 1), so only a_src matters (a_dst cancels in the softmax and stays frozen at 0).
    assert len(att) == 2 + 1
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in att)


@pytest.mark.parametrize("params", [{"features": "text", "knn_k": 5}, {"features": "text", "knn_attention": False},
                                    {"loss": "bce", "n_layers": 3, "heads": 2}, {"negative_slope": 0.2},
                                    {"n_layers": 0, "features": "text"},
                                    {"layer_combine": "attention", "features": "text", "knn_k": 5},
                                    {"layer_combine": "attention", "n_layers": 3, "heads": 2,
                                     "attention_detach": False},
                                    {"layer_combine": "attention", "n_layers": 0, "features": "text"},
                                    {"layer_combine": "attention", "attention_keys": "interactions",
                                     "content_dim": 4},
                                    {"layer_combine": "hop_attention", "features": "text", "knn_k": 5},
                                    {"layer_combine": "hop_attention", "n_layers": 1},
                                    {"attention_on": "item_item", "features": "text", "knn_k": 5},
                                    {"attention_on": "user_item", "features": "text", "knn_k": 5},
                                    {"conv": "intents", "intents": 2, "features": "text", "knn_k": 5}])
def test_loss_at_the_batch_rows_equals_the_full_computation(data_with_text: Path, params: dict) -> None:
    # cl_weight 0: the contrastive term has its own exactness tests (test_contrastive.py)
    model = build(data_with_text, dim=8, feature_gate=False, cl_weight=0.0, **{"attention_on": "both", **params})
    with torch.no_grad():  # non-uniform attention (over neighbours and over layers)
        for a in model.attention_parameters():
            a.normal_()
        if model.layer_attention is not None:
            for p in model.layer_attention.parameters():
                p.normal_(0.0, 3.0)
        if model.content is not None:
            model.content.raw_temperature.normal_()
    model.eval()  # the same graph for both (no edge dropout)
    batch = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 4, 5, 3, 9]), torch.tensor([6, 7, 8, 4, 3])
    assert_loss_matches_reference(model, batch, model.config.reg_weight, model.config.loss)


def test_starts_as_lightgcn_and_attention_changes_the_output(data: Path) -> None:
    """Zero attention = uniform softmax = LightGCN's normalised propagation; non-zero attention re-weights."""
    ds = Dataset.load(data)
    graph = TrainGraph.from_dataset(ds)
    gat = GAT(ds.n_users, ds.n_items, GATConfig(dim=8, n_layers=2, knn_source="none", attention_on="both"), graph)
    lgcn = LightGCN(ds.n_users, ds.n_items, LightGCNConfig(dim=8, n_layers=2), graph)
    with torch.no_grad():
        lgcn.embedding.copy_(gat.embedding)
        u0, i0 = gat.embeddings()
        lu, li = lgcn.embeddings()
        torch.testing.assert_close(torch.cat([u0, i0]), torch.cat([lu, li]), rtol=1e-5, atol=1e-6)
        for a in gat.attention_parameters():
            a.normal_(0.0, 1000.0)  # raw values get scaled by attention_scale and see D^-1/2 x
        u1, _ = gat.embeddings()
    assert (u1 - u0).abs().max() > 0.1 * u0.abs().max()


def test_intent_routing_at_temperature_zero_is_lightgcn_and_routes_otherwise(data: Path) -> None:
    ds = Dataset.load(data)
    graph = TrainGraph.from_dataset(ds)
    cfg = {"dim": 8, "n_layers": 2, "knn_source": "none", "conv": "intents", "intents": 2, "attention_on": "both"}
    flat = GAT(ds.n_users, ds.n_items, GATConfig(**cfg, intent_temperature=0.0), graph)
    routed = GAT(ds.n_users, ds.n_items, GATConfig(**cfg), graph)
    lgcn = LightGCN(ds.n_users, ds.n_items, LightGCNConfig(dim=8, n_layers=2), graph)
    assert len(flat.convs) == 0 and flat.attention_parameters() == []  # routing has no parameters
    with torch.no_grad():
        lgcn.embedding.copy_(flat.embedding)
        routed.embedding.copy_(flat.embedding)
        torch.testing.assert_close(torch.cat(flat.embeddings()), torch.cat(lgcn.embeddings()), rtol=1e-5, atol=1e-6)
        assert (torch.cat(routed.embeddings()) - torch.cat(lgcn.embeddings())).abs().max() > 1e-4


def test_training_beats_popularity_and_learns_attention(data_with_text: Path, tmp_path: Path) -> None:
    params = {"dim": 16, "features": "text", "knn_k": 5, "attention_on": "both"}
    cfg = TrainConfig(model="gat", epochs=25, batch_size=256, lr=0.01, patience=25, model_params=params,
                      seed=0)
    result = train(data_with_text, cfg, tmp_path / "gat")
    pop = train(data_with_text, TrainConfig(model="pop", seed=0), tmp_path / "pop")
    assert result["valid"]["ndcg@20"] > 1.2 * pop["valid"]["ndcg@20"]
    assert result["test"]["ndcg@20"] > pop["test"]["ndcg@20"]
    model = build(data_with_text, **params)
    model.load_state_dict(checkpoint.load(tmp_path / "gat" / "checkpoints" / checkpoint.LAST)["model"])
    assert all(a.abs().max() > 1e-3 for a in model.attention_parameters())  # attention was learned
    emb = np.load(tmp_path / "gat" / "model" / "item_embeddings.npy")
    assert emb.shape == (48, 16) and np.isfinite(emb).all()


@pytest.mark.parametrize("attention_on", ["item_item", "user_item"])
def test_attention_on_one_graph_keeps_the_other_uniform(tmp_path: Path, attention_on: str) -> None:
    """The frozen graph propagates exactly as the uniform-attention control does, whatever the learned
    graph's attention is, and only the learned graph's attention vectors are parameters."""
    data = write_dataset(tmp_path / "rated", ratings=True)
    write_features(data, n_clusters=N_CLUSTERS, k=5)
    params = {"dim": 8, "features": "text", "knn_k": 5, "feature_gate": False, "edge_dropout": 0.0}
    model = build(data, attention_on=attention_on, **params)
    control = build(data, attention_on="both", attention_scale=1e-9, **params)  # the protocol's uniform control
    with torch.no_grad():
        control.load_state_dict(model.state_dict(), strict=False)
    learned = model.attention_parameters()
    # item_item: the kNN layer's a_src; user_item: a_src and a_edge (the ratings) of both user-item layers
    assert len(learned) == (1 if attention_on == "item_item" else 4)
    assert all(p.requires_grad for p in learned)
    frozen = [p for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(float(p.abs().max()) == 0 for p in frozen)
    if attention_on == "item_item":
        assert model.edge_attr is None  # ratings enter only the attention logits
    with torch.no_grad():
        for a in learned:
            a.normal_(0.0, 100.0)
    model.eval(), control.eval()
    users, items = model.embeddings()
    c_users, c_items = control.embeddings()
    if attention_on == "item_item":  # users see only the user-item graph: uniform, exactly the control's
        torch.testing.assert_close(users, c_users)
    else:  # items get kNN propagation with uniform weights: the item-item part equals the control's
        torch.testing.assert_close(model._knn(None), control._knn(None))
    assert (items - c_items).abs().max() > 1e-3  # the learned graph's attention is in use
    loss, _ = model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    loss.backward()
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in learned)


def test_attention_off_by_default_is_the_uniform_control(tmp_path: Path) -> None:
    """The default (attention_on=none) has no attention parameters, ignores ratings and propagates as the
    protocol's uniform control (learned attention at a 1e-9 rate) and, without features, as LightGCN."""
    data = write_dataset(tmp_path / "rated", ratings=True)
    write_features(data, n_clusters=N_CLUSTERS, k=5)
    for params in ({"dim": 8, "features": "text", "knn_k": 5, "feature_gate": False, "edge_dropout": 0.0},
                   {"dim": 8, "n_layers": 3}):
        model = build(data, **params)
        assert model.config.attention_on == "none" and model.attention_parameters() == []
        assert model.edge_attr is None and all(not p.requires_grad for c in model.convs for p in c.parameters())
        control = build(data, attention_on="both", attention_scale=1e-9, **params)
        control.load_state_dict(model.state_dict(), strict=False)
        model.eval(), control.eval()
        with torch.no_grad():
            torch.testing.assert_close(torch.cat(model.embeddings()), torch.cat(control.embeddings()))
    ds = Dataset.load(data)
    lgcn = LightGCN(ds.n_users, ds.n_items, LightGCNConfig(dim=8, n_layers=3), TrainGraph.from_dataset(ds))
    with torch.no_grad():
        lgcn.embedding.copy_(model.embedding)
        torch.testing.assert_close(torch.cat(model.embeddings()), torch.cat(lgcn.embeddings()), rtol=1e-5,
                                   atol=1e-6)


def test_bce_loss_and_degree_sensitive_edge_dropout(data: Path) -> None:
    model = build(data, dim=8, loss="bce", edge_dropout=0.5, knn_source="none")
    model.train()
    sampled, _, degree = model._edges()
    edges = sampled.edge_index
    n_undirected = model.graph.edge_index.shape[1] // 2
    assert edges.shape[1] == 2 * int(n_undirected * 0.5)
    # Both directions of every kept edge, and degrees recomputed on the sample.
    assert set(map(tuple, edges.T.tolist())) == set(map(tuple, edges.flip(0).T.tolist()))
    assert torch.equal(degree.flatten(), torch.bincount(edges[1], minlength=len(model.degree)).float())
    assert not torch.equal(degree, model.degree)
    loss, parts = model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    assert set(parts) == {"bce", "reg", "cl"}
    loss.backward()
    model.eval()
    assert model._edges()[0] is model.ui_graph


def test_edge_dropout_default_depends_on_the_item_graph() -> None:
    assert GATConfig(features="text").resolved_edge_dropout() == 0.8
    assert GATConfig().resolved_edge_dropout() == 0.0  # features none: no item graph, no dropout
    assert GATConfig().resolved_knn_source() == "none"
    assert GATConfig(knn_source="interactions").resolved_edge_dropout() == 0.0
    assert GATConfig(features="text", knn_weight=0).resolved_knn_source() == "none"
    assert GATConfig(edge_dropout=0.3).resolved_edge_dropout() == 0.3


@pytest.mark.parametrize("params", [{"conv": "gatv2"}, {"heads": 3}, {"knn_attention": False}, {"conv": "intents"}])
def test_variants_keep_shapes_and_train(data_with_text: Path, params: dict) -> None:
    model = build(data_with_text, dim=8, features="text", knn_k=5, attention_on="both", **params)
    loss, _ = model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    loss.backward()
    users, items = model.embeddings()
    assert users.shape == (96, 8) and items.shape == (48, 8)
    assert all(a.grad is not None for a in model.attention_parameters())


def test_feature_gate_starts_closed(data_with_text: Path) -> None:
    """With the gate at 0 the features add nothing yet, but the gate gets a gradient to open."""
    with_f = build(data_with_text, dim=8, features="text", knn_k=5, edge_dropout=0.0)
    without = build(data_with_text, dim=8, knn_source="text", knn_k=5, edge_dropout=0.0)
    with torch.no_grad():
        without.embedding.copy_(with_f.embedding)
    with_f.eval(), without.eval()
    torch.testing.assert_close(with_f.embeddings()[1], without.embeddings()[1])
    with_f.train()
    with_f.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))[0].backward()
    assert with_f.gate is not None and with_f.gate.grad is not None and with_f.gate.grad.abs() > 0


def test_ratings_enter_the_attention(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "rated", ratings=True)
    model = build(d, dim=8, knn_source="none", attention_on="both")
    assert model.edge_attr is not None and model.edge_attr.shape == (model.graph.edge_index.shape[1], 1)
    assert float(model.edge_attr.min()) >= 0 and float(model.edge_attr.max()) == 1.0
    loss, _ = model.loss(torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 5]))
    loss.backward()
    assert all(c.parametrizations.att_edge.original.grad.abs().sum() > 0 for c in model.convs)


def test_missing_features_say_run_embed(data: Path) -> None:
    with pytest.raises(DataError, match="gatrec embed"):
        build(data, features="text")


def test_interaction_knn_links_co_consumed_items(data: Path) -> None:
    ds = Dataset.load(data)
    edge_index, weight = interaction_knn(ds.csr("train"), k=5)
    assert (edge_index[0] != edge_index[1]).all() and (weight > 0).all() and (weight <= 1 + 1e-6).all()
    # Symmetric, and mostly within a taste cluster (items i and j share users of one cluster).
    pairs = set(map(tuple, edge_index.T.tolist()))
    assert all((j, i) in pairs for i, j in pairs)
    same = (edge_index[0] % N_CLUSTERS == edge_index[1] % N_CLUSTERS).float().mean()
    assert same > 0.6


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        GATConfig(features="audio")
    with pytest.raises(ValueError):
        GATConfig(edge_dropout=1.0)
    with pytest.raises(ValueError):
        GATConfig(unknown=1)


def test_init_std_draws_normal_id_embeddings(data: Path) -> None:
    xavier = build(data, dim=64).embedding.detach()
    normal = build(data, dim=64, init_std=0.1).embedding.detach()
    assert abs(float(normal.std()) - 0.1) < 0.01
    assert float(xavier.abs().max()) <= (6 / sum(xavier.shape)) ** 0.5  # Xavier uniform's bound


def test_reading_the_model_config_does_not_import_pyg() -> None:
    """The CLI validates configs and prints `train --help` from this module without building a layer; PyG's
    package import alone costs seconds on every such command, so it waits until a layer is built."""
    import subprocess
    import sys

    code = ("import sys; from gatrec.train.config import TrainConfig; "
            "TrainConfig(model='gat', model_params={'features': 'text'}).model_hparams(); "
            "import gatrec.models.content_attention, gatrec.models.layer_attention; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch_geometric'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
