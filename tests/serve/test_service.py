"""The served champion over HTTP (real ``bentoml serve``): same rankings as the pyfunc, 4xx on bad input."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from gatrec.registry.package import SIGNATURE
from gatrec.serve.schema import mlflow_signature


def post(url: str, body: object, **kwargs) -> requests.Response:
    return requests.post(url, data=json.dumps(body) if not isinstance(body, bytes) else body,
                         headers={"content-type": "application/json"}, timeout=10, **kwargs)


def pairs(response: dict) -> list[tuple[str, float]]:
    return [(i["item_id"], i["score"]) for i in response["items"]]


def train_items(run: Path) -> dict[int, set[int]]:
    data = Path(json.loads((run / "metrics.json").read_text())["data"]["path"])
    train = pd.read_parquet(data / "train.parquet")
    return {int(u): set(g["item"].tolist()) for u, g in train.groupby("user")}


QUERIES = ([{"user_id": f"U{u:03d}", "k": k} for u, k in zip(range(0, 80, 7), [1, 5, 10, 20, 50, 120] * 2,
                                                            strict=False)]
           + [{"user_id": "U004", "history": ["I001", "I002"], "k": 8},
              {"user_id": "nobody", "history": ["I003", "I010", "I042", "not-an-item"], "k": 6},
              {"history": ["I007"], "k": 3, "exclude": ["I000", "I001"]},
              {"user_id": "nobody", "k": 7}, {"k": 4, "exclude": ["I000"]},
              {"user_id": "U010", "k": 10, "exclude_seen": False},
              {"history": ["I005", "I006"], "k": 5, "exclude_seen": False}])


def test_ready_and_model_info(server: str, champion) -> None:
    assert requests.get(f"{server}/readyz", timeout=5).status_code == 200
    assert requests.get(f"{server}/livez", timeout=5).status_code == 200
    info = requests.get(f"{server}/model", timeout=5).json()
    _, mv = champion.pyfunc()
    assert info["registry_version"] == str(mv.version) and info["run_id"] == mv.run_id
    assert info["data_digest"] == "d1" and info["split_protocol"] == "user-temporal"
    assert (info["n_users"], info["n_items"], info["dim"], info["index"]) == (80, 120, 8, "exact")
    assert info["metrics"]["valid.ndcg_at_20"] == 0.6


def test_recommend_equals_the_pyfunc(server: str, champion) -> None:
    model, mv = champion.pyfunc()
    frame = pd.DataFrame([{"user_id": q.get("user_id"), "history": q.get("history", []), "k": q["k"],
                           "exclude_seen": q.get("exclude_seen", True), "exclude": q.get("exclude", [])}
                          for q in QUERIES])
    expected = model.predict(frame)
    for q, (_, row) in zip(QUERIES, expected.iterrows(), strict=True):
        got = post(f"{server}/recommend", q)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["source"] == row["source"] and body["model_version"] == str(mv.version)
        assert pairs(body) == list(zip(row["item_ids"], row["scores"], strict=True)), q
    assert {post(f"{server}/recommend", q).json()["source"] for q in QUERIES} == {"user", "history", "popularity"}


def test_exclude_seen_and_exclude(server: str, champion) -> None:
    seen = train_items(champion.run)[10]
    ids = lambda body: [int(i["item_id"][1:]) for i in body["items"]]  # noqa: E731 - "I042" -> 42
    kept = post(f"{server}/recommend", {"user_id": "U010", "k": 120}).json()
    assert not seen & set(ids(kept)) and len(ids(kept)) == 120 - len(seen)
    everything = post(f"{server}/recommend", {"user_id": "U010", "k": 120, "exclude_seen": False}).json()
    assert seen <= set(ids(everything)) and len(ids(everything)) == 120
    top = ids(kept)[:3]
    dropped = post(f"{server}/recommend", {"user_id": "U010", "k": 3,
                                           "exclude": [f"I{i:03d}" for i in top[:2]]}).json()
    assert ids(dropped) == ids(kept)[2:5]


def test_similar_items_by_cosine(server: str, champion) -> None:
    items = np.load(champion.run / "model" / "item_embeddings.npy").astype(np.float64)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    sims = unit @ unit[7]
    sims[7] = -np.inf
    body = post(f"{server}/similar_items", {"item_id": "I007", "k": 5}).json()
    assert [i["item_id"] for i in body["items"]] == [f"I{i:03d}" for i in np.argsort(-sims, kind="stable")[:5]]
    assert np.allclose([i["score"] for i in body["items"]], np.sort(sims)[::-1][:5], atol=1e-6)
    missing = post(f"{server}/similar_items", {"item_id": "nope"})
    assert missing.status_code == 404 and "item_id" in missing.text


def test_batch_and_concurrent_singles_equal_single_calls(server: str) -> None:
    singles = [post(f"{server}/recommend", q).json() for q in QUERIES]
    batch = post(f"{server}/recommend_batch", QUERIES)
    assert batch.status_code == 200, batch.text
    assert batch.json() == singles
    with ThreadPoolExecutor(8) as pool:  # concurrent singles are scored together by the micro-batcher
        concurrent = list(pool.map(lambda q: post(f"{server}/recommend", q).json(), QUERIES * 3))
    assert concurrent == singles * 3


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"user_id": "U001", "k": 0}, 400, "k"),
    ({"user_id": "U001", "k": 1001}, 400, "k"),
    ({"user_id": "U001", "k": "5"}, 400, "k"),
    ({"user_id": 5}, 400, "user_id"),
    ({"user_id": "U001", "colour": "red"}, 400, "colour"),
    ({"history": "I001"}, 400, "history"),
    ({"exclude_seen": "yes"}, 400, "exclude_seen"),
    ([], 400, ""),
    (b'{"user_id": ', 400, "json"),
])
def test_bad_recommend_requests_are_4xx_naming_the_field(server: str, body, status: int, field: str) -> None:
    r = post(f"{server}/recommend", body)
    assert r.status_code == status, r.text
    assert field.lower() in r.text.lower()


def test_bad_batches_and_bodies_are_4xx(server: str) -> None:
    assert post(f"{server}/recommend_batch", []).status_code == 400
    too_many = post(f"{server}/recommend_batch", [{"k": 1}] * 1001)
    assert too_many.status_code == 400 and "1000" in too_many.text
    assert post(f"{server}/recommend_batch", [{"k": 1}] * 1000).status_code == 200
    assert post(f"{server}/recommend_batch", [{"k": 0}]).status_code == 400
    big = b'{"history": [' + b",".join([b'"I001"'] * 150_000) + b"]}"
    r = post(f"{server}/recommend", big)
    assert r.status_code == 413 and "body" in r.text
    chunked = requests.post(f"{server}/recommend", data=iter([big[i:i + 65536] for i in range(0, len(big), 65536)]),
                            headers={"content-type": "application/json"}, timeout=10)
    assert chunked.status_code == 413
    assert post(f"{server}/similar_items", {"item_id": "I001", "k": 0}).status_code == 400


def test_metrics_count_fallbacks_and_unknown_ids(server: str) -> None:
    def counter(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    before = requests.get(f"{server}/metrics", timeout=5).text
    post(f"{server}/recommend", {"user_id": "ghost", "history": ["not-an-item"], "k": 2})
    after = requests.get(f"{server}/metrics", timeout=5).text
    assert counter(after, 'gatrec_fallback_total{source="popularity"}') == \
        counter(before, 'gatrec_fallback_total{source="popularity"}') + 1
    assert counter(after, 'gatrec_unknown_ids_total{kind="user"}') == \
        counter(before, 'gatrec_unknown_ids_total{kind="user"}') + 1
    assert counter(after, 'gatrec_unknown_ids_total{kind="item"}') == \
        counter(before, 'gatrec_unknown_ids_total{kind="item"}') + 1
    assert "bentoml_service_request_total" in after


def test_bento_built_offline_holds_model_and_dockerfile(champion) -> None:
    name, version = champion.bento_tag.split(":")
    bento = champion.bentoml_home / "bentos" / name / version
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    models = [m["tag"] for s in info["services"] for m in s["models"]]
    assert models == [info["args"]["model"]] and models[0].startswith("gatrec:v1-")
    model_dir = champion.bentoml_home / "models" / "gatrec" / models[0].split(":")[1]
    assert {"item_embeddings.npy", "seen.npz", "popularity.npy", "model.yaml"} <= {p.name for p in model_dir.iterdir()}
    labels = yaml.safe_load((model_dir / "model.yaml").read_text())["labels"]
    assert labels["registry_version"] == "1" and labels["data_digest"] == "d1" and labels["split"] == "user-temporal"
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().split()
    assert "numpy" in requirements and "bentoml==1.4.40" in requirements
    assert not [r for r in requirements if r.startswith(("torch", "mlflow", "faiss"))]
    assert (bento / "src" / "service.py").is_file() and (bento / "src" / "gatrec" / "serve" / "topk.py").is_file()


def test_mlflow_signature_is_derived_from_the_request_schema() -> None:
    assert mlflow_signature() == SIGNATURE
