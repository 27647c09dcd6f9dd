"""Popularity-baseline metrics, the reference a first champion must beat.

Computed at registration from the prepared dataset the run was trained on, by the one ranking
implementation (``gatrec.evaluate.ranking``): every user gets the items ranked by training popularity,
known items dropped (train; at test also valid when the run masked valid items at test), popularity ties
broken by the lower item index. Only the metrics asked for (``<name>@<k>`` of ``ranking.METRICS``) are
returned.
"""

from __future__ import annotations

import torch

from gatrec.data.dataset import Dataset
from gatrec.evaluate.ranking import evaluate_embeddings, parse_metric


def popularity_metrics(data: Dataset, metrics: list[str], *, mask_valid: bool = False) -> dict[str, dict[str, float]]:
    """``{"valid": {...}, "test": {...}}`` for the popularity ranking on ``data``, under the protocol of the
    run it is compared with (``mask_valid``: its ``mask_valid_at_test``)."""
    wanted = [m for m in metrics if parse_metric(m)]
    if not wanted:
        return {"valid": {}, "test": {}}
    ks = sorted({parse_metric(m)[1] for m in wanted})  # type: ignore[index]
    users, items = torch.zeros(data.n_users, 1), torch.zeros(data.n_items, 1)
    pop = torch.from_numpy(data.item_popularity)
    train, valid = data.csr("train"), data.csr("valid")
    out = {}
    for split, heldout, exclude in (("valid", valid, None), ("test", data.csr("test"), valid if mask_valid else None)):
        got = evaluate_embeddings(users, items, train, heldout, item_bias=pop, exclude=exclude, ks=ks,
                                  stable_ties=True)
        out[split] = {m: got[m] for m in wanted}
    return out
