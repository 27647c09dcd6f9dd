"""The registered pyfunc (embedded SQLite store): pickle-free, same top-K as numpy, servable."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import yaml
from mlflow import MlflowClient

from gatrec.errors import DataError, GatrecError
from gatrec.registry.promote import promote
from gatrec.registry.register import register_run


def numpy_top_k(run: Path, users: list[str], k: int) -> list[list[str]]:
    """The reference ranking, straight from the run folder: U @ I.T + b, training items removed."""
    model = run / "model"
    users_emb, items_emb = np.load(model / "user_embeddings.npy"), np.load(model / "item_embeddings.npy")
    bias = np.load(model / "item_bias.npy") if (model / "item_bias.npy").exists() else 0.0
    user_ids = json.loads((model / "user_ids.json").read_text())
    item_ids = json.loads((model / "item_ids.json").read_text())
    train = pd.read_parquet(Path(json.loads((run / "metrics.json").read_text())["data"]["path"]) / "train.parquet")
    out = []
    for uid in users:
        u = user_ids.index(uid)
        scores = users_emb[u].astype(np.float64) @ items_emb.T.astype(np.float64) + bias
        scores[train.loc[train["user"] == u, "item"].to_numpy()] = -np.inf
        out.append([item_ids[i] for i in np.argsort(-scores, kind="stable")[:k]])
    return out


@pytest.fixture
def champion(sqlite_uri: str, use_tracking, make_run, model_name: str) -> tuple[str, Path]:
    use_tracking(sqlite_uri)
    run = make_run(ndcg=0.6, recall=0.7, bias=True, seed=3)
    mv = register_run(run, model_name)
    assert promote(mv.version, model_name).passed
    return model_name, run


def test_champion_pyfunc_matches_numpy_top_k(champion: tuple[str, Path]) -> None:
    name, run = champion
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    users = [f"U{u:03d}" for u in range(80)]
    out = model.predict(pd.DataFrame({"user_id": users, "k": [10] * len(users)}))
    assert list(out["source"].unique()) == ["user"]
    assert [list(r) for r in out["item_ids"]] == numpy_top_k(run, users, 10)
    assert all(np.all(np.diff(s) <= 0) for s in out["scores"])

    # Known user plus a history: the history is excluded as well.
    base = numpy_top_k(run, ["U005"], 5)[0]
    more = model.predict(pd.DataFrame({"user_id": ["U005"], "history": [base[:2]], "k": [3]}))
    assert list(more["item_ids"][0]) == base[2:5]

    # Unknown user: mean of the known history items' embeddings; unknown item ids are ignored.
    items = np.load(run / "model" / "item_embeddings.npy").astype(np.float64)
    b = np.load(run / "model" / "item_bias.npy")
    hist = ["I003", "I010", "I042"]
    s = items[[3, 10, 42]].mean(axis=0) @ items.T + b
    s[[3, 10, 42]] = -np.inf
    cold = model.predict(pd.DataFrame({"user_id": ["nobody"], "history": [[*hist, "not-an-item"]], "k": [4]}))
    assert cold["source"][0] == "history"
    assert list(cold["item_ids"][0]) == [f"I{i:03d}" for i in np.argsort(-s, kind="stable")[:4]]

    # Nothing known: training popularity, ties broken by item index.
    train = pd.read_parquet(Path(json.loads((run / "metrics.json").read_text())["data"]["path"]) / "train.parquet")
    pop = np.bincount(train["item"], minlength=120).astype(float)
    top = [f"I{i:03d}" for i in np.argsort(-pop, kind="stable")[:3]]
    pop_out = model.predict(pd.DataFrame({"user_id": ["nobody", None], "history": [[], ["not-an-item"]],
                                          "k": [3, 3]}))
    assert list(pop_out["source"]) == ["popularity", "popularity"]
    assert [list(r) for r in pop_out["item_ids"]] == [top, top]
    default_k = model.predict(pd.DataFrame({"user_id": ["U001"]}))
    assert len(default_k["item_ids"][0]) == 10


def test_logged_model_has_no_pickle_and_carries_signature(champion: tuple[str, Path], tmp_path: Path) -> None:
    name, _ = champion
    client = MlflowClient()
    mv = client.get_model_version_by_alias(name, "champion")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=str(tmp_path)))
    files = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt", ".cloudpickle"))], files
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    flavor = mlmodel["flavors"]["python_function"]
    assert "python_model" not in flavor and flavor["model_code_path"].endswith("pyfunc.py")
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert {"artifacts/model/item_embeddings.npy", "artifacts/model/seen.npz",
            "artifacts/model/popularity.npy", "input_example.json", "code/gatrec_topk.py"} <= set(files)
    assert {c["name"] for c in json.loads(mlmodel["signature"]["inputs"])} == {
        "user_id", "history", "k", "exclude_seen", "exclude"}
    requirements = (local / "requirements.txt").read_text()
    assert "torch" not in requirements and "numpy" in requirements
    tags = mv.tags
    assert tags["validation_status"] == "passed" and tags["model_type"] == "mf"
    assert tags["data_digest"] == "d1" and tags["split_protocol"] == "user-temporal"
    assert float(tags["metric.valid.ndcg_at_20"]) == 0.6 and float(tags["metric.test.recall_at_20"]) == pytest.approx(0.665)
    assert 0 < float(tags["baseline.pop.valid.ndcg_at_20"]) < 0.6


def test_register_from_run_id_and_into_the_training_run(sqlite_uri: str, use_tracking, make_run,
                                                        model_name: str) -> None:
    use_tracking(sqlite_uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name("gatrec").experiment_id
    # A training run that logged its RUNDIR: register by its id.
    run_dir = make_run(ndcg=0.5, recall=0.6)
    with mlflow.start_run(experiment_id=exp) as train_run:
        mlflow.log_artifact(str(run_dir / "metrics.json"))
        mlflow.log_artifacts(str(run_dir / "model"), "model")
    mv = register_run(train_run.info.run_id, model_name)
    assert mv.run_id == train_run.info.run_id and mv.aliases == ["candidate"]
    # A RUNDIR that names its tracking run: the model is logged into that run.
    with mlflow.start_run(experiment_id=exp) as tracked:
        pass
    run_dir2 = make_run(ndcg=0.55, recall=0.6, mlflow_run_id=tracked.info.run_id)
    mv2 = register_run(run_dir2, model_name)
    assert mv2.run_id == tracked.info.run_id and str(mv2.version) == "2"
    assert str(client.get_model_version_by_alias(model_name, "candidate").version) == "2"
    with pytest.raises(GatrecError, match="cannot fetch"):
        register_run("0" * 32, model_name)


def test_register_rejects_broken_run_folders(sqlite_uri: str, use_tracking, make_run, model_name: str,
                                             tmp_path: Path) -> None:
    use_tracking(sqlite_uri)
    run = make_run(ndcg=0.5, recall=0.6)
    (run / "model" / "item_ids.json").write_text(json.dumps(["only-one"]))
    with pytest.raises(DataError) as err:
        register_run(run, model_name)
    assert err.value.file.endswith("item_embeddings.npy")
    (run / "model" / "user_ids.json").unlink()
    with pytest.raises(DataError, match="missing") as err:
        register_run(run, model_name)
    assert err.value.file.endswith("user_ids.json")
    with pytest.raises(DataError, match="neither a run folder"):
        register_run(str(tmp_path / "nope"), model_name)
    run2 = make_run(ndcg=0.5, recall=0.6)
    metrics = json.loads((run2 / "metrics.json").read_text())
    metrics["data"]["digest"] = "other"
    (run2 / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(DataError) as err:
        register_run(run2, model_name)
    assert err.value.field == "data.digest"


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_the_loaded_model(champion: tuple[str, Path], tmp_path: Path,
                                                           spawn, free_port, wait_http) -> None:
    name, run = champion
    port, log = free_port(), tmp_path / "serve.log"
    proc = spawn(["mlflow", "models", "serve", "-m", f"models:/{name}@champion", "--env-manager", "local",
                  "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], log=log)
    wait_http(f"http://127.0.0.1:{port}/ping", 120, proc, log)
    url = f"http://127.0.0.1:{port}/invocations"
    known = requests.post(url, json={"dataframe_records": [{"user_id": "U007", "k": 5},
                                                           {"user_id": "U011", "k": 3}]}, timeout=30)
    assert known.status_code == 200, known.text
    preds = known.json()["predictions"]
    assert [p["item_ids"] for p in preds] == [numpy_top_k(run, ["U007"], 5)[0], numpy_top_k(run, ["U011"], 3)[0]]
    cold = requests.post(url, json={"dataframe_split": {"columns": ["history", "k"],
                                                       "data": [[["I003", "I010"], 4]]}}, timeout=30)
    assert cold.status_code == 200, cold.text
    assert cold.json()["predictions"][0]["source"] == "history"
    bad = requests.post(url, json={"dataframe_records": [{"k": 3}]}, timeout=30)
    assert bad.status_code >= 400
