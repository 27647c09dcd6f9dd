"""Content attention equals PyG's TransformerConv (values and gradients), starts as LightGCN, and its keys
carry what they claim (content fit, low-rank fit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gatrec.models.base import TrainGraph
from gatrec.models.content_attention import ContentAttention, content_keys, edge_dot
from gatrec.models.gat import GATConfig
from gatrec.models.sparse import EdgeCSR
from gatrec.train import checkpoint
from gatrec.train.config import TrainConfig
from gatrec.train.loop import train
from tests.models import test_gat
from tests.models.test_recommenders import assert_loss_matches_reference
from tests.models.test_sparse import random_symmetric_graph

_build = test_gat.build
data_with_text = test_gat.data_with_text  # the fixture, shared


@pytest.mark.parametrize("learn_projection", [False, True])
def test_layer_equals_transformer_conv(learn_projection: bool) -> None:
    n, d, k = 40, 8, 5
    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(n, 200, seed=3), n)
    torch.manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(n, k), dim=1)
    att = ContentAttention(keys, n_layers=2, rate=3.0, learn_projection=learn_projection)
    with torch.no_grad():  # non-uniform attention and a projection away from the identity
        att.raw_temperature.copy_(torch.tensor([0.7, -1.3]))
        if att.projection is not None:
            att.projection.add_(0.5 * torch.randn(k, k))
    x = torch.randn(n, d, requires_grad=True)
    degree = torch.randint(0, 6, (n, 1)).float()  # one 0 at least is likely; it counts as 1
    params = [p for p in att.parameters()]
    weight = torch.arange(d, dtype=torch.float32)

    fast = att.layer(1, x, graph, degree)
    (fast * weight).sum().backward()
    fast_grads = [x.grad.clone()] + [p.grad.clone() for p in params]
    x.grad = None
    att.zero_grad()

    conv = att.conv(1, d)
    d_in, d_out = degree.clamp(min=1).rsqrt(), degree.clamp(min=1).sqrt()
    slow = d_out * conv(torch.cat([keys, d_in * x], dim=1), graph.edge_index)
    (slow * weight).sum().backward()
    slow_grads = [x.grad] + [p.grad for p in params]
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert all(g.abs().sum() > 0 for g in fast_grads)  # the attention parameters really learn


def test_edge_dot_gradients() -> None:
    n, k = 12, 3
    graph, _ = EdgeCSR.from_edges(random_symmetric_graph(n, 40, seed=2), n)
    q = torch.randn(n, k, dtype=torch.float64, requires_grad=True)
    kk = torch.randn(n, k, dtype=torch.float64, requires_grad=True)
    target, source = graph.edge_index[1], graph.edge_index[0]
    torch.testing.assert_close(edge_dot(q, kk, graph), (q[target] * kk[source]).sum(1))
    assert torch.autograd.gradcheck(lambda a, b: edge_dot(a, b, graph), (q, kk))


def test_zero_temperature_is_lightgcn_propagation() -> None:
    r = sp.random(15, 9, density=0.3, format="csr", random_state=np.random.default_rng(1))
    tg = TrainGraph.from_matrix(r)
    graph, _ = EdgeCSR.from_edges(tg.edge_index, tg.n_nodes)
    keys = content_keys("interactions", r, dim=4)
    att = ContentAttention(keys, n_layers=3)
    x = torch.randn(tg.n_nodes, 6)
    ref = x
    for out in att.propagate(x, graph, tg.degree.view(-1, 1)):
        ref = tg.propagate(ref)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def _two_communities() -> sp.csr_matrix:
    """Users 0-5 buy items 0-3, users 6-11 items 4-7, and user 0 also item 7 (an off-taste purchase)."""
    r = np.zeros((12, 8), dtype=np.float32)
    r[:6, :4] = 1
    r[6:, 4:] = 1
    r[0, 7] = 1
    return sp.csr_matrix(r)


def test_interaction_keys_fit_the_low_rank_structure() -> None:
    r = _two_communities()
    keys = content_keys("interactions", r, dim=2)
    users, items = keys[:12], keys[12:]
    assert torch.allclose(keys.norm(dim=1), torch.ones(20))
    fit = users @ items.T
    assert fit[0, :4].min() > fit[0, 7]  # user 0's in-taste items fit better than the off-taste one
    assert fit[1, :4].min() > fit[1, 4:].max() + 0.5


def test_feature_keys_are_item_content_and_user_profiles() -> None:
    r = _two_communities()
    rng = np.random.default_rng(0)
    topic = rng.normal(size=(2, 16))
    features = np.vstack([topic[0] + 0.1 * rng.normal(size=(4, 16)), topic[1] + 0.1 * rng.normal(size=(4, 16))])
    keys = content_keys("features", r, dim=4, features=features)
    assert keys.shape == (20, 4)
    users, items = keys[:12], keys[12:]
    fit = users @ items.T
    assert fit[0, :4].min() > fit[0, 7]
    assert fit[7, 4:].min() > fit[7, :4].max()
    with pytest.raises(ValueError, match="need the item features"):
        content_keys("features", r, dim=4)


def test_a_learned_temperature_moves_attention_towards_fitting_neighbours() -> None:
    """With positive temperature, user 0 (one off-taste item) puts less weight on that item than uniform."""
    r = _two_communities()
    tg = TrainGraph.from_matrix(r)
    graph, _ = EdgeCSR.from_edges(tg.edge_index, tg.n_nodes)
    att = ContentAttention(content_keys("interactions", r, dim=2), n_layers=1)
    with torch.no_grad():
        att.raw_temperature.fill_(5.0)
    x = torch.zeros(tg.n_nodes, 1)
    x[12 + 7] = 1.0  # a signal on the off-taste item only
    sharp = att.layer(0, x, graph, tg.degree.view(-1, 1))
    assert 0 < sharp[0, 0] < tg.propagate(x)[0, 0] / 3


# --- in the GAT (attention_keys) -------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{"attention_keys": "features", "features": "text", "knn_k": 5},
                                    {"attention_keys": "interactions", "n_layers": 3},
                                    {"attention_keys": "features", "features": "text", "knn_k": 5,
                                     "content_projection": True, "content_dim": 4}])
def test_gat_with_content_keys_starts_uniform_and_its_row_loss_is_exact(data_with_text: Path, params: dict) -> None:
    model = _build(data_with_text, dim=8, feature_gate=False, attention_on="both", **params)
    assert model.content is not None and not model.convs
    assert (model.knn_content is not None) == (params["attention_keys"] == "features")
    uniform = _build(data_with_text, dim=8, feature_gate=False,  # attention off: the default
                     **{k: v for k, v in params.items() if not k.startswith(("attention_keys", "content"))})
    uniform.load_state_dict(model.state_dict(), strict=False)  # the same embeddings and feature projection
    model.eval()
    uniform.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.cat(model.embeddings()), torch.cat(uniform.embeddings()),
                                   rtol=1e-5, atol=1e-6)
        for att in (model.content, model.knn_content):
            if att is not None:
                att.raw_temperature.normal_()
                if att.projection is not None:
                    att.projection.add_(0.3 * torch.randn_like(att.projection))
        assert (torch.cat(model.embeddings()) - torch.cat(uniform.embeddings())).abs().max() > 1e-3
    batch = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 4, 5, 3, 9]), torch.tensor([6, 7, 8, 4, 3])
    assert_loss_matches_reference(model, batch, model.config.reg_weight, model.config.loss)


def test_gat_learns_content_temperatures(data_with_text: Path, tmp_path: Path) -> None:
    params = {"dim": 16, "features": "text", "knn_k": 5, "attention_keys": "features", "attention_on": "both"}
    cfg = TrainConfig(model="gat", epochs=10, batch_size=256, lr=0.01, patience=10, model_params=params, seed=0)
    result = train(data_with_text, cfg, tmp_path / "gat")
    assert np.isfinite(result["valid"]["ndcg@20"])
    model = _build(data_with_text, **params)
    model.load_state_dict(checkpoint.load(tmp_path / "gat" / "checkpoints" / checkpoint.LAST)["model"])
    assert model.content is not None and model.knn_content is not None
    assert model.content.temperature.abs().min() > 0.05 and model.knn_content.temperature.abs().min() > 0.05


def test_feature_keys_need_features() -> None:
    with pytest.raises(ValueError, match="attention_keys=features needs item features"):
        GATConfig(attention_keys="features")
