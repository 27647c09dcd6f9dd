"""The pieces: provenance tags, the features flag, URI redaction, digests, plots, and which run a tracker
opens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from trackstore import Store

import gatrec
from gatrec.tracking import context, plots
from gatrec.tracking.datasets import MAX_DIGEST, split_digest
from gatrec.tracking.mlflow_log import MlflowTracker, param_values
from gatrec.train.export import RunFolder

MANIFEST = {"digest": "ab" * 32, "split": {"protocol": "mmrec", "seed": 3}}


def features_dir(tmp_path: Path, random_images: bool) -> Path:
    d = tmp_path / "data" / "features"
    d.mkdir(parents=True)
    (d / "features.json").write_text(json.dumps({"image_weights_random": random_images, "items_digest": "cd" * 32}))
    return d


@pytest.mark.parametrize(("kind", "random_images", "flagged"), [
    ("fused", True, True), ("image", True, True), ("text", True, False), ("fused", False, False)])
def test_training_tags_flag_random_image_weights(tmp_path: Path, kind: str, random_images: bool, flagged: bool):
    features_dir(tmp_path, random_images)
    cfg = {"model": "gat", "seed": 5, "model_params": {"features": kind}}
    tags = context.training_tags(cfg, MANIFEST, tmp_path / "data", tmp_path / "run")
    assert tags["features"] == kind and tags["features_items_digest"] == "cd" * 32
    assert (tags.get("image_weights_random") == "true") is flagged
    assert tags["data_digest"] == "ab" * 32 and tags["split"] == "mmrec" and tags["split_seed"] == "3"
    assert tags["model"] == "gat" and tags["seed"] == "5" and tags["data_path"] == str((tmp_path / "data").resolve())


def test_random_image_graph_is_flagged_too(tmp_path: Path):
    features_dir(tmp_path, True)
    for graph, flagged in (("image", True), ("fused", True), ("interactions", False), ("auto", False)):
        params = {"features": "text", "knn_source": graph}
        tags = context.training_tags({"model": "gat", "model_params": params}, MANIFEST, tmp_path / "data", tmp_path)
        assert (tags.get("image_weights_random") == "true") is flagged, graph


def test_no_features_no_feature_tags(tmp_path: Path):
    features_dir(tmp_path, True)
    for params in ({}, {"features": "none"}, {"features": "none", "knn_source": "auto"}):
        tags = context.training_tags({"model": "mf", "model_params": params}, MANIFEST, tmp_path / "data", tmp_path)
        assert not {"image_weights_random", "features_items_digest"} & set(tags)


def test_code_tags_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_head: str | None):
    tags = context.code_tags.__wrapped__()
    assert tags["gatrec.version"] == gatrec.__version__
    if git_head:  # this checkout's commit
        assert tags["gatrec.git_commit"] == git_head and tags["gatrec.git_dirty"] in ("true", "false")
    monkeypatch.setattr(context, "PACKAGE_DIR", tmp_path)  # not a git checkout
    monkeypatch.setattr(context, "_installed_commit", lambda: "f00d" * 10)  # pip's record of a git install
    assert context.code_tags.__wrapped__()["gatrec.git_commit"] == "f00d" * 10
    monkeypatch.setattr(context, "_installed_commit", lambda: None)
    assert "gatrec.git_commit" not in context.code_tags.__wrapped__()


def test_redact_uri():
    assert context.redact_uri("https://bob:s3cret@mlflow.example.com:8443/x") == "https://bob@mlflow.example.com:8443/x"
    assert context.redact_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    assert context.redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_split_digest_fits_mlflow():
    d = "0123456789abcdef" * 4
    assert split_digest(d, "valid") == "0123456789abcdef01234567:valid"
    assert split_digest(d, "train") != split_digest(d, "test")
    assert len(split_digest(d, "a-very-long-split-name")) == MAX_DIGEST


def test_param_values_flatten_lists_and_nesting():
    assert param_values({"ks": [10, 20], "model_params": {"dim": 8, "text": {"model": "m"}}}) == {
        "ks": "10,20", "model_params.dim": 8, "model_params.text.model": "m"}


def test_plots_are_pngs(tmp_path: Path):
    history = [{"epoch": e, "loss": 1 / e, "valid_ndcg@20": (0.1 * e if e % 2 == 0 else None)} for e in range(1, 7)]
    curve = plots.training_curve(history, "ndcg@20", tmp_path / "a" / "curve.png", best_epoch=6)
    at_k = plots.metrics_at_k({"valid": {"recall@10": 0.1, "recall@20": 0.2, "ndcg@10": 0.05, "mrr@10": 0.3},
                               "test": {"recall@10": 0.12, "recall@20": 0.25, "ndcg@10": 0.06}}, tmp_path / "k.png")
    for f in (curve, at_k):
        with Image.open(f) as im:
            assert im.format == "PNG" and im.width > 300


def test_tracker_inside_mlflow_run_uses_that_run(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    client = store.client()
    outer = client.create_run(client.create_experiment("projects"))
    old = client.create_run(client.create_experiment("other"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RunFolder.RUN_ID).write_text(old.info.run_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", outer.info.run_id)
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    with MlflowTracker(run_dir=run_dir, tags={"k": "v"}) as t:
        t.log_metrics({"x": 1.0, "flag": True, "none": None})
    assert t.run_id == outer.info.run_id and (run_dir / RunFolder.RUN_ID).read_text().strip() == outer.info.run_id
    got = client.get_run(outer.info.run_id)
    assert got.data.metrics == {"x": 1.0} and got.data.tags["k"] == "v"
    assert "MLFLOW_RUN_ID" not in os.environ  # consumed, as mlflow.start_run does
    assert not client.get_run(old.info.run_id).data.metrics


def test_tracker_keeps_params_a_reopened_run_already_has(store: Store, tmp_path: Path):
    client = store.client()
    run = client.create_run(client.create_experiment("p"))
    client.log_param(run.info.run_id, "epochs", "300.0")  # as `mlflow run -P epochs=300.0` logs it
    (tmp_path / RunFolder.RUN_ID).write_text(run.info.run_id)
    with MlflowTracker(run_dir=tmp_path) as t:
        t.log_params({"epochs": 300, "lr": 0.01})
    assert t.resumed and client.get_run(run.info.run_id).data.params == {"epochs": "300.0", "lr": "0.01"}


def test_tracker_under_an_open_run_makes_a_child_run(store: Store, monkeypatch: pytest.MonkeyPatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    mlflow.set_experiment("outer")
    with mlflow.start_run() as parent:
        with MlflowTracker("inner", run_name="step") as t:
            t.log_metrics({"n": 3})
        assert mlflow.active_run().info.run_id == parent.info.run_id
    child = store.client().get_run(t.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.data.metrics == {"n": 3.0}
