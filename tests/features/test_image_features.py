"""Images through a randomly initialised ViT-B-32 (no weights download), from files and from a local server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from gatrec.features import load_features, load_mask, read_manifest
from gatrec.features.download import url_cache_path
from gatrec.features.image import ImageConfig, resolve_image_ref
from gatrec.features.pipeline import EmbedConfig, run_embed
from gatrec.features.text import TextEncoder


def _cfg(data: Path, modalities: list[str]) -> EmbedConfig:
    return EmbedConfig(data=data, modalities=modalities, image=ImageConfig(weights="none", batch_size=2),
                       knn={"k": 2})


def test_resolve_image_ref(tmp_path: Path) -> None:
    assert resolve_image_ref("img/a.jpg", tmp_path) == str(tmp_path / "img/a.jpg")
    assert resolve_image_ref("/abs/a.jpg", tmp_path) == "/abs/a.jpg"
    assert resolve_image_ref("https://x.test/a.jpg", tmp_path) == "https://x.test/a.jpg"
    assert resolve_image_ref("", tmp_path) is None and resolve_image_ref(float("nan"), tmp_path) is None


def test_local_images_random_weights_and_missing_ones(
        tmp_path: Path, make_dataset: Callable[..., Path], png: Callable, minilm: TextEncoder) -> None:
    raw = tmp_path / "raw"
    png(raw / "img" / "red.png", (220, 20, 20))
    absolute = png(tmp_path / "elsewhere" / "blue.png", (20, 20, 220))
    (raw / "img" / "corrupt.png").write_bytes(b"not a png")
    rows = [{"title": "red mug", "image": "img/red.png"},        # relative to the raw input folder
            {"title": "blue mug", "image": str(absolute)},       # absolute
            {"title": "green mug", "image": "img/missing.png"},  # file absent
            {"title": "mug", "image": "img/corrupt.png"},        # undecodable
            {"title": "", "image": ""}]                          # nothing at all
    data = make_dataset(rows, source=raw)
    manifest = run_embed(_cfg(data, ["text", "image"]))

    assert manifest["image_weights_random"] is True
    assert read_manifest(data)["arrays"]["image"]["weights_random"] is True
    img, mask = load_features(data, "image"), load_mask(data, "image")
    assert img.shape == (5, 512) and mask.tolist() == [True, True, False, False, False]
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(img[0], img[1])
    np.testing.assert_array_equal(img[2], img[3])  # both hold the fill-in mean
    assert manifest["arrays"]["image"]["unavailable"] == 2
    # Both modalities present → the graph defaults to the fused features; item 4 has neither.
    assert load_mask(data, "fused").tolist() == [True, True, True, True, False]
    assert list(manifest["knn"]) == ["fused_k2"] and load_features(data, "fused").shape == (5, 5)

    again = run_embed(_cfg(data, ["image"]))["arrays"]["image"]
    assert again["model_loaded"] is False and again["encoded"] == 0 and again["from_cache"] == 2


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: dict[str, int]

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path == "/flaky.png" and self.hits[self.path] == 1:
            self.send_error(503)  # a transient failure the downloader must retry
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, int]]]:
    root = tmp_path / "www"
    root.mkdir()
    hits: dict[str, int] = {}
    handler = type("H", (_Handler,), {"hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_url_images_are_downloaded_retried_and_cached(
        server: tuple[str, Path, dict[str, int]], make_dataset: Callable[..., Path], png: Callable) -> None:
    base, root, hits = server
    png(root / "a.png", (10, 200, 10))
    png(root / "flaky.png", (200, 200, 10))
    rows = [{"title": "a", "image": f"{base}/a.png"}, {"title": "b", "image": f"{base}/flaky.png"},
            {"title": "c", "image": f"{base}/gone.png"}, {"title": "d", "image": f"{base}/a.png"}]
    data = make_dataset(rows)
    stats = run_embed(_cfg(data, ["image"]))["arrays"]["image"]
    assert load_mask(data, "image").tolist() == [True, True, False, True]
    assert stats["urls"] == 3 and stats["download_failed"] == 1
    assert hits["/a.png"] == 1 and hits["/flaky.png"] == 2  # deduplicated; retried once
    assert stats["encoded"] == 2  # items 0 and 3 share the same bytes
    assert url_cache_path(data / "features" / "cache" / "images", f"{base}/a.png").is_file()
    run_embed(_cfg(data, ["image"]))
    assert hits["/a.png"] == 1 and hits["/flaky.png"] == 2  # served from the download cache
