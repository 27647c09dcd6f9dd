"""prepare → embed → train → eval → register with every path on gs:// (gcp-storage-emulator) and an ``mlflow server``
whose artefact store is gs:// on the same emulator: the real ``gatrec`` commands in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, VENV_BIN

from gatrec.cloud import storage
from tests.servers import free_port, stop_group, wait_http

pytestmark = pytest.mark.slow


@pytest.fixture
def gs_mlflow(bucket: str, tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` proxying artefacts to gs://BUCKET/mlflow (as infra/ runs it on Cloud Run)."""
    port = free_port()
    log = tmp_path / "mlflow.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(VENV_BIN / "mlflow"), "server", "--backend-store-uri",
                                 f"sqlite:///{tmp_path}/mlflow.db", "--artifacts-destination",
                                 f"gs://{bucket}/mlflow", "--host", "127.0.0.1", "--port", str(port),
                                 "--workers", "1"], cwd=tmp_path, env=os.environ.copy(),
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 120, proc, log)
        yield url
    finally:
        stop_group(proc, timeout=3)  # nothing to flush: the store is thrown away


def gatrec(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "gatrec", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"gatrec {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def mlflow_run(entry: str, *, env: dict[str, str], **params: str) -> None:
    from gatrec.cloud.jobs import mlflow_command

    cmd = mlflow_command(entry, params)
    proc = subprocess.run([str(VENV_BIN / cmd[0]), *cmd[1:]], env={**env, "PATH": f"{VENV_BIN}:{env['PATH']}"},
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def objects(bucket: str, prefix: str) -> set[str]:
    return {b.name.removeprefix(prefix) for b in storage.client().list_blobs(bucket, prefix=prefix)}


def test_lifecycle_with_every_path_on_gs(bucket, gs_mlflow, tmp_path) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": gs_mlflow, "GATREC_GS_CACHE": str(tmp_path / "gs-cache"),
           "MLFLOW_EXPERIMENT_NAME": "gs-lifecycle", "GATREC_THREADS": "1"}
    env.pop("GATREC_NO_MLFLOW", None)
    gs = f"gs://{bucket}"
    gatrec("synth", "--out", f"{gs}/raw", "--users", "120", "--items", "60", "--interactions", "1500",
           "--no-images", "--workers", "1", env=env, cwd=tmp_path)
    assert "interactions.csv" in " ".join(objects(bucket, "raw/")) or objects(bucket, "raw/")
    gatrec("prepare", "--input", f"{gs}/raw", "--out", f"{gs}/data", env=env, cwd=tmp_path)
    prepared = objects(bucket, "data/")
    assert {"manifest.json", "train.parquet", "valid.parquet", "test.parquet"} <= prepared
    gatrec("embed", "--data", f"{gs}/data", "--modalities", "text", "--knn-k", "5", "--device", "cpu",
           env=env, cwd=tmp_path)
    features = objects(bucket, "data/") - prepared
    assert features and all(name.startswith("features/") for name in features), sorted(features)
    # Training and evaluation as a Vertex job's container runs them (gatrec/cloud/jobs.py's command).
    mlflow_run("train", env=env, data=f"{gs}/data", model="gat", features="text", epochs="2",
               out=f"{gs}/runs/gat")
    run = objects(bucket, "runs/gat/")
    assert "metrics.json" in run and any(n.startswith("model/") for n in run)
    metrics = json.loads(storage.client().bucket(bucket).blob("runs/gat/metrics.json").download_as_bytes())
    mlflow_run("eval", env=env, run=f"{gs}/runs/gat")
    assert "eval_test.json" in objects(bucket, "runs/gat/")
    reg = gatrec("register", "--run", f"{gs}/runs/gat", "--name", "gs-lifecycle", env=env, cwd=tmp_path)
    assert "registered gs-lifecycle v1" in reg.stdout

    from mlflow import MlflowClient

    client = MlflowClient(gs_mlflow)
    mv = client.get_model_version("gs-lifecycle", "1")
    assert mv.run_id == metrics["mlflow_run_id"]  # the version belongs to the training run
    # The model's files went through the server into the bucket.
    logged = objects(bucket, "mlflow/")
    assert any(n.endswith("MLmodel") for n in logged), sorted(logged)[:20]
    assert not objects(bucket, storage.TMP_PREFIX)  # no temp object left behind


def test_failed_step_uploads_nothing(bucket, tmp_path) -> None:
    env = {**os.environ, "GATREC_GS_CACHE": str(tmp_path / "gs-cache")}
    gs = f"gs://{bucket}"
    gatrec("synth", "--out", f"{gs}/raw", "--users", "120", "--items", "60", "--interactions", "1500",
           "--no-images", "--workers", "1", env=env, cwd=tmp_path)
    proc = subprocess.run([sys.executable, "-m", "gatrec", "prepare", "--input", f"{gs}/raw", "--kcore", "500",
                           "--out", f"{gs}/data"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert not objects(bucket, "data/")
    missing = subprocess.run([sys.executable, "-m", "gatrec", "prepare", "--input", f"{gs}/nope", "--out",
                              f"{gs}/data"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and f"{gs}/nope" in missing.stderr
