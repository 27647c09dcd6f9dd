"""Real Amazon office items (first 40): the text graph links telephones to telephones."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gatrec.features import load_knn
from gatrec.features.pipeline import EmbedConfig, run_embed
from gatrec.features.text import TextEncoder

REPO = Path(__file__).resolve().parents[2]
OFFICE = REPO.parent / "shared" / "data" / "amazon-office-2014" / "items.jsonl"


@pytest.mark.realdata
def test_office_phones_are_each_others_neighbours(make_dataset: Callable[..., Path], minilm: TextEncoder) -> None:
    if not OFFICE.is_file():
        pytest.skip(f"real data not available at {OFFICE}")
    with OFFICE.open() as fh:
        raw = [json.loads(next(fh)) for _ in range(40)]
    rows = [{**r, "categories": " > ".join(r["categories"])} for r in raw]
    data = make_dataset(rows)
    run_embed(EmbedConfig(data=data, modalities=["text"], knn={"k": 2}))
    edge_index, _ = load_knn(data, "text", 2)
    phones = {i for i, r in enumerate(rows) if "Telephones" in r["categories"]}
    assert phones == {0, 1, 2}
    for p in phones:
        neighbours = set(edge_index[1][edge_index[0] == p].tolist())
        assert phones - {p} <= neighbours, (p, neighbours)
