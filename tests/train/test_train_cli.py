"""`gatrec train` and `gatrec eval` as a user runs them: help, tables, errors, MLflow logging."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gatrec.cli import cli, main
from gatrec.train.config import TrainConfig
from gatrec.train.loop import train


@pytest.fixture(scope="module")
def mf_run(clustered_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "mf"
    train(clustered_data, TrainConfig(model="mf", epochs=3, batch_size=128, lr=0.01, mask_valid_at_test=True), out)
    return out


@pytest.mark.parametrize("sub", ["train", "eval"])
def test_help_has_an_example(sub: str):
    res = CliRunner().invoke(cli, [sub, "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "--out" in res.output
    if sub == "train":
        assert "[pop|mf|lightgcn" in res.output  # choices come from the model registry


def test_eval_reproduces_the_run_metrics(mf_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    saved = json.loads((mf_run / "metrics.json").read_text())
    for split in ("test", "valid"):
        main(["eval", "--run", str(mf_run), "--split", split, "--out", str(tmp_path / f"{split}.json")])
        got = json.loads((tmp_path / f"{split}.json").read_text())
        assert got["metrics"] == saved[split] and got["mask_valid"] is True
    table = capsys.readouterr().out
    assert "recall@20" in table and f"{saved['test']['recall@20']:.4f}" in table
    # Not masking validation items changes the test metrics: the flag is applied.
    main(["eval", "--run", str(mf_run / "model"), "--no-mask-valid", "--out", str(tmp_path / "nomask.json")])
    assert json.loads((tmp_path / "nomask.json").read_text())["metrics"] != saved["test"]


def test_eval_refuses_other_data(mf_run: Path, make_prepared, tmp_path: Path, capsys: pytest.CaptureFixture):
    other = make_prepared(tmp_path / "other", seed=9)
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--run", str(mf_run), "--data", str(other)])
    assert exc.value.code == 2 and "digest" in capsys.readouterr().err


def test_train_reports_bad_config_with_file_line_and_field(clustered_data: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: lightgcn\nmodel_params:\n  n_layers: two\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(clustered_data), "--config", str(bad), "--no-mlflow", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"{bad}:3" in err and "model_params.n_layers" in err
    assert not (tmp_path / "r").exists()


def test_yaml_then_flags(tmp_path: Path):
    f = tmp_path / "c.yaml"
    f.write_text("model: mf\nepochs: 7\nlr: 0.5\nmodel_params: {dim: 8}\n")
    cfg = TrainConfig.from_yaml(f, {"lr": 0.01, "epochs": None, "model_params": {"reg_weight": 0.0}})
    assert (cfg.model, cfg.epochs, cfg.lr) == ("mf", 7, 0.01)
    assert cfg.model_params == {"dim": 8, "reg_weight": 0.0, "init_std": 0.01}


def test_model_training_defaults_apply_unless_set(tmp_path: Path):
    from gatrec.models.base import TUNED_BPR_TRAINING

    assert TrainConfig(model="gat").lr == TUNED_BPR_TRAINING["lr"]
    assert TrainConfig(model="lightgcn").batch_size == TUNED_BPR_TRAINING["batch_size"]
    assert TrainConfig(model="pop").batch_size == TrainConfig.model_fields["batch_size"].default
    f = tmp_path / "c.yaml"
    f.write_text("model: gat\nbatch_size: 512\n")
    cfg = TrainConfig.from_yaml(f, {"lr": 0.02})
    assert (cfg.batch_size, cfg.lr) == (512, 0.02)
    assert TrainConfig.from_yaml(f, {"batch_size": None}).lr == TUNED_BPR_TRAINING["lr"]


def test_train_cli_logs_params_epochs_and_results_to_mlflow(clustered_data: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("GATREC_NO_MLFLOW", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    main(["train", "--data", str(clustered_data), "--model", "mf", "--epochs", "2", "--batch-size", "128",
          "-p", "dim=8", "--experiment", "gatrec-test", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "recall@20" in printed and "best epoch" in printed
    saved = json.loads((out / "metrics.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gatrec-test").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model_params.dim"] == "8" and run.data.params["epochs"] == "2"
    assert run.data.tags["data_digest"] == saved["data"]["digest"] and run.data.tags["seed"] == "0"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert run.data.metrics["test_ndcg_at_20"] == saved["test"]["ndcg@20"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"metrics.json", "config.yaml", "model", "plots"}

    # Inside `mlflow run` (MLFLOW_RUN_ID set) everything goes into that run.
    outer = client.create_run(client.get_experiment_by_name("gatrec-test").experiment_id)
    monkeypatch.setenv("MLFLOW_RUN_ID", outer.info.run_id)
    main(["train", "--data", str(clustered_data), "--model", "pop", "--out", str(tmp_path / "pop")])
    logged = client.get_run(outer.info.run_id)
    assert logged.data.params["model"] == "pop" and "test_recall_at_20" in logged.data.metrics
    assert len(client.search_runs([outer.info.experiment_id])) == 2


def _gatrec(*args: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "gatrec", *args], capture_output=True, text=True, timeout=300)


def test_missing_cuda_is_one_line_exit_2_and_leaves_no_run_folder(clustered_data: Path, tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error path cannot be exercised")
    out = tmp_path / "run"
    proc = _gatrec("train", "--data", str(clustered_data), "--model", "mf", "--epochs", "1", "--device", "cuda",
                   "--no-mlflow", "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--device cuda: this machine has no CUDA device" in proc.stderr
    assert not out.exists()


def test_eval_k_0_is_a_usage_error(mf_run: Path):
    proc = _gatrec("eval", "--run", str(mf_run), "--k", "0", "--no-mlflow")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Invalid value for '--k': 0 is not in the range x>=1" in proc.stderr


def test_help_with_model_lists_its_parameters_and_real_defaults():
    from gatrec import models

    res = CliRunner().invoke(cli, ["train", "--model", "gat", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())  # help text is wrapped
    section = text[text.index("Model parameters of gat"):]
    for key, info in models.get("gat").Config.model_fields.items():
        assert f"-p {key}=" in section
        if info.description:
            assert " ".join(info.description.split())[:30] in section
    assert "-p dim=128" in section and "-p attention_scale=0.01" in section
    # lr / batch size: what each model really trains with (its train_defaults), not only TrainConfig's
    assert "[0.001 (others); mf, lightgcn, gat: 0.005]" in text and "mf, lightgcn, gat: 8192]" in text
    plain = " ".join(CliRunner().invoke(cli, ["train", "--help"]).output.split())
    assert "gatrec train --model NAME --help lists them" in plain


def test_unknown_model_parameter_lists_the_valid_ones(clustered_data: Path, tmp_path: Path):
    from gatrec import models

    proc = _gatrec("train", "--data", str(clustered_data), "--model", "lightgcn", "-p", "n_layer=2",
                   "--no-mlflow", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "model 'lightgcn' has no parameter 'n_layer'; its parameters: " in proc.stderr
    assert ", ".join(models.get("lightgcn").Config.model_fields) in proc.stderr
    assert not (tmp_path / "run").exists()
