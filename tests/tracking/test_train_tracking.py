"""`gatrec train` as a tracked run: params, per-epoch metrics, system metrics, dataset inputs, artifacts,
tags, the run id in metrics.json, `--register`, and a killed training resuming the same MLflow run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from trackstore import REPO, Store

from gatrec.cli import main
from gatrec.tracking.datasets import split_digest
from gatrec.train.export import RunFolder

TRAIN = ["train", "--model", "mf", "--batch-size", "64", "-p", "dim=8", "--threads", "1"]


def steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_train_logs_a_complete_run_and_registers_it(store: Store, tiny_data: Path, tmp_path: Path,
                                                    git_head: str | None, capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    main([*TRAIN, "--data", str(tiny_data), "--epochs", "3", "--seed", "7", "--out", str(out),
          "--register", "--model-name", "recs"])
    printed = capsys.readouterr().out
    saved = json.loads((out / "metrics.json").read_text())
    client = store.client()
    (run,) = store.runs()
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert saved["mlflow_run_id"] == run_id == (out / RunFolder.RUN_ID).read_text().strip()
    assert saved["mlflow_tracking_uri"] == store.uri

    # Params: the full config, flattened.
    params = run.data.params
    assert params["epochs"] == "3" and params["seed"] == "7" and params["model_params.dim"] == "8"
    assert params["ks"] == "10,20,50" and params["metric"] == "ndcg@20" and "model_params.reg_weight" in params

    # Per-epoch metrics with the epoch as step; every validation metric; finals at the best epoch.
    for key in ("loss", "seconds", "train_seconds", "valid_ndcg_at_20", "valid_recall_at_10", "valid_hit_at_50"):
        assert steps(client, run_id, key)[-3:] == [1, 2, 3], key
    assert [h["loss"] for h in saved["history"]] == [
        m.value for m in sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)]
    best = saved["best_epoch"]
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "test_ndcg_at_20")] == [
        (best, saved["test"]["ndcg@20"])]
    # valid_* finals lie on the curve: one value per epoch, none added twice.
    assert steps(client, run_id, "valid_ndcg_at_20") == [1, 2, 3]
    assert run.data.metrics["best_epoch"] == best and run.data.metrics["epochs_run"] == 3

    # System metrics, sampled by MLflow's monitor thread while the run was open.
    assert any(k.startswith("system/cpu_utilization_percentage") for k in run.data.metrics), sorted(run.data.metrics)

    # The splits as dataset inputs, with digests derived from the prepared data's digest.
    digest = saved["data"]["digest"]
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "valid", "test"}
    for split, context in (("train", "training"), ("valid", "validation"), ("test", "test")):
        d = inputs[split]
        assert d.dataset.digest == split_digest(digest, split) and d.dataset.digest.startswith(digest[:24])
        tags = {t.key: t.value for t in d.tags}
        assert tags["mlflow.data.context"] == context and tags["data_digest"] == digest
        assert f"{split}.parquet" in d.dataset.source
        # 60 users with 12 interactions each; leave-one-out keeps one per user for valid and for test.
        assert json.loads(d.dataset.profile)["num_rows"] == {"train": 600, "valid": 60, "test": 60}[split]

    # Tags: provenance of data and code.
    tags = run.data.tags
    assert tags["data_digest"] == digest and tags["split"] == "leave-one-out" and tags["seed"] == "7"
    assert tags["model"] == "mf" and tags["gatrec.version"] and tags["run_dir"] == str(out.resolve())
    if git_head:
        assert tags["gatrec.git_commit"] == git_head
    assert "image_weights_random" not in tags  # mf uses no item features

    # Artifacts: the run folder's records, the export, and the two plots.
    root = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics.json", "config.yaml", "model", "plots"} <= root
    model_files = {Path(a.path).name for a in client.list_artifacts(run_id, "model")}
    assert {"user_embeddings.npy", "item_embeddings.npy", "model.json", "user_ids.json", "item_ids.json"} <= model_files
    local = Path(client.download_artifacts(run_id, "", str(tmp_path / "dl")))
    assert json.loads((local / "metrics.json").read_text())["mlflow_run_id"] == run_id
    for png in ("training_curve.png", "metrics_at_k.png"):
        with Image.open(local / "plots" / png) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200

    # --register: a version of the training run, aliased candidate.
    mv = client.get_model_version_by_alias("recs", "candidate")
    assert mv.run_id == run_id and mv.tags["data_digest"] == digest
    assert f"registered recs v{mv.version} (alias candidate)" in printed


def test_register_needs_mlflow(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exc:
        main([*TRAIN, "--data", str(tiny_data), "--out", str(tmp_path / "r"), "--no-mlflow", "--register"])
    assert exc.value.code == 2 and "--no-mlflow" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


KILLER = textwrap.dedent("""
    import os, signal, sys
    from gatrec.cli import main
    from gatrec.train import checkpoint

    save, kill_at = checkpoint.save, int(sys.argv[1])

    def save_then_die(path, state):  # killed after the checkpoint, before the epoch reaches MLflow
        save(path, state)
        if state["epoch"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save = save_then_die
    main(sys.argv[2:])
""")


def test_killed_training_resumes_the_same_mlflow_run(store: Store, tiny_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = [*TRAIN, "--data", str(tiny_data), "--epochs", "4", "--patience", "10", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILLER, "2", *args], env=env, cwd=store.root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-3000:]
    run_id = (out / RunFolder.RUN_ID).read_text().strip()
    client = store.client()
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody ended it
    assert steps(client, run_id, "loss") == [1]  # epoch 2 was checkpointed, never logged

    main(args)  # started again with the same --out
    (run,) = store.runs()
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["mlflow_run_id"] == run_id and saved["epochs_run"] == 4
    for key in ("loss", "valid_ndcg_at_20"):
        assert steps(client, run_id, key) == [1, 2, 3, 4], key  # the gap filled, nothing twice
    assert len(run.inputs.dataset_inputs) == 3

    # Running a finished training again changes nothing in MLflow either.
    main(args)
    assert steps(client, run_id, "loss") == [1, 2, 3, 4]
    assert len(client.get_metric_history(run_id, "test_ndcg_at_20")) == 1

    # --overwrite starts over: a new MLflow run, remembered by the folder.
    main([*args, "--overwrite"])
    assert len(store.runs()) == 2
    new_id = (out / RunFolder.RUN_ID).read_text().strip()
    assert new_id != run_id and json.loads((out / "metrics.json").read_text())["mlflow_run_id"] == new_id
    assert steps(client, new_id, "loss") == [1, 2, 3, 4]


def test_stale_run_id_starts_a_new_run(store: Store, tiny_data: Path, tmp_path: Path):
    out = tmp_path / "pop"
    out.mkdir()
    (out / RunFolder.RUN_ID).write_text("0" * 32 + "\n")  # a run of another tracking store
    main(["train", "--model", "pop", "--data", str(tiny_data), "--out", str(out)])
    (run,) = store.runs()
    assert (out / RunFolder.RUN_ID).read_text().strip() == run.info.run_id != "0" * 32
    assert "test_recall_at_20" in run.data.metrics and run.data.params["model"] == "pop"
    assert {a.path for a in store.client().list_artifacts(run.info.run_id, "plots")} == {"plots/metrics_at_k.png"}
