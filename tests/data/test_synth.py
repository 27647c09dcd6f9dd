"""`gatrec synth`: sizes, minimums, determinism, files in the plain folder format, and a learnable signal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from PIL import Image
from pydantic import ValidationError

from gatrec.data import synth as synth_mod
from gatrec.data.synth import SynthConfig, synthesize
from gatrec.fsutil import file_digest

SMALL = dict(users=300, items=120, interactions=4000, clusters=6, image_size=16)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _read(folder: Path) -> tuple[pd.DataFrame, list[dict], dict]:
    inter = pd.read_csv(folder / "interactions.csv", dtype={"user_id": str, "item_id": str})
    items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    return inter, items, json.loads((folder / "synth.json").read_text())


@pytest.fixture(scope="module")
def default_data(tmp_path_factory) -> tuple[Path, float]:
    """The default config (what the main job uses), generated once and timed."""
    out = tmp_path_factory.mktemp("synth") / "raw"
    start = time.perf_counter()
    synthesize(SynthConfig(), out)
    return out, time.perf_counter() - start


def test_default_config_is_fast_and_meets_every_count_and_minimum(default_data):
    out, seconds = default_data
    assert seconds < 5, f"default synth took {seconds:.1f}s"
    inter, items, meta = _read(out)
    cfg = SynthConfig()
    assert list(inter.columns) == ["user_id", "item_id", "timestamp", "rating"]
    assert len(inter) == cfg.interactions == meta["counts"]["interactions"]
    assert inter["user_id"].nunique() == cfg.users and inter["item_id"].nunique() == cfg.items == len(items)
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert inter.groupby("user_id").size().min() >= 5 and inter.groupby("item_id").size().min() >= 5
    assert inter["rating"].between(1, 5).all() and inter["rating"].nunique() == 5
    # timestamp: the ordinal 0..n-1 of each user's history, like ../shared/data
    per_user = inter.groupby("user_id")["timestamp"]
    assert (per_user.min() == 0).all() and (per_user.max() + 1 == per_user.size()).all()
    assert (per_user.nunique() == per_user.size()).all()


def test_items_jsonl_and_images(default_data):
    out, _ = default_data
    inter, items, meta = _read(out)
    assert [it["item_id"] for it in items] == [f"i{j}" for j in range(len(items))]
    for it in items:
        assert set(it) == {"item_id", "title", "description", "brand", "categories", "image"}
        assert it["title"] and it["description"] and it["brand"] in it["title"]
        assert isinstance(it["categories"], list) and it["categories"][0] == "Electronics"
        assert it["image"] == f"images/{it['item_id']}.png"
    for it in items[:: max(1, len(items) // 50)] + items[-1:]:
        with Image.open(out / it["image"]) as img:
            img.verify()
        with Image.open(out / it["image"]) as img:
            assert img.format == "PNG" and img.size == (32, 32) and img.mode == "RGB"
    assert len(list((out / "images").iterdir())) == len(items)
    assert len(meta["item_cluster"]) == len(items) and len(meta["user_top_cluster"]) == SynthConfig().users


def test_text_and_images_carry_the_cluster(default_data):
    out, _ = default_data
    _, items, meta = _read(out)
    cluster = np.array(meta["item_cluster"])
    docs = [Counter(re.findall(r"[a-z0-9-]+", f"{it['title']} {it['description']}".lower())) for it in items]
    vocab = {w: k for k, w in enumerate(sorted(set().union(*docs)))}
    bow = np.zeros((len(docs), len(vocab)))
    for d, doc in enumerate(docs):
        for w, n in doc.items():
            bow[d, vocab[w]] = n
    bow /= np.linalg.norm(bow, axis=1, keepdims=True)
    sim = bow @ bow.T
    same = cluster[:, None] == cluster[None, :]
    np.fill_diagonal(same, False)
    off = ~same & ~np.eye(len(items), dtype=bool)
    assert sim[same].mean() > 1.5 * sim[off].mean(), (sim[same].mean(), sim[off].mean())
    # nearest neighbour by text is in the same cluster for most items
    np.fill_diagonal(sim, -1)
    assert (cluster[sim.argmax(1)] == cluster).mean() > 0.9

    # images: nearest cluster centroid (mean colour + colour spread) recovers the cluster
    feats = []
    for it in items:
        px = np.asarray(Image.open(out / it["image"]), dtype=np.float64).reshape(-1, 3) / 255
        feats.append(np.concatenate([px.mean(0), px.std(0)]))
    feats = np.array(feats)
    centroids = np.array([feats[cluster == c].mean(0) for c in range(cluster.max() + 1)])
    pred = np.linalg.norm(feats[:, None] - centroids[None], axis=2).argmin(1)
    assert (pred == cluster).mean() > 0.8


def test_collaborative_signal_beats_popularity(default_data):
    """Leave the last interaction out: item-item cosine kNN must clearly beat most-popular."""
    out, _ = default_data
    inter, _, _ = _read(out)
    u = inter["user_id"].str[1:].astype(int).to_numpy()
    i = inter["item_id"].str[1:].astype(int).to_numpy()
    last = inter.groupby("user_id")["timestamp"].transform("max").to_numpy() == inter["timestamp"].to_numpy()
    n_u, n_i = u.max() + 1, i.max() + 1
    train = sp.csr_matrix((np.ones((~last).sum()), (u[~last], i[~last])), shape=(n_u, n_i))
    test_u, test_i = u[last], i[last]
    pop = np.asarray(train.sum(0)).ravel()

    def hit_at_10(scores: np.ndarray) -> float:
        scores = scores.copy()
        scores[train[test_u].nonzero()] = -np.inf
        top = np.argpartition(-scores, 10, axis=1)[:, :10]
        return float((top == test_i[:, None]).any(1).mean())

    norm = sp.csr_matrix(train.multiply(1 / np.sqrt(np.maximum(pop, 1))))
    sim = (norm.T @ norm).toarray()
    np.fill_diagonal(sim, 0)
    pop_hit = hit_at_10(np.tile(pop, (len(test_u), 1)))
    knn_hit = hit_at_10(np.asarray(train[test_u] @ sim))
    assert knn_hit > 1.5 * pop_hit, (knn_hit, pop_hit)


def test_taste_drift_changes_clusters_over_each_history(tmp_path):
    def early_late_overlap(drift: float) -> float:
        out = synthesize(SynthConfig(**SMALL, images=False, taste_drift=drift, seed=5), tmp_path / str(drift))
        inter, _, meta = _read(out)
        inter["cluster"] = np.array(meta["item_cluster"])[inter["item_id"].str[1:].astype(int)]
        pos = inter["timestamp"] / inter.groupby("user_id")["timestamp"].transform("max")
        early = inter[pos <= 0.3].groupby("user_id")["cluster"].agg(set)
        late = inter[pos >= 0.7].groupby("user_id")["cluster"].agg(set)
        both = early.index.intersection(late.index)
        return float(np.mean([len(early[x] & late[x]) / len(late[x]) for x in both]))

    assert early_late_overlap(1.0) < early_late_overlap(0.0) - 0.1


def test_same_seed_same_bytes_and_workers_do_not_matter(tmp_path):
    # 1100 items at 8 px span two image chunks, so workers=2 really runs the process pool
    cfg = SynthConfig(users=300, items=1100, interactions=6000, clusters=8, image_size=8, seed=7)
    a = synthesize(cfg, tmp_path / "a", workers=1)
    b = synthesize(cfg, tmp_path / "b", workers=2)
    assert _digests(a) == _digests(b)
    c = synthesize(cfg.model_copy(update={"seed": 8}), tmp_path / "c", workers=1)
    assert file_digest(c / "interactions.csv") != file_digest(a / "interactions.csv")


def test_interactions_near_the_minimums_still_keep_every_item_and_user(tmp_path):
    # 5·items = 5·users = interactions: the item minimums use up every slot
    cfg = SynthConfig(users=200, items=200, interactions=1000, clusters=4, images=False, seed=1)
    inter, items, meta = _read(synthesize(cfg, tmp_path / "tight"))
    assert inter.groupby("user_id").size().min() >= 5 and inter.groupby("item_id").size().min() >= 5
    assert inter["user_id"].nunique() == 200 and inter["item_id"].nunique() == 200
    assert not inter.duplicated(["user_id", "item_id"]).any()
    assert len(inter) == meta["counts"]["interactions"] >= 1000
    assert "image" not in items[0] and not (tmp_path / "tight" / "images").exists()


@pytest.mark.parametrize("bad", [dict(interactions=100), dict(interactions=10**7), dict(clusters=1000),
                                 dict(users=3), dict(unknown=1)])
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValidationError):
        SynthConfig(**{**SMALL, **bad})


def test_failure_leaves_the_previous_output_untouched(tmp_path, monkeypatch):
    out = synthesize(SynthConfig(**SMALL, images=False), tmp_path / "raw")
    before = _digests(out)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_mod, "_write_images", boom)
    with pytest.raises(RuntimeError):
        synthesize(SynthConfig(**SMALL, seed=9), out)
    assert _digests(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def _gatrec(*args: str) -> subprocess.CompletedProcess:
    # a subprocess: the CLI configures logging for the whole process, which must not leak into other tests
    return subprocess.run([sys.executable, "-m", "gatrec", *args], capture_output=True, text=True, timeout=120)


def test_cli(tmp_path):
    proc = _gatrec("synth", "--out", str(tmp_path / "raw"), "--users", "300", "--items", "120",
                   "--interactions", "4000", "--clusters", "6", "--no-images", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    inter, _, meta = _read(tmp_path / "raw")
    assert len(inter) == 4000 and meta["config"]["seed"] == 2 and meta["config"]["images"] is False
    proc = _gatrec("synth", "--out", str(tmp_path / "bad"), "--users", "300", "--interactions", "10")
    assert proc.returncode == 2 and "interactions" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()


def test_prepare_accepts_the_output_and_5core_keeps_everything(default_data, tmp_path):
    from gatrec.data.dataset import Dataset
    from gatrec.data.prepare import prepare_dataset

    out, _ = default_data
    ds = Dataset.load(prepare_dataset(out, tmp_path / "prepared", split="user-temporal"))
    cfg = SynthConfig()
    assert (ds.n_users, ds.n_items) == (cfg.users, cfg.items)
    assert sum(ds.manifest["counts"].values()) == cfg.interactions
    assert {"title", "description", "brand", "categories", "image"} <= set(ds.items.columns)
