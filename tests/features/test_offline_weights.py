"""`gatrec embed` with a pretrained image-weights tag and no way to download it fails in seconds, before
any embedding work, naming what to pass instead (the hub's address is a closed port on 127.0.0.1)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from gatrec.errors import GatrecError
from gatrec.features.download import check_pretrained_weights, hub_unreachable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    return cache


def test_embed_fails_fast_offline(tmp_path, offline):
    env = {**os.environ, "GATREC_NO_MLFLOW": "1"}
    raw, data = tmp_path / "raw", tmp_path / "data"
    for args in (["synth", "--out", str(raw), "--users", "60", "--items", "30", "--interactions", "400",
                  "--clusters", "2", "--image-size", "8"],
                 ["prepare", "--input", str(raw), "--out", str(data)]):
        proc = subprocess.run([sys.executable, "-m", "gatrec", *args], capture_output=True, text=True, env=env,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "gatrec", "embed", "--data", str(data)], capture_output=True,
                          text=True, env=env, timeout=300)
    seconds = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "--image-weights openai" in errors[0] and "unreachable" in errors[0]
    assert "--image-weights none" in errors[0]
    assert "modality_embedded" not in proc.stderr  # failed before the text was embedded
    assert seconds < 45, seconds  # was 60-86 s of retries (plus the text embedding before them)


def test_cached_weights_load_offline_and_local_choices_pass(offline, tmp_path, monkeypatch):
    assert hub_unreachable(1.0) is not None
    with pytest.raises(GatrecError, match="unreachable"):
        check_pretrained_weights("openai", model="ViT-B-32", timeout=1.0)
    check_pretrained_weights("none")
    ckpt = tmp_path / "weights.pt"
    ckpt.write_bytes(b"")
    check_pretrained_weights(str(ckpt))
    (offline / "models--timm--vit_base_patch32_clip_224.openai").mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    check_pretrained_weights("openai", timeout=1.0)  # in the cache: passes, and the hub goes offline mode
    assert os.environ["HF_HUB_OFFLINE"] == "1"
