"""The pipeline end to end through MLproject entry points, and its step cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from gatrec.workflow import PipelineConfig, Step, content_digest, plan

REPO = Path(__file__).resolve().parents[2]


def test_step_key_changes_with_params_upstream_and_input(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "interactions.csv").write_text("user_id,item_id\nu,i\n")
    a = Step("prepare", {"seed": 0}, tmp_path / "out", inputs=[raw])
    key = a.key("code")
    assert key == Step("prepare", {"seed": 0}, tmp_path / "out", inputs=[raw]).key("code")
    assert key != Step("prepare", {"seed": 1}, tmp_path / "out", inputs=[raw]).key("code")
    assert key != a.key("other code")
    (raw / "interactions.csv").write_text("user_id,item_id\nu,j\n")
    assert key != a.key("code")
    b = Step("train", {"x": 1}, tmp_path / "run", after=[a])
    before = b.key("code")
    (raw / "interactions.csv").write_text("user_id,item_id\nu,k\n")
    assert b.key("code") != before  # a change upstream reaches every later step


def test_content_digest_ignores_hidden_files(tmp_path):
    (tmp_path / "a.csv").write_text("x")
    d = content_digest(tmp_path)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "junk").write_text("y")
    assert content_digest(tmp_path) == d
    (tmp_path / "b.csv").write_text("z")
    assert content_digest(tmp_path) != d


def test_plan_skips_embed_without_features(tmp_path):
    names = [s.name for s in plan(PipelineConfig(work=tmp_path, model="lightgcn", features="none"))]
    assert names == ["synth", "prepare", "train", "eval"]
    names = [s.name for s in plan(PipelineConfig(work=tmp_path, input=tmp_path, model="gat", features="text"))]
    assert names == ["prepare", "embed", "train", "eval"]


def test_a_model_without_item_features_ignores_the_default_features(tmp_path):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        steps = plan(PipelineConfig(work=tmp_path, model="pop"))  # with the default --features fused
    assert [s.name for s in steps] == ["synth", "prepare", "train", "eval"]
    train = steps[2]
    assert train.params["features"] == "none" and train.output.name == "pop"
    assert [e["model"] for e in logs if e["event"].startswith("features ignored")] == ["pop"]
    gat = plan(PipelineConfig(work=tmp_path, model="gat"))
    assert gat[3].params["features"] == "fused" and gat[3].output.name == "gat-fused"


def test_the_models_with_features_are_those_whose_config_has_a_features_choice():
    from gatrec import models
    from gatrec.workflow import FEATURE_MODELS

    assert {n for n in models.names() if "features" in models.get(n).Config.model_fields} == FEATURE_MODELS


def test_the_train_step_of_a_pop_pipeline_runs(tmp_path):
    """`gatrec pipeline --model pop` failed at its train step (issue 17): the plan passed the default
    --features fused to a model without features. The plan's train step, run as its MLproject entry point
    runs it, on a small prepared folder."""
    import shlex

    import yaml

    from tests.kit import write_prepared

    train = next(s for s in plan(PipelineConfig(work=tmp_path / "work", model="pop")) if s.name == "train")
    write_prepared(train.params["data"], n_users=40, n_items=20, per_user=6)
    entry = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]["train"]
    params = {k: v["default"] for k, v in entry["parameters"].items()} | train.params
    argv = shlex.split(entry["command"].format(**{k: str(v) for k, v in params.items()}))
    assert argv[:3] == ["python", "-m", "gatrec"]
    env = {**os.environ, "GATREC_NO_MLFLOW": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (train.output / "metrics.json").is_file()


@pytest.mark.slow
def test_pipeline_runs_promotes_and_reuses_steps(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k != "GATREC_NO_MLFLOW"}, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "GIT_PYTHON_REFRESH": "quiet", "BENTOML_HOME": str(tmp_path / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "gatrec", "pipeline", "--work", str(tmp_path / "work"), "--model", "lightgcn",
           "--features", "none", "--epochs", "40", "--fail-on-reject"]
    small = ["--synth-users", "400", "--synth-items", "160", "--synth-interactions", "8000"]
    first = subprocess.run(cmd + small, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "passed" in first.stdout and "champion is v1" in first.stdout
    assert "bentoml serve gatrec:" in first.stdout and (tmp_path / "work" / "bento.json").is_file()

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("gatrec")
    steps = lambda: sorted(r.data.tags["gatrec.step"] for r in client.search_runs(  # noqa: E731
        [exp.experiment_id], "tags.`gatrec.step` != ''"))
    assert steps() == ["bento", "eval", "prepare", "synth", "train"]
    assert str(client.get_model_version_by_alias("gatrec", "champion").version) == "1"
    assert client.get_model_version("gatrec", "1").current_stage == "Production"

    second = subprocess.run(cmd + small, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stderr.count("step reused") >= 6  # synth, prepare, train, eval, register, bento
    assert steps() == ["bento", "eval", "prepare", "synth", "train"]  # no new step runs
    assert len(client.search_model_versions("name = 'gatrec'")) == 1
    mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_a_step_whose_output_lost_a_file_is_run_again(tmp_path, monkeypatch):
    """A killed embed can leave its folder without features.json: the step must not be reused then."""
    from gatrec.workflow import Pipeline

    monkeypatch.delenv("GATREC_NO_MLFLOW", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")
    monkeypatch.chdir(tmp_path)
    cfg = PipelineConfig(work=tmp_path / "work", model="gat", features="text", synth_users=80, synth_items=40,
                         synth_interactions=700, epochs=1)
    pipe = Pipeline(cfg)
    parent = pipe.client.create_run(pipe._experiment_id(), run_name="pipeline").info.run_id
    synth, prepare, embed = plan(cfg)[:3]
    assert embed.name == "embed"
    ran = {s.name: pipe.run_step(s, parent) for s in (synth, prepare, embed)}
    assert pipe.run_step(embed, parent) == ran["embed"]  # complete and unchanged: reused
    manifest = embed.output / "features.json"
    manifest.unlink()
    again = pipe.run_step(embed, parent)
    assert again != ran["embed"] and manifest.is_file()  # incomplete: run again, output whole
    assert pipe.run_step(prepare, parent) == ran["prepare"]
    (prepare.output / "train.parquet").write_bytes(b"")  # damaged (other size): not reused either
    assert pipe.run_step(prepare, parent) != ran["prepare"]
    mlflow.set_tracking_uri(None)
