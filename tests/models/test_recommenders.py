"""Model mechanics on tiny in-memory data: graph normalisation, LightGCN = PyG semantics, losses decrease."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gatrec import models
from gatrec.models.base import TrainGraph
from gatrec.models.lightgcn import LightGCN, LightGCNConfig
from gatrec.models.mf import MF
from gatrec.models.pop import PopConfig, Popularity
from gatrec.train.sampler import BPRSampler


def clustered(n_users: int = 40, n_items: int = 30, n_clusters: int = 3, per_user: int = 8, seed: int = 0):
    """Users of cluster c interact mostly with items i where i % n_clusters == c."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        own = np.flatnonzero(np.arange(n_items) % n_clusters == u % n_clusters)
        chosen = rng.choice(own, size=min(per_user, len(own)), replace=False)
        users += [u] * len(chosen)
        items += chosen.tolist()
    return np.array(users), np.array(items), n_users, n_items


def reference_loss(model, users, pos, neg, reg_weight: float, kind: str = "bpr") -> torch.Tensor:
    """The training loss written plainly: full propagation, three gathers, the regulariser per triple member."""
    ue, ie = model.embeddings()
    u, p, n = ue[users], ie[pos], ie[neg]
    pos_s, neg_s = (u * p).sum(1), (u * n).sum(1)
    if kind == "bpr":
        main = torch.nn.functional.softplus(neg_s - pos_s).mean()
    else:
        main = torch.nn.functional.softplus(-pos_s).mean() + torch.nn.functional.softplus(neg_s).mean()
    e, nu = model.embedding, model.n_users
    return main + reg_weight * (e[users].pow(2).sum() + e[nu + pos].pow(2).sum() + e[nu + neg].pow(2).sum()) / (
        2 * len(users))


def assert_loss_matches_reference(model, batch, reg_weight: float, kind: str = "bpr") -> None:
    """``model.loss`` (computed at the batch's rows only) = ``reference_loss``, in value and in every gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    runs = []
    for fn in (lambda: model.loss(*batch)[0], lambda: reference_loss(model, *batch, reg_weight, kind)):
        model.zero_grad()
        loss = fn()
        loss.backward()
        runs.append([loss.detach()] + [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params])
    for got, want in zip(*runs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("name", "params"), [("mf", {}), ("lightgcn", {}), ("lightgcn", {"n_layers": 1}),
                                              ("lightgcn", {"n_layers": 0})])
def test_loss_at_the_batch_rows_equals_the_full_computation(name: str, params: dict):
    users, items, nu, ni = clustered()
    g = TrainGraph.from_interactions(users, items, nu, ni)
    torch.manual_seed(0)
    cls = models.get(name)
    model = cls(nu, ni, cls.Config(dim=8, **params), g)
    batch = next(iter(BPRSampler(users, items, ni, batch_size=64, seed=0).epoch(1)))  # repeats users and items
    assert_loss_matches_reference(model, batch, model.config.reg_weight)


def test_registry_lists_and_resolves_models():
    assert {"pop", "mf", "lightgcn"} <= set(models.names())
    assert models.get("lightgcn") is LightGCN and models.get("mf") is MF and models.get("pop") is Popularity
    with pytest.raises(KeyError, match="unknown model"):
        models.get("nope")


def test_train_graph_is_symmetric_normalised_bipartite():
    users, items = np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 0, 1, 1])  # (2, 1) repeated
    g = TrainGraph.from_interactions(users, items, n_users=4, n_items=2)
    dense = g.norm_adj.to_dense()
    assert g.n_nodes == 6 and torch.equal(dense, dense.T)
    deg = torch.tensor([2.0, 1, 2, 0, 2, 3])  # users 0..3 then items 0..1; the duplicate counts once
    assert torch.equal(g.degree, deg)
    assert dense[0, 4] == pytest.approx(1 / np.sqrt(2 * 2)) and dense[2, 5] == pytest.approx(1 / np.sqrt(2 * 3))
    assert dense[3].abs().sum() == 0  # a user without training interactions is isolated, not NaN
    src, dst = g.edge_index
    assert g.edge_index.shape == (2, 10) and bool(((src < 4) != (dst < 4)).all())  # user <-> item only
    assert torch.allclose(g.edge_weight, dense[src, dst])


def test_lightgcn_matches_torch_geometric_lightgcn():
    from torch_geometric.nn import LightGCN as PyGLightGCN

    users, items, nu, ni = clustered()
    g = TrainGraph.from_interactions(users, items, nu, ni)
    torch.manual_seed(0)
    ours = LightGCN(nu, ni, LightGCNConfig(dim=8, n_layers=3), g)
    ref = PyGLightGCN(nu + ni, 8, 3)
    ref.embedding.weight.data.copy_(ours.embedding.data)
    expected = ref.get_embedding(g.edge_index)
    got = ours.propagate()
    assert torch.allclose(got, expected, atol=1e-6)
    # The transpose-free backward gives the same gradient as autograd through PyG's message passing.
    w = torch.randn_like(got)
    (got * w).sum().backward()
    (expected * w).sum().backward()
    assert torch.allclose(ours.embedding.grad, ref.embedding.weight.grad, atol=1e-6)


def test_popularity_ranks_by_training_counts():
    users, items = np.array([0, 1, 2, 0, 1, 0]), np.array([2, 2, 2, 1, 1, 0])
    g = TrainGraph.from_interactions(users, items, 3, 4)
    pop = Popularity(3, 4, PopConfig(), g)
    u, i = pop.embeddings()
    scores = u @ i.T + pop.item_bias()
    assert torch.equal(scores[1].argsort(descending=True)[:3], torch.tensor([2, 1, 0]))
    assert pop.item_bias()[3] == 0 and not pop.trainable
    assert torch.equal(Popularity(3, 4, PopConfig(transform="count"), g).item_bias(), torch.tensor([1.0, 2, 3, 0]))
    with pytest.raises(NotImplementedError):
        pop.loss(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_loss_decreases_and_ranks_own_cluster_first(name: str):
    users, items, nu, ni = clustered()
    g = TrainGraph.from_interactions(users, items, nu, ni)
    torch.manual_seed(0)
    cls = models.get(name)
    model = cls(nu, ni, cls.Config(dim=16), g)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sampler = BPRSampler(users, items, ni, batch_size=64, seed=0)
    losses = []
    for epoch in range(1, 16):
        total = 0.0
        for u, p, n in sampler.epoch(epoch):
            loss, parts = model.loss(u, p, n)
            assert set(parts) == {"bpr", "reg"} and loss.item() == pytest.approx((parts["bpr"] + parts["reg"]).item())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(u)
        losses.append(total / len(users))
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        ue, ie = model.embeddings()
    assert ue.shape == (nu, 16) and ie.shape == (ni, 16) and model.item_bias() is None
    # Every user's top-5 items come mostly from the user's own cluster.
    top = (ue @ ie.T).topk(5, dim=1).indices
    own = (top % 3 == torch.arange(nu)[:, None] % 3).float().mean().item()
    assert own > 0.9
