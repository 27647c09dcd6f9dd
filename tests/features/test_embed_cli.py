"""`gatrec embed` end to end on a tiny dataset, through the real CLI entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gatrec.cli import main
from gatrec.features import load_features, load_knn
from gatrec.features.text import TextEncoder


def test_embed_cli_end_to_end(tmp_path: Path, make_dataset: Callable[..., Path], png: Callable,
                              minilm: TextEncoder, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    rows = [{"title": "stapler", "image": str(png(raw / "a.png", (200, 0, 0)))},
            {"title": "staples", "image": str(png(raw / "b.png", (0, 200, 0)))},
            {"title": "desk lamp"}, {"title": "printer toner", "brand": "HP"}]
    data = make_dataset(rows, source=raw)
    out = tmp_path / "feats"
    main(["embed", "--data", str(data), "--out", str(out), "--image-weights", "none", "--knn-k", "2",
          "--knn-features", "text", "--image-batch-size", "16"])  # returns normally on success
    printed = capsys.readouterr().out
    assert "text 384-d (4/4 present)" in printed and "image 512-d (2/4 present)" in printed
    manifest = json.loads((out / "features.json").read_text())
    assert manifest["image_weights_random"] is True and manifest["n_items"] == 4
    assert set(manifest["arrays"]) == {"text", "image", "fused"} and list(manifest["knn"]) == ["text_k2"]
    assert manifest["data_digest"] == "test-digest" and manifest["arrays"]["text"]["items_per_s"] > 0
    for name in ("text.npy", "image.npy", "fused.npy", "text_mask.npy", "image_mask.npy", "knn_text_k2.npz"):
        assert (out / name).is_file(), name
    assert [p.name for p in out.glob(".*")] == [".gatrec-output.json"]  # the output marker; no temp files
    assert load_features(data, "image", features_dir=out).shape == (4, 512)
    edge_index, _ = load_knn(data, "text", 2, features_dir=out)
    assert edge_index.shape[1] >= 8


def test_embed_cli_reports_bad_input(tmp_path: Path, make_dataset: Callable[..., Path],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["embed", "--data", str(tmp_path)])
    assert done.value.code == 2 and "no manifest.json" in capsys.readouterr().err
    data = make_dataset([{"title": "x"}])
    with pytest.raises(SystemExit) as done:
        main(["embed", "--data", str(data), "--modalities", "text,audio"])
    assert done.value.code == 2 and "modalities" in capsys.readouterr().err


def test_embed_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    main(["embed", "--help"])
    assert "gatrec embed --data data/prepared" in capsys.readouterr().out
