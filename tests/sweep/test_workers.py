"""Several worker processes on one study in a private PostgreSQL cluster, logging to a real ``mlflow server``:
no trial lost or run twice, one nested MLflow run per trial; a worker killed mid-trial loses nothing."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def optuna_pg(postgres_url: str) -> str:
    """A database of its own in the test cluster (Optuna and MLflow would share alembic's version table)."""
    import psycopg2

    dsn = postgres_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    head, _, _ = dsn.rpartition("/")
    name = f"optuna_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"{head}/{name}".replace("postgresql://", "postgresql+psycopg2://", 1)


def _sweep_args(data: Path, space: Path, storage: str, study: str, tmp_path: Path, *extra: str) -> list[str]:
    return ["sweep", "--data", str(data), "--model", "lightgcn", "--space", str(space), "--study", study,
            "--storage", storage, "--out", str(tmp_path / study), "--threads", "1", "--experiment", study, *extra]


def _children(client: MlflowClient, study: str) -> tuple[object, list]:
    runs = client.search_runs([client.get_experiment_by_name(study).experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def test_two_workers_share_one_study(gatrec, tiny_data: Path, small_space: Path, optuna_pg: str, mlflow_server,
                                     tmp_path: Path) -> None:
    res = gatrec(*_sweep_args(tiny_data, small_space, optuna_pg, "two", tmp_path, "--n-trials", "6", "--workers",
                              "2", "--heartbeat", "2"), env={"MLFLOW_TRACKING_URI": mlflow_server.url})
    assert res.returncode == 0, res.stderr[-3000:]
    trials = optuna.load_study(study_name="two", storage=optuna_pg).trials
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert 6 <= len(trials) <= 7  # two workers may both start the last trial
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)  # no trial ran twice

    client = MlflowClient(mlflow_server.url)
    parent, children = _children(client, "two")
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == sorted(t.number for t in trials)
    assert len({r.data.tags["sweep.worker"] for r in children}) == 2  # both processes ran trials
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert {k.removeprefix("best."): v for k, v in parent.data.params.items() if k.startswith("best.")} == {
        k: str(v) for k, v in best.params.items()}
    assert parent.data.metrics["best_valid_ndcg_at_20"] == pytest.approx(best.value)


def test_killed_worker_trial_fails_by_heartbeat_and_is_retried(
        spawn, tiny_data: Path, write_space, optuna_pg: str, mlflow_server, tmp_path: Path,
        cli_env: dict[str, str]) -> None:
    space = write_space({"lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}},
                        {"epochs": 40, "patience": 40, "batch_size": 256, "dim": 8})
    args = _sweep_args(tiny_data, space, optuna_pg, "kill", tmp_path, "--n-trials", "3", "--heartbeat", "1",
                       "--pruner", "none")
    env = {**cli_env, "MLFLOW_TRACKING_URI": mlflow_server.url}
    first = spawn(["gatrec", *args], log=tmp_path / "first.log", env=env)

    def running_trial() -> optuna.trial.FrozenTrial | None:
        try:
            trials = optuna.load_study(study_name="kill", storage=optuna_pg).trials
        except KeyError:  # not created yet
            return None
        return next((t for t in trials if t.state == TrialState.RUNNING and len(t.intermediate_values) >= 2), None)

    deadline = time.monotonic() + 180
    while (victim := running_trial()) is None:
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.5)
    second = spawn(["gatrec", *args], log=tmp_path / "second.log", env=env)
    os.killpg(first.pid, signal.SIGKILL)  # mid-trial: no chance to tell the storage or MLflow
    assert second.wait(240) == 0, (tmp_path / "second.log").read_text()[-3000:]

    trials = optuna.load_study(study_name="kill", storage=optuna_pg).trials
    dead = next(t for t in trials if t.number == victim.number)
    assert dead.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead.params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 3
    # The retry resumed from the dead attempt's checkpoint, in the same run folder.
    assert f"trial-{victim.number:04d}" in retries[0].user_attrs["run_dir"]
    assert "resuming" in (tmp_path / "second.log").read_text()

    client = MlflowClient(mlflow_server.url)
    _, children = _children(client, "kill")
    assert len(children) == len(trials)
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert by_number[victim.number].info.status == "FAILED"
    assert by_number[victim.number].data.tags["optuna.state"] == "FAIL"
    assert by_number[retries[0].number].data.tags["optuna.retry_of"] == str(victim.number)
