"""The popularity model and the registry's popularity baseline are one ranking: same metrics, same ties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gatrec.data.dataset import Dataset
from gatrec.registry.baseline import popularity_metrics
from gatrec.train.config import TrainConfig
from gatrec.train.loop import train
from tests.kit import write_prepared


@pytest.mark.parametrize("mask_valid", [False, True])
def test_pop_scores_what_the_baseline_scores_although_counts_tie(tmp_path: Path, mask_valid: bool) -> None:
    data = write_prepared(tmp_path / "data", n_users=100, n_items=40, per_user=6, seed=3)
    counts = Dataset.load(data).item_popularity
    assert len(np.unique(counts)) < len(counts)  # ties: where an unspecified tie order changes metrics
    got = train(data, TrainConfig(model="pop", ks=[10, 20], mask_valid_at_test=mask_valid), tmp_path / "pop")
    names = [f"{m}@{k}" for m in ("ndcg", "recall") for k in (10, 20)]
    baseline = popularity_metrics(Dataset.load(data), names, mask_valid=mask_valid)
    for split in ("valid", "test"):
        assert {m: got[split][m] for m in names} == baseline[split], split
