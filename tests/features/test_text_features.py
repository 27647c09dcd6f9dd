from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from gatrec.features.text import TextConfig, TextEncoder, item_texts, resolve_model_path


def test_item_text_joins_fields_in_order_and_skips_empty_ones() -> None:
    items = pd.DataFrame({"title": ["Red Pen", "", None], "brand": ["Bic", "", ""],
                          "categories": ["Office > Pens", "", ""], "description": ["Writes  well.", "", ""]})
    texts = item_texts(items, ["title", "brand", "categories", "description"], max_chars=1000)
    assert texts == ["Red Pen. Bic. Office > Pens. Writes well.", "", ""]
    assert item_texts(items, ["brand", "title"], 1000)[0] == "Bic. Red Pen"


def test_item_text_truncates_unescapes_and_tolerates_missing_columns() -> None:
    items = pd.DataFrame({"title": ["AT&amp;T phone"], "description": ["x" * 5000]})
    (text,) = item_texts(items, ["title", "brand", "description"], max_chars=100)
    assert text.startswith("AT&T phone. xxx") and len(text) == 100


def test_text_config_is_validated() -> None:
    with pytest.raises(ValidationError):
        TextConfig(fields=["title", "title"])
    with pytest.raises(ValidationError):
        TextConfig(fields=[])
    with pytest.raises(ValidationError):
        TextConfig(colour="red")


def test_bundled_model_resolves_to_a_local_folder() -> None:
    path = resolve_model_path("all-MiniLM-L6-v2")
    assert path is not None and (path / "modules.json").is_file()
    assert resolve_model_path("sentence-transformers/all-MiniLM-L6-v2") == path
    assert resolve_model_path("someone/unknown-model") is None
    # The cache namespace depends on the weights, not on how the model was named.
    assert TextEncoder(TextConfig(model=str(path))).model_id == TextEncoder(TextConfig()).model_id


def test_minilm_embeddings_are_normalised_and_semantic(minilm: TextEncoder) -> None:
    emb, ok = minilm.encode(["red running shoes", "sneakers for jogging", "office printer toner"])
    assert emb.shape == (3, 384) and emb.dtype == np.float32 and ok.all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > sim[0, 2] + 0.3


def test_text_window_truncates_long_texts_only_and_keys_the_cache(minilm: TextEncoder) -> None:
    short, long = "red running shoes", " ".join(f"word{i} toner printer" for i in range(200))
    full = TextEncoder(TextConfig(max_seq_length=None))
    narrow = TextEncoder(TextConfig(max_seq_length=16))
    (a, _), (b, _) = full.encode([short, long]), narrow.encode([short, long])
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)  # fits in 16 pieces: the same vector
    assert float(a[1] @ b[1]) < 0.999  # cut at 16 pieces: a different vector
    assert minilm.model.max_seq_length == 256  # the shared model keeps its own window afterwards
    assert len({full.namespace, narrow.namespace, minilm.namespace}) == 3
