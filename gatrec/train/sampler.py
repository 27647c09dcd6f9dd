"""BPR training triples: every training interaction once per epoch, shuffled, with a uniform negative item.

Each epoch's randomness comes from its own generator seeded by (seed, epoch), so an epoch's batches do not
depend on what ran before: a resumed run draws exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

# Vectorised rejection rounds; the few draws still positive after them (users who interacted with most
# items) are drawn exactly from each user's complement instead.
MAX_REJECTION_ROUNDS = 20


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch) into a well-spread 64-bit state; seed*K+epoch would collide.
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class BPRSampler:
    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int, batch_size: int, seed: int = 0):
        self.users = torch.from_numpy(np.array(users, dtype=np.int64))  # a copy: inputs may be read-only
        self.items = torch.from_numpy(np.array(items, dtype=np.int64))
        if len(self.users) != len(self.items) or len(self.users) == 0:
            raise ValueError("need the same, non-zero number of users and items")
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        # Positives as sorted int64 keys user*n_items+item: membership is one vectorised searchsorted.
        self.keys = torch.unique(self.users * n_items + self.items)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        q = users * self.n_items + items
        pos = torch.searchsorted(self.keys, q).clamp_(max=len(self.keys) - 1)
        return self.keys[pos] == q

    def negatives(self, users: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One uniformly drawn item per user that the user has not interacted with in training."""
        neg = torch.randint(self.n_items, (len(users),), generator=gen)
        bad = torch.nonzero(self.is_positive(users, neg)).flatten()
        for _ in range(MAX_REJECTION_ROUNDS):
            if len(bad) == 0:
                break
            neg[bad] = torch.randint(self.n_items, (len(bad),), generator=gen)
            bad = bad[self.is_positive(users[bad], neg[bad])]
        for j in bad.tolist():
            u = int(users[j])
            lo, hi = torch.searchsorted(self.keys, torch.tensor([u * self.n_items, (u + 1) * self.n_items]))
            complement = np.setdiff1d(np.arange(self.n_items), (self.keys[lo:hi] - u * self.n_items).numpy())
            if len(complement):  # else the user has every item: no negative exists, keep the draw
                neg[j] = int(complement[torch.randint(len(complement), (1,), generator=gen)])
        return neg

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Batches of (users, positive items, negative items) for one epoch (CPU int64 tensors)."""
        gen = epoch_generator(self.seed, epoch)
        perm = torch.randperm(len(self.users), generator=gen)
        users, pos = self.users[perm], self.items[perm]
        neg = self.negatives(users, gen)
        for start in range(0, len(users), self.batch_size):
            end = start + self.batch_size
            yield users[start:end], pos[start:end], neg[start:end]
