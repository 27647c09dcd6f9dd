"""XSimGCL's contrastive term: the perturbation, InfoNCE against direct formulas, and the term in the
LightGCN and GAT losses (the same for a GAT at uniform attention as for LightGCN with its embeddings)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gatrec.models.base import BatchRows, TrainGraph, triple_loss
from gatrec.models.contrastive import info_nce, perturb
from gatrec.models.gat import GAT, GATConfig
from gatrec.models.lightgcn import LightGCN, LightGCNConfig


def test_perturb_moves_each_row_by_eps_within_its_orthant() -> None:
    torch.manual_seed(0)
    x = torch.randn(50, 8)
    y = perturb(x, 0.3)
    torch.testing.assert_close((y - x).norm(dim=1), torch.full((50,), 0.3))
    assert ((y - x) * x >= 0).all()  # away from zero on every coordinate: the same orthant
    assert perturb(x, 0.0) is x


def test_info_nce_is_the_cross_entropy_of_cosines() -> None:
    torch.manual_seed(1)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    tau = 0.3
    want = 0.0
    for i in range(6):
        sims = [float(torch.cosine_similarity(a[i], b[j], dim=0)) / tau for j in range(6)]
        want += -(sims[i] - math.log(sum(math.exp(s) for s in sims)))
    assert float(info_nce(a, b, tau)) == pytest.approx(want / 6, rel=1e-5)


def _graph() -> TrainGraph:
    r = sp.random(20, 12, density=0.3, format="csr", random_state=np.random.default_rng(2))
    return TrainGraph.from_matrix(r)


def _reference(emb: torch.Tensor, g: TrainGraph, batch: BatchRows, n_layers: int, weight: float, tau: float,
               layer: int, reg: float) -> torch.Tensor:
    layers = [emb]
    for _ in range(n_layers):
        layers.append(g.propagate(layers[-1]))
    final = sum(layers) / len(layers)
    rows = batch.rows
    n_u = int((rows < g.n_users).sum())
    main, _ = triple_loss(final[rows], emb[rows], batch, reg)
    f, v = final[rows], layers[layer][rows]
    return main + weight * (info_nce(f[:n_u], v[:n_u], tau) + info_nce(f[n_u:], v[n_u:], tau))


@pytest.mark.parametrize("model", ["lightgcn", "gat"])
def test_loss_adds_the_contrastive_term(model: str) -> None:
    """Without noise the term is deterministic: loss and embedding gradient equal the direct formula."""
    g = _graph()
    cl = {"cl_weight": 0.5, "cl_noise": 0.0, "cl_temperature": 0.25, "cl_layer": 1}
    if model == "lightgcn":
        m = LightGCN(g.n_users, g.n_items, LightGCNConfig(dim=6, n_layers=2, **cl), g)
    else:  # at its start (uniform attention) the GAT propagates as LightGCN does
        m = GAT(g.n_users, g.n_items, GATConfig(dim=6, n_layers=2, knn_source="none", **cl), g)
    m.train()
    users, pos, neg = torch.tensor([0, 1, 5, 5]), torch.tensor([0, 3, 4, 7]), torch.tensor([2, 9, 1, 11])
    loss, parts = m.loss(users, pos, neg)
    assert "cl" in parts and parts["cl"] > 0
    loss.backward()
    got = m.embedding.grad.clone()
    emb = m.embedding.detach().clone().requires_grad_(True)
    batch = BatchRows.of(g.n_users, users, pos, neg)
    want = _reference(emb, g, batch, 2, 0.5, 0.25, 1, m.config.reg_weight)
    want.backward()
    torch.testing.assert_close(loss.detach(), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, emb.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model", ["lightgcn", "gat"])
def test_noise_only_while_training(model: str) -> None:
    g = _graph()
    cl = {"cl_weight": 0.2, "cl_noise": 0.2}
    cls, cfg = (LightGCN, LightGCNConfig(dim=4, **cl)) if model == "lightgcn" else (
        GAT, GATConfig(dim=4, knn_source="none", **cl))
    m = cls(g.n_users, g.n_items, cfg, g)
    rows = torch.arange(g.n_nodes)
    m.train()
    a, b = m.propagate_rows(rows)[0], m.propagate_rows(rows)[0]
    assert not torch.allclose(a, b)
    m.eval()
    torch.testing.assert_close(m.propagate_rows(rows)[0], m.propagate_rows(rows)[0])


def test_contrastive_term_needs_embedding_keyed_attention() -> None:
    with pytest.raises(ValueError, match="needs attention_keys=embeddings"):
        GATConfig(cl_weight=0.1, attention_keys="interactions")


def test_on_by_default_for_the_gat_only_where_it_applies() -> None:
    assert GATConfig().cl_weight == 0.1 and LightGCNConfig().cl_weight == 0.0  # LightGCN stays the paper's
    assert GATConfig(conv="intents").cl_weight == 0.0
    assert GATConfig(attention_keys="interactions", attention_on="both").cl_weight == 0.0
    with pytest.raises(ValueError, match="needs attention_keys=embeddings"):
        GATConfig(conv="intents", cl_weight=0.2)


def test_at_most_cl_rows_are_contrasted() -> None:
    from gatrec.models.contrastive import ContrastiveFields, contrastive_loss

    torch.manual_seed(3)
    final, view = torch.randn(30, 4), torch.randn(30, 4)
    cfg = ContrastiveFields(cl_weight=1.0, cl_rows=5, cl_temperature=0.5)
    torch.manual_seed(0)
    got = contrastive_loss(final, view, 12, cfg)
    torch.manual_seed(0)
    u, i = torch.randperm(12)[:5], torch.randperm(18)[:5] + 12
    want = info_nce(final[u], view[u], 0.5) + info_nce(final[i], view[i], 0.5)
    torch.testing.assert_close(got, want)
