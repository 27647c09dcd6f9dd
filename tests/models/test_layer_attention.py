"""The GAT's attention over layer outputs (gatrec/models/layer_attention.py): it starts as the layer mean bit
for bit, learns from there, and weighs each node's layers with that node's own softmax."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gatrec.data.dataset import Dataset
from gatrec.models.layer_attention import LayerAttention
from gatrec.train import checkpoint
from gatrec.train.config import TrainConfig
from gatrec.train.loop import train
from tests.kit import write_features
from tests.models.test_gat import build, write_dataset


@pytest.fixture(scope="module")
def data_with_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = write_dataset(tmp_path_factory.mktemp("layer_att") / "data")
    write_features(d, n_clusters=4)
    return d


BATCH = torch.tensor([0, 1, 2, 2, 5]), torch.tensor([3, 4, 5, 3, 9]), torch.tensor([6, 7, 8, 4, 3])


@pytest.mark.parametrize("combine", ["attention", "hop_attention"])
@pytest.mark.parametrize("params", [{"features": "text", "knn_k": 5}, {"n_layers": 4, "knn_source": "none"},
                                    {"n_layers": 0, "knn_source": "none"},
                                    {"attention_keys": "interactions", "content_dim": 4, "knn_source": "none"}])
def test_starts_exactly_as_the_mean_combined_model(data_with_text: Path, params: dict, combine: str) -> None:
    """Zero-initialised scores: every alpha is 1/(L+1) and outputs, loss and gradients equal the mean's."""
    mean = build(data_with_text, dim=8, attention_on="both", **params)
    att = build(data_with_text, dim=8, attention_on="both", layer_combine=combine, **params)
    assert mean.layer_attention is None and att.layer_attention is not None
    with torch.no_grad():  # non-uniform neighbour attention: only the combination over layers differs
        for a, b in zip(mean.attention_parameters(), att.attention_parameters(), strict=True):
            a.normal_()
            b.copy_(a)
    for model in (mean, att):
        model.eval()
    with torch.no_grad():
        for a, b in zip(mean.embeddings(), att.embeddings(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    for mode in ("eval", "train"):  # training: the same edge-dropout sample for both (same seed)
        runs = []
        for model in (mean, att):
            model.train(mode == "train")
            model.zero_grad()
            torch.manual_seed(7)
            loss, _ = model.loss(*BATCH)
            loss.backward()
            grads = {n: p.grad for n, p in model.named_parameters() if not n.startswith("layer_attention.")}
            runs.append((loss.detach(), grads))
        torch.testing.assert_close(runs[0][0], runs[1][0], rtol=0, atol=0)
        assert runs[0][1].keys() == runs[1][1].keys()
        for name, g in runs[0][1].items():
            torch.testing.assert_close(g, runs[1][1][name], rtol=0, atol=0, msg=name)
    # ...and the layer attention gets a gradient to move away from uniform
    assert att.layer_attention is not None
    if params.get("n_layers", 2) > 0:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in att.layer_attention.parameters())


def test_each_node_gets_its_own_softmax_over_its_layers() -> None:
    torch.manual_seed(0)
    n_users, n, d, n_layers = 3, 7, 5, 2
    layers = [torch.randn(n, d) for _ in range(n_layers + 1)]
    la = LayerAttention(d, n_layers)
    alpha = la.alpha(layers, n_users)
    torch.testing.assert_close(alpha, torch.full((n, n_layers + 1), 1 / (n_layers + 1)), rtol=0, atol=0)
    with torch.no_grad():
        la.query.normal_()
        la.layer_query.normal_()
    alpha = la.alpha(layers, n_users)
    torch.testing.assert_close(alpha.sum(1), torch.ones(n))
    assert alpha.std(0).min() > 1e-3  # different nodes, different mixes
    # the formula written plainly: users read W_0 and a_0l, items W_1 and a_1l
    side = (torch.arange(n) >= n_users).long()
    s = torch.stack([((layers[0].unsqueeze(1) @ la.query[side]).squeeze(1) + la.layer_query[side, i]).mul(h).sum(1)
                     for i, h in enumerate(layers)], dim=1)
    want = torch.softmax(s, dim=1)
    torch.testing.assert_close(alpha, want)
    torch.testing.assert_close(la(layers, n_users), sum(want[:, i:i + 1] * h for i, h in enumerate(layers)))


def test_fixed_ego_keeps_layer_zero_at_its_mean_share() -> None:
    torch.manual_seed(0)
    n_users, n, d, n_layers = 3, 7, 5, 3
    layers = [torch.randn(n, d) for _ in range(n_layers + 1)]
    free, fixed = LayerAttention(d, n_layers), LayerAttention(d, n_layers, fixed_ego=True)
    with torch.no_grad():
        free.query.normal_()
        free.layer_query.normal_()
        fixed.load_state_dict(free.state_dict())
    alpha = fixed.alpha(layers, n_users)
    torch.testing.assert_close(alpha[:, 0], torch.full((n,), 1 / (n_layers + 1)))
    # the rest: the same scores' softmax over layers 1..L, scaled to L/(L+1)
    want = torch.softmax(free.scores(layers, n_users)[:, 1:], dim=1) * n_layers / (n_layers + 1)
    torch.testing.assert_close(alpha[:, 1:], want)
    assert not torch.allclose(free.alpha(layers, n_users)[:, 0], alpha[:, 0])


def test_detached_scores_pass_no_gradient_to_the_layers() -> None:
    torch.manual_seed(0)
    layers = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    grads = []
    for detach in (True, False):
        la = LayerAttention(3, 2, detach=detach)
        with torch.no_grad():
            la.query.normal_()
        la.alpha(layers, 2).pow(2).sum().backward()  # a loss of the weights alone
        grads.append([h.grad.clone() if h.grad is not None else torch.zeros(4, 3) for h in layers])
        for h in layers:
            h.grad = None
    assert all(g.abs().sum() == 0 for g in grads[0]) and any(g.abs().sum() > 0 for g in grads[1])


def test_is_learned_and_saved_with_the_model(data_with_text: Path, tmp_path: Path) -> None:
    params = {"dim": 16, "features": "text", "knn_k": 5, "layer_combine": "attention"}
    cfg = TrainConfig(model="gat", epochs=8, batch_size=256, lr=0.01, patience=8, model_params=params, seed=0)
    train(data_with_text, cfg, tmp_path / "gat")
    model = build(data_with_text, **params)
    model.load_state_dict(checkpoint.load(tmp_path / "gat" / "checkpoints" / checkpoint.LAST)["model"])
    assert model.layer_attention is not None
    assert all(p.abs().max() > 1e-3 for p in model.layer_attention.parameters())
    model.eval()
    ds = Dataset.load(data_with_text)
    with torch.no_grad():
        x = model.ego()
        layers = [x, *model._layers(x, model.ui_graph, model.edge_attr, model.degree)]
        alpha = model.layer_attention.alpha(layers, ds.n_users)
    assert (alpha - 1 / 3).abs().max() > 1e-4  # no longer the mean


def test_default_is_the_mean_with_no_extra_state(data_with_text: Path) -> None:
    model = build(data_with_text, dim=8)
    assert model.config.layer_combine == "mean" and model.layer_attention is None
    assert not any(k.startswith("layer_attention") for k in model.state_dict())
