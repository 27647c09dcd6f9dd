"""The pickle-free model export: round trip and clear errors on damaged folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gatrec.data.dataset import Dataset
from gatrec.errors import DataError
from gatrec.train.export import load_export, write_export


@pytest.fixture
def export_dir(clustered_data: Path, tmp_path: Path) -> Path:
    ds = Dataset.load(clustered_data)
    rng = np.random.default_rng(0)
    return write_export(tmp_path / "model", model="mf", user_emb=rng.normal(size=(120, 4)),
                        item_emb=rng.normal(size=(60, 4)), item_bias=np.arange(60.0), dataset=ds)


def test_round_trip(export_dir: Path, clustered_data: Path):
    exp = load_export(export_dir.parent)  # a run folder resolves to its model/ export
    assert exp.user_emb.dtype == np.float32 and exp.item_bias.tolist() == list(range(60))
    meta = json.loads((export_dir / "model.json").read_text())
    assert {k: meta[k] for k in ("model", "dim", "n_users", "n_items", "scoring", "split_protocol")} == {
        "model": "mf", "dim": 4, "n_users": 120, "n_items": 60, "scoring": "dot", "split_protocol": "leave-one-out"}
    assert meta["data_path"] == str(clustered_data.resolve())
    assert exp.ids("item")[59] == "i59" and exp.ids("user")[0] == "u0"


def test_damaged_export_names_the_file(export_dir: Path):
    meta = json.loads((export_dir / "model.json").read_text())
    (export_dir / "model.json").write_text(json.dumps({**meta, "dim": 8}))
    with pytest.raises(DataError, match=r"user_embeddings\.npy: shape \(120, 4\)"):
        load_export(export_dir)
    (export_dir / "model.json").write_text(json.dumps(meta))
    (export_dir / "item_bias.npy").unlink()
    with pytest.raises(DataError, match=r"item_bias\.npy: missing"):
        load_export(export_dir)
    (empty := export_dir.parent / "empty").mkdir()
    with pytest.raises(DataError, match="no model export"):
        load_export(empty)
