from __future__ import annotations

import numpy as np
import torch

from gatrec.train.sampler import BPRSampler


def _data(seed: int = 0, n_users: int = 50, n_items: int = 20):
    rng = np.random.default_rng(seed)
    pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 600), rng.integers(0, n_items, 600),
                                               strict=True)}
    arr = np.array(sorted(pairs))
    return arr[:, 0], arr[:, 1], n_items


def test_one_pass_over_all_interactions_with_true_negatives():
    users, items, n_items = _data()
    s = BPRSampler(users, items, n_items, batch_size=64, seed=3)
    batches = list(s.epoch(1))
    assert len(batches) == len(s) == -(-len(users) // 64)
    u = torch.cat([b[0] for b in batches])
    p = torch.cat([b[1] for b in batches])
    n = torch.cat([b[2] for b in batches])
    # Every interaction exactly once (as a multiset of pairs), shuffled.
    assert sorted(zip(u.tolist(), p.tolist(), strict=True)) == sorted(zip(users.tolist(), items.tolist(), strict=True))
    assert not torch.equal(u, torch.from_numpy(users))
    positives = set(zip(users.tolist(), items.tolist(), strict=True))
    assert not any((a, b) in positives for a, b in zip(u.tolist(), n.tolist(), strict=True))
    assert n.min() >= 0 and n.max() < n_items and len(set(n.tolist())) > n_items // 2


def test_epochs_are_seeded_and_independent_of_history():
    users, items, n_items = _data()
    a = BPRSampler(users, items, n_items, batch_size=100, seed=0)
    b = BPRSampler(users, items, n_items, batch_size=100, seed=0)
    list(a.epoch(1))  # drawing epoch 1 first must not change epoch 2
    e2a, e2b = list(a.epoch(2)), list(b.epoch(2))
    assert all(torch.equal(x, y) for ba, bb in zip(e2a, e2b, strict=True) for x, y in zip(ba, bb, strict=True))
    e1 = list(b.epoch(1))
    assert not torch.equal(e1[0][0], e2b[0][0])
    other = list(BPRSampler(users, items, n_items, batch_size=100, seed=1).epoch(2))
    assert not torch.equal(other[0][0], e2b[0][0])


def test_user_with_almost_every_item_still_gets_a_negative():
    n_items = 30
    users = np.zeros(n_items - 1, dtype=np.int64)  # user 0 has every item but the last
    items = np.arange(n_items - 1)
    s = BPRSampler(users, items, n_items, batch_size=8, seed=0)
    neg = torch.cat([b[2] for b in s.epoch(1)])
    assert bool((neg == n_items - 1).all())
