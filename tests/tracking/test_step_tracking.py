"""`gatrec prepare`, `gatrec embed` and `gatrec eval` each leave an MLflow record (unless --no-mlflow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trackstore import Store

from gatrec.cli import main
from gatrec.tracking.datasets import split_digest


def raw_folder(folder: Path, n_users: int = 15, n_items: int = 12, per_user: int = 6) -> Path:
    folder.mkdir(parents=True)
    rows = [f"u{u},i{(u * 5 + j) % n_items},{j}" for u in range(n_users) for j in range(per_user)]
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    items = [{"item_id": f"i{i}", "title": f"{['red', 'blue', 'green'][i % 3]} office thing {i}",
              "brand": f"b{i % 2}", "categories": ["Office"]} for i in range(n_items)]
    (folder / "items.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return folder


def test_prepare_and_embed_runs(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture):
    monkeypatch.delenv("GATREC_CACHE", raising=False)
    raw, data = raw_folder(tmp_path / "raw"), tmp_path / "data"
    main(["prepare", "--input", str(raw), "--split", "leave-one-out", "--kcore", "2", "--out", str(data)])
    manifest = json.loads((data / "manifest.json").read_text())
    client = store.client()
    (run,) = store.runs()
    assert run.info.run_name == "prepare" and run.info.status == "FINISHED"
    assert run.data.params["split"] == "leave-one-out" and run.data.params["kcore"] == "2"
    assert run.data.params["input"] == str(raw)
    m = run.data.metrics
    assert (m["n_users"], m["n_items"], m["n_interactions"]) == (15, 12, 90)
    assert (m["n_train"], m["n_valid"], m["n_test"]) == (60, 15, 15)
    assert m["cleaning.dropped_duplicates"] == manifest["cleaning"]["dropped_duplicates"]
    assert run.data.tags["data_digest"] == manifest["digest"] and run.data.tags["split"] == "leave-one-out"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"manifest.json"}  # no parquet upload
    assert {(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs} == {
        (s, split_digest(manifest["digest"], s)) for s in ("train", "valid", "test")}

    main(["embed", "--data", str(data), "--modalities", "text", "--knn-k", "2", "--knn-features", "text"])
    features = json.loads((data / "features" / "features.json").read_text())
    run = next(r for r in store.runs() if r.info.run_name == "embed")
    assert run.info.status == "FINISHED"
    assert run.data.params["text.model"] == "all-MiniLM-L6-v2" and run.data.params["modalities"] == "text"
    tags = run.data.tags
    assert tags["data_digest"] == manifest["digest"] and tags["items_digest"] == features["items_digest"]
    assert tags["image_weights_random"] == "false" and tags["modalities"] == "text"
    assert run.data.metrics["text.dim"] == 384 and run.data.metrics["text.n_present"] == 12
    assert run.data.metrics["knn.text_k2.edges"] == features["knn"]["text_k2"]["edges"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"features.json"}  # no .npy upload
    (item_input,) = run.inputs.dataset_inputs
    assert item_input.dataset.name == "items" and item_input.dataset.digest.startswith(features["items_digest"][:24])
    assert {t.key: t.value for t in item_input.tags}["mlflow.data.context"] == "features"

    # --no-mlflow: no run at all.
    main(["prepare", "--input", str(raw), "--kcore", "2", "--out", str(tmp_path / "d2"), "--no-mlflow"])
    assert len(store.runs()) == 2
    assert "prepared" in capsys.readouterr().out


def test_prepare_failure_is_recorded_as_failed_run(store: Store, tmp_path: Path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "interactions.csv").write_text("user_id,item_id,timestamp\nu1,a,1\nu1,b,soon\n")
    with pytest.raises(SystemExit) as exc:
        main(["prepare", "--input", str(raw), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    (run,) = store.runs()
    assert run.info.run_name == "prepare" and run.info.status == "FAILED"


def test_eval_logs_a_new_run_or_into_the_training_run(store: Store, tiny_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "run"
    main(["train", "--data", str(tiny_data), "--model", "mf", "--epochs", "2", "--batch-size", "64",
          "-p", "dim=8", "--out", str(out)])
    saved = json.loads((out / "metrics.json").read_text())
    train_id = saved["mlflow_run_id"]
    client = store.client()

    main(["eval", "--run", str(out), "--experiment", "evals"])
    (run,) = store.runs("evals")
    assert run.info.run_name == "eval" and run.info.status == "FINISHED"
    assert run.data.metrics["eval_test_ndcg_at_20"] == saved["test"]["ndcg@20"]
    assert run.data.params["split"] == "test" and run.data.params["ks"] == "10,20,50"
    assert run.data.tags["training_run_id"] == train_id and run.data.tags["data_digest"] == saved["data"]["digest"]
    (test_input,) = run.inputs.dataset_inputs
    assert test_input.dataset.name == "test" and test_input.dataset.digest == split_digest(
        saved["data"]["digest"], "test")
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "eval/test.json", str(tmp_path))).read_text())
    assert report["metrics"] == saved["test"]

    before = client.get_run(train_id)
    main(["eval", "--run", str(out), "--split", "valid", "--run-id", train_id])
    after = client.get_run(train_id)
    assert after.data.metrics["eval_valid_recall_at_20"] == saved["valid"]["recall@20"]
    assert after.data.params == before.data.params and after.data.tags == before.data.tags
    assert after.info.status == "FINISHED" and len(store.runs()) == 1  # no new run in "gatrec"

    main(["eval", "--run", str(out), "--experiment", "evals", "--no-mlflow"])
    monkeypatch.setenv("GATREC_NO_MLFLOW", "1")
    main(["eval", "--run", str(out), "--experiment", "evals"])
    assert len(store.runs("evals")) == 1


def test_eval_into_an_unknown_run_fails_clearly(store: Store, tiny_data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    main(["train", "--data", str(tiny_data), "--model", "pop", "--no-mlflow", "--out", str(out)])
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--run", str(out), "--run-id", "f" * 32])
    assert exc.value.code == 2 and "MLflow" in capsys.readouterr().err
