"""The content-keyed embedding cache, and that `run_embed` reuses it (no model work on a rerun)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gatrec.features import load_features, load_knn, load_mask
from gatrec.features.cache import EmbeddingCache
from gatrec.features.pipeline import EmbedConfig, run_embed
from gatrec.features.text import TextEncoder

ROWS = [
    {"item_id": "a", "title": "Red ballpoint pen", "brand": "Bic", "categories": "Office > Pens"},
    {"item_id": "b", "title": "Blue gel pen", "brand": "Pilot", "categories": "Office > Pens"},
    {"item_id": "c", "title": "Laser printer toner cartridge", "categories": "Office > Printers"},
    {"item_id": "d", "title": "Stapler", "description": "Heavy duty desktop stapler, 20 sheets"},
    {"item_id": "e"},  # no text at all
]


def test_cache_round_trip_and_partial_reuse(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "ns")
    cache.add(["k1", "k2", "k1"], np.array([[1, 0], [0, 1], [9, 9]], dtype=np.float32))
    again = EmbeddingCache(tmp_path, "ns")  # persisted
    hit, vecs = again.lookup(["k2", "zz", "k1"])
    assert hit.tolist() == [True, False, True]
    np.testing.assert_array_equal(vecs, [[0, 1], [1, 0]])  # the first vector for a key wins
    again.add(["k3"], np.array([[2, 2]], dtype=np.float32))
    assert len(EmbeddingCache(tmp_path, "ns")) == 3
    assert len(EmbeddingCache(tmp_path, "other-model")) == 0  # namespaces never mix
    with pytest.raises(ValueError, match="dim"):
        again.add(["k4"], np.zeros((1, 3), dtype=np.float32))


def test_damaged_cache_is_ignored_not_fatal(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "ns")
    cache.add(["k1"], np.ones((1, 2), dtype=np.float32))
    (cache.dir / "keys.json").write_text('["k1", "k2"]')  # out of step with vectors.npy
    assert len(EmbeddingCache(tmp_path, "ns")) == 0


def _config(data: Path) -> EmbedConfig:
    return EmbedConfig(data=data, modalities=["text"], knn={"k": 2})


def test_rerun_does_no_model_work_and_changed_item_alone_is_reencoded(
        make_dataset: Callable[..., Path], minilm: TextEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_dataset(ROWS)
    first = run_embed(_config(data))["arrays"]["text"]
    assert (first["encoded"], first["from_cache"], first["n_present"]) == (4, 0, 4)
    text1 = load_features(data, "text")

    calls: list[int] = []
    real_encode = TextEncoder.encode
    monkeypatch.setattr(TextEncoder, "encode", lambda self, xs: calls.append(len(xs)) or real_encode(self, xs))
    monkeypatch.setattr(TextEncoder, "load", lambda self: calls.append(-1) or None)
    second = run_embed(_config(data))["arrays"]["text"]
    assert calls == [] and second["model_loaded"] is False
    assert (second["encoded"], second["from_cache"]) == (0, 4)
    np.testing.assert_array_equal(load_features(data, "text"), text1)

    items = pd.read_parquet(data / "items.parquet")
    items.loc[2, "title"] = "Inkjet printer ink"
    items.to_parquet(data / "items.parquet", index=False)
    monkeypatch.setattr(TextEncoder, "load", lambda self: None)
    third = run_embed(_config(data))["arrays"]["text"]
    assert calls == [1] and (third["encoded"], third["from_cache"]) == (1, 3)
    text3 = load_features(data, "text")
    present = load_mask(data, "text")
    same = [0, 1, 3]
    np.testing.assert_array_equal(text3[same], text1[same])
    assert not np.allclose(text3[2], text1[2]) and present[2]


def test_item_without_text_is_masked_mean_filled_and_left_out_of_the_graph(
        make_dataset: Callable[..., Path], minilm: TextEncoder) -> None:
    data = make_dataset(ROWS)
    manifest = run_embed(_config(data))
    x, mask = load_features(data, "text"), load_mask(data, "text")
    assert x.shape == (5, 384) and x.dtype == np.float32
    assert mask.tolist() == [True, True, True, True, False]
    mean = x[:4].mean(axis=0)
    np.testing.assert_allclose(x[4], mean / np.linalg.norm(mean), atol=1e-6)
    assert manifest["arrays"]["text"]["n_missing"] == 1
    edge_index, _ = load_knn(data, "text", 2)
    assert 4 not in edge_index.unique().tolist()
    assert manifest["knn"]["text_k2"]["items_without_edges"] == 1
    on_disk = json.loads((data / "features" / "features.json").read_text())
    assert on_disk["arrays"]["text"]["sha256"] == manifest["arrays"]["text"]["sha256"]
    assert on_disk["image_weights_random"] is False and "image" not in on_disk["arrays"]  # no image column


def test_failed_inputs_are_remembered(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "ns")
    cache.add([], np.zeros((0, 2), dtype=np.float32), failed=["bad"])
    reopened = EmbeddingCache(tmp_path, "ns")
    assert reopened.failed == {"bad"} and len(reopened) == 0
    reopened.add(["good"], np.ones((1, 2), dtype=np.float32))
    assert EmbeddingCache(tmp_path, "ns").lookup(["good", "bad"])[0].tolist() == [True, False]
