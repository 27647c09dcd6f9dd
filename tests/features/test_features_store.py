"""Loader API used by training: staleness checks, clear errors, and on-demand graphs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from gatrec.errors import DataError, GatrecError
from gatrec.features import load_features, load_knn
from gatrec.features.pipeline import EmbedConfig, run_embed
from gatrec.features.text import TextEncoder

ROWS = [{"title": t} for t in ("stapler", "staples", "paper clips", "printer toner", "ink cartridge", "desk lamp")]


@pytest.fixture
def embedded(make_dataset: Callable[..., Path], minilm: TextEncoder) -> Path:
    data = make_dataset(ROWS)
    run_embed(EmbedConfig(data=data, modalities=["text", "image"], knn={"k": 2}))  # no image column → text only
    return data


def test_loaders_return_documented_types(embedded: Path) -> None:
    assert load_features(embedded, "text").shape == (6, 384)
    assert load_features(embedded, "fused").shape == (6, 6)
    edge_index, weight = load_knn(embedded, "text", 2)  # auto picked text (one modality)
    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2 and weight.shape == edge_index.shape[1:]


def test_missing_things_raise_clear_errors(embedded: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no 'image' features"):
        load_features(embedded, "image")
    with pytest.raises(DataError, match="--knn-features fused --knn-k 3"):
        load_knn(embedded, "fused", 3)
    with pytest.raises(DataError, match="run `gatrec embed"):
        load_features(tmp_path, "text")
    with pytest.raises(GatrecError, match="unknown feature kind"):
        load_features(embedded, "audio")  # type: ignore[arg-type]


def test_graph_built_on_demand_in_memory_leaves_the_folder_alone(embedded: Path) -> None:
    folder = embedded / "features"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    edge_index, weight = load_knn(embedded, "fused", 3, build_missing=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before  # nothing written
    again, w2 = load_knn(embedded, "fused", 3, build_missing=True)
    assert torch.equal(edge_index, again) and torch.equal(weight, w2)
    assert edge_index.shape[1] > 0 and set(edge_index.unique().tolist()) <= set(range(6))


def test_stale_features_are_refused(embedded: Path) -> None:
    items = pd.read_parquet(embedded / "items.parquet")
    items.loc[0, "title"] = "changed"
    items.to_parquet(embedded / "items.parquet", index=False)
    with pytest.raises(DataError, match="stale"):
        load_features(embedded, "text")


def test_bad_items_file_names_file_row_and_field(make_dataset: Callable[..., Path]) -> None:
    data = make_dataset(ROWS)
    items = pd.read_parquet(data / "items.parquet")
    items.loc[3, "item"] = 42
    items.to_parquet(data / "items.parquet", index=False)
    with pytest.raises(DataError) as err:
        run_embed(EmbedConfig(data=data, modalities=["text"]))
    assert err.value.field == "item" and err.value.line == 3 and err.value.file.endswith("items.parquet")


def test_a_loaded_dataset_is_checked_without_reading_its_folder_again(tmp_path: Path) -> None:
    from gatrec.data.dataset import Dataset
    from tests.kit import write_features, write_prepared

    data = write_prepared(tmp_path / "data", n_users=30, n_items=12, per_user=6)
    x = write_features(data, k=3)
    ds = Dataset.load(data)
    assert (load_features(ds, "text") == x).all()
    assert load_knn(ds, "text", 2, build_missing=True)[0].shape[0] == 2
    items = pd.read_parquet(data / "items.parquet")
    items.loc[0, "title"] = "changed"
    items.to_parquet(data / "items.parquet", index=False)
    with pytest.raises(DataError, match="stale"):
        load_features(Dataset.load(data), "text")


def test_embed_refuses_items_that_differ_from_the_prepared_manifest(tmp_path: Path) -> None:
    import json

    from gatrec.data.dataset import record_files
    from tests.kit import write_prepared

    data = write_prepared(tmp_path / "data", n_users=30, n_items=12, per_user=6)
    manifest = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps({**manifest, "files": record_files(data)}))
    items = pd.read_parquet(data / "items.parquet")
    items.loc[0, "title"] = "edited after prepare"
    items.to_parquet(data / "items.parquet", index=False)
    with pytest.raises(DataError, match=r"items\.parquet: does not match manifest\.json") as err:
        run_embed(EmbedConfig(data=data, modalities=["text"]))
    assert err.value.file == str(data / "items.parquet")
    assert not (data / "features").exists()


def test_the_features_room_reads_the_prepared_folder_through_dataset_only() -> None:
    # The prepared folder has one reader (gatrec/data/dataset.py); the features modules must not parse its
    # files by hand (issue 16, point 2).
    import gatrec.features

    root = Path(gatrec.features.__file__).parent
    for src in sorted(root.glob("*.py")):
        text = src.read_text()
        for needle in ('"manifest.json"', "read_parquet(", '/ "items.parquet"'):
            assert needle not in text, f"{src.name} reads the prepared folder by hand ({needle})"
