"""The contract every recommender passes (LensKit's ScorerTests): a model's own check is a two-line class.

Each class trains its model for a few epochs on the kit's tiny clustered data through the real training
loop, then checks the export's scores, determinism under a seed, and a save/load round trip of its state.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from gatrec import models
from gatrec.data.dataset import Dataset
from gatrec.models.base import TrainGraph
from gatrec.train.config import TrainConfig
from gatrec.train.export import RunFolder
from gatrec.train.inputs import DatasetInputs
from gatrec.train.loop import train
from tests.kit import write_features, write_prepared


class RecommenderContract:
    model: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    features: ClassVar[bool] = False  # the data needs a feature folder (`gatrec embed`'s layout)

    @pytest.fixture(scope="class")
    def data(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        d = write_prepared(tmp_path_factory.mktemp(f"contract-{self.model}") / "data", n_users=48, n_items=24,
                           per_user=8)
        if self.features:
            write_features(d, k=4)
        return d

    def config(self, seed: int = 0) -> TrainConfig:
        return TrainConfig(model=self.model, epochs=2, batch_size=64, seed=seed, device="cpu",
                           model_params=self.params)

    @pytest.fixture(scope="class")
    def run(self, data: Path, tmp_path_factory: pytest.TempPathFactory) -> RunFolder:
        out = tmp_path_factory.mktemp(f"run-{self.model}") / "run"
        train(data, self.config(), out)
        return RunFolder(out)

    def test_fits_and_reports(self, run: RunFolder):
        metrics = run.metrics()
        assert metrics["model"] == self.model and 0 <= metrics["best_epoch"] <= 2
        for split in ("valid", "test"):
            assert 0.0 <= metrics[split]["ndcg@20"] <= 1.0 and metrics[split]["n_users"] > 0

    def test_scores_have_the_right_shape(self, run: RunFolder, data: Path):
        ds = Dataset.load(data)
        export = run.export()
        scores = export.user_emb @ export.item_emb.T
        if export.item_bias is not None:
            scores = scores + export.item_bias
        assert scores.shape == (ds.n_users, ds.n_items) and np.isfinite(scores).all()
        assert export.user_emb.dtype == np.float32 and export.meta["model"] == self.model

    def test_same_seed_same_scores(self, run: RunFolder, data: Path, tmp_path: Path):
        again = RunFolder(tmp_path / "again")
        train(data, self.config(), again.path)
        first, second = run.export(), again.export()
        np.testing.assert_array_equal(first.user_emb, second.user_emb)
        np.testing.assert_array_equal(first.item_emb, second.item_emb)

    def test_state_round_trip(self, data: Path):
        ds = Dataset.load(data)
        graph = TrainGraph.from_dataset(ds)
        hparams = self.config().model_hparams()
        cls = models.get(self.model)
        torch.manual_seed(0)
        model = cls.build(ds, hparams, graph, DatasetInputs(ds))
        if model.trainable:  # move away from the initial state first
            opt = torch.optim.Adam(model.parameters(), lr=0.05)
            users = torch.arange(8)
            loss, _ = model.loss(users, torch.arange(8) % ds.n_items, (torch.arange(8) + 5) % ds.n_items)
            loss.backward()
            opt.step()
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        torch.manual_seed(1)  # a different initialisation, then the saved state
        fresh = cls.build(ds, hparams, graph, DatasetInputs(ds))
        fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
        model.eval()
        fresh.eval()
        with torch.no_grad():
            for a, b in zip(model.embeddings(), fresh.embeddings(), strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
            bias = model.item_bias()
            if bias is not None:
                torch.testing.assert_close(bias, fresh.item_bias(), rtol=0, atol=0)


class TestPop(RecommenderContract):
    model = "pop"


class TestMF(RecommenderContract):
    model = "mf"


class TestLightGCN(RecommenderContract):
    model = "lightgcn"
    params = {"n_layers": 2}


class TestGAT(RecommenderContract):
    model = "gat"
    params = {"dim": 16}


class TestGATWithFeatures(RecommenderContract):
    model = "gat"
    params = {"dim": 16, "features": "text", "knn_k": 3}  # k=3: the graph embed did not build (in memory)
    features = True


class TestGATWithLayerAttention(RecommenderContract):
    model = "gat"
    params = {"dim": 16, "features": "text", "knn_k": 3, "layer_combine": "attention"}
    features = True


def test_every_registered_model_has_a_contract_class():
    covered = {cls.model for cls in RecommenderContract.__subclasses__()}
    assert set(models.names()) <= covered, f"add a RecommenderContract class for {set(models.names()) - covered}"
