"""``mlflow run . -e sweep``: the sweep is a parent run with one nested run per trial, and --register-best
registers the best trial's model and ends in a gate decision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_mlflow_run_sweep_registers_and_gates_the_best(tiny_data: Path, small_space: Path, tmp_path: Path,
                                                       cli_env: dict[str, str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    model_name = "sweep-best"
    cmd = [str(Path(sys.executable).parent / "mlflow"), "run", str(REPO), "-e", "sweep", "--env-manager", "local",
           "--experiment-name", "sweeps", "-P", f"data={tiny_data}", "-P", "model=mf", "-P", f"space={small_space}",
           "-P", "study=mlrun", "-P", f"storage={storage}", "-P", f"out={tmp_path / 'out'}", "-P", "n_trials=3",
           "-P", "threads=1", "-P", "register_best=true", "-P", f"model_name={model_name}"]
    res = subprocess.run(cmd, cwd=tmp_path, env={**cli_env, "MLFLOW_TRACKING_URI": uri, "GIT_PYTHON_REFRESH": "quiet"},
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("sweeps").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1  # the run `mlflow run` made is the sweep's parent
    parent = parents[0]
    assert parent.data.tags["sweep"] == "parent" and parent.info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    study = optuna.load_study(study_name="mlrun", storage=storage)
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [t.number for t in study.trials]
    assert len(children) == len(runs) - 1 == 3

    # The best trial's own run holds the registered model; the gate decided on it.
    best = study.best_trial
    versions = client.search_model_versions(f"name = '{model_name}'")
    assert len(versions) == 1
    mv = versions[0]
    assert mv.run_id == best.user_attrs["mlflow_run_id"]
    assert mv.tags["validation_status"] in ("passed", "rejected")
    assert parent.data.tags["gate_decision"] == mv.tags["validation_status"]
    assert parent.data.tags["registered_version"] == str(mv.version)
    if mv.tags["validation_status"] == "passed":  # no champion yet: judged against popularity
        assert client.get_model_version_by_alias(model_name, "champion").version == mv.version
        assert "promoted to champion" in res.stdout
    else:
        assert "rejected" in res.stdout
