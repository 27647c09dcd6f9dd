"""The training loop on small prepared datasets: outputs, quality vs popularity, determinism, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gatrec.errors import GatrecError
from gatrec.models.lightgcn import LightGCNConfig
from gatrec.train import checkpoint
from gatrec.train.config import TrainConfig
from gatrec.train.export import load_export
from gatrec.train.loop import train

REPO = Path(__file__).resolve().parents[2]
FAST = {"batch_size": 128, "lr": 0.01}  # the tiny data has ~1k train triples: small batches, larger steps


def without_timing(result: dict) -> dict:
    result = json.loads(json.dumps(result))
    result.pop("seconds_per_epoch")
    for h in result["history"]:
        h.pop("seconds"), h.pop("train_seconds")
    return result


@pytest.fixture(scope="module")
def lgcn_run(clustered_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "lgcn"
    cfg = TrainConfig(model="lightgcn", epochs=4, **FAST, model_params={"dim": 16})
    return out, train(clustered_data, cfg, out)


def test_run_folder_has_metrics_config_checkpoint_and_export(lgcn_run: tuple[Path, dict], clustered_data: Path):
    out, result = lgcn_run
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert set(on_disk) >= {"valid", "test", "best_epoch", "epochs_run", "seconds_per_epoch", "config", "model",
                            "data", "history"}
    for split in ("valid", "test"):
        assert {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "hit", "mrr", "coverage")
                for k in (10, 20, 50)} <= set(on_disk[split])
    manifest = json.loads((clustered_data / "manifest.json").read_text())
    assert on_disk["data"] == {"path": str(clustered_data.resolve()), "digest": manifest["digest"],
                               "split_protocol": "leave-one-out", "n_users": 120, "n_items": 60}
    assert on_disk["model"] == "lightgcn" and on_disk["epochs_run"] == 4 and 1 <= on_disk["best_epoch"] <= 4
    assert [h["epoch"] for h in on_disk["history"]] == [1, 2, 3, 4]
    assert set(on_disk["history"][0]) >= {"epoch", "loss", "valid_ndcg@20", "seconds"}
    best = on_disk["history"][on_disk["best_epoch"] - 1]["valid_ndcg@20"]
    assert best == on_disk["valid"]["ndcg@20"] == max(h["valid_ndcg@20"] for h in on_disk["history"])
    assert TrainConfig.from_yaml(out / "config.yaml") == TrainConfig.model_validate(on_disk["config"])
    assert checkpoint.load(out / "checkpoints" / "last.pt")["epoch"] == 4
    export = load_export(out)
    assert export.user_emb.shape == (120, 16) and export.item_emb.shape == (60, 16) and export.item_bias is None
    assert export.user_emb.dtype == np.float32
    assert export.meta["data_digest"] == manifest["digest"] and export.meta["scoring"] == "dot"
    assert export.ids("user")[:2] == ["u0", "u1"] and len(export.ids("item")) == 60
    assert not list((out / "model").glob("*.pkl")) and not list((out / "model").glob("*.pt"))


def test_same_seed_gives_identical_metrics(lgcn_run: tuple[Path, dict], clustered_data: Path, tmp_path: Path):
    _, first = lgcn_run
    cfg = TrainConfig.model_validate(first["config"])
    assert without_timing(train(clustered_data, cfg, tmp_path / "again")) == without_timing(first)
    other = train(clustered_data, cfg.model_copy(update={"seed": 1}), tmp_path / "seed1")
    assert other["history"][0]["loss"] != first["history"][0]["loss"]


def test_personalised_models_beat_popularity(clustered_data: Path, tmp_path: Path):
    pop = train(clustered_data, TrainConfig(model="pop"), tmp_path / "pop")
    assert pop["epochs_run"] == 0 and pop["history"] == [] and pop["best_epoch"] == 0
    assert load_export(tmp_path / "pop").item_bias is not None
    for name in ("mf", "lightgcn"):
        res = train(clustered_data, TrainConfig(model=name, epochs=12, patience=5, **FAST), tmp_path / name)
        for metric in ("ndcg@20", "recall@20"):
            assert res["test"][metric] > 1.5 * pop["test"][metric], (name, metric, res["test"], pop["test"])


def test_early_stopping_keeps_the_best_epoch(clustered_data: Path, tmp_path: Path):
    # lr this high overfits the tiny data within a few epochs, so patience decides when to stop.
    res = train(clustered_data, TrainConfig(model="mf", epochs=60, patience=3, batch_size=64, lr=0.1),
                tmp_path / "es")
    assert res["epochs_run"] < 60
    assert res["epochs_run"] - res["best_epoch"] == 3
    scores = [h["valid_ndcg@20"] for h in res["history"]]
    assert res["valid"]["ndcg@20"] == max(scores) == scores[res["best_epoch"] - 1]


def test_resume_refuses_other_config_or_data(lgcn_run: tuple[Path, dict], make_prepared, tmp_path: Path):
    out, first = lgcn_run
    cfg = TrainConfig.model_validate(first["config"])
    with pytest.raises(GatrecError, match=r"different config \(lr: 0.01 -> 0.02\)"):
        train(first["data"]["path"], cfg.model_copy(update={"lr": 0.02}), out)
    other_data = make_prepared(tmp_path / "other", seed=5)
    with pytest.raises(GatrecError, match="trained on data"):
        train(other_data, cfg, out)
    with pytest.raises(GatrecError, match="--overwrite"):
        train(first["data"]["path"], cfg, out, resume=False)
    # Resuming a finished run with the same config reproduces it without training further.
    again = train(first["data"]["path"], cfg, out)
    assert without_timing(again) == without_timing(first) and again["history"] == first["history"]


def test_overwrite_starts_over(clustered_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    train(clustered_data, TrainConfig(model="mf", epochs=2, **FAST), out)
    res = train(clustered_data, TrainConfig(model="mf", epochs=1, **FAST), out, overwrite=True)
    assert res["epochs_run"] == 1 and json.loads((out / "metrics.json").read_text())["epochs_run"] == 1


def test_resume_after_kill_equals_uninterrupted_run(clustered_data: Path, tmp_path: Path):
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text("model: lightgcn\nepochs: 20\npatience: 50\nbatch_size: 64\nlr: 0.01\n"
                        "model_params: {dim: 16, n_layers: 2}\n")
    cfg = TrainConfig.from_yaml(cfg_file)
    reference = train(clustered_data, cfg, tmp_path / "reference")

    out, log_file = tmp_path / "killed", tmp_path / "killed.log"
    last = out / "checkpoints" / "last.pt"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gatrec", "train", "--data", str(clustered_data), "--config", str(cfg_file),
             "--no-mlflow", "--out", str(out)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if last.is_file() and checkpoint.load(last)["epoch"] >= 2:
                    proc.send_signal(signal.SIGKILL)
                    break
                time.sleep(0.005)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-run: {log_file.read_text()[-2000:]}"
    before = checkpoint.load(last)
    killed_at = before["epoch"]
    assert 2 <= killed_at < 20 and not (out / "metrics.json").exists()

    resumed = train(clustered_data, cfg, out)
    assert resumed["history"][:killed_at] == before["history"]  # kept (with their timings), not re-run
    assert without_timing(resumed) == without_timing(reference)
    assert np.array_equal(load_export(out).user_emb, load_export(tmp_path / "reference").user_emb)


def test_model_params_are_validated_by_the_model(clustered_data: Path, tmp_path: Path):
    cfg = TrainConfig(model="lightgcn", epochs=1, **FAST, model_params={"n_layers": 0, "dim": 4})
    res = train(clustered_data, cfg, tmp_path / "l0")  # 0 layers: LightGCN degenerates to MF, still valid
    # every value used is recorded: the given ones and the model's defaults for the rest
    defaults = LightGCNConfig().model_dump(mode="json")
    assert res["config"]["model_params"] == {**defaults, "dim": 4, "n_layers": 0}
    assert defaults["reg_weight"] == 1e-4 and defaults["init_std"] == 0.1
    assert torch.from_numpy(load_export(tmp_path / "l0").item_emb).shape == (60, 4)
