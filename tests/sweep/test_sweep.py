"""A sweep on an embedded sqlite storage: seeded sequences, pruning inside the real training loop, the
sweep's MLflow run with one nested run per trial, and resuming."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from gatrec.sweep.run import run_sweep
from gatrec.sweep.study import SweepSettings


def _settings(data: Path, space: Path, root: Path, name: str, **kw) -> SweepSettings:
    values = {"data": str(data), "model": "lightgcn", "space": str(space), "study": name,
              "storage": f"sqlite:///{root / 'optuna.db'}", "out": str(root / name), "n_trials": 4,
              "overrides": {"seed": kw.get("seed", 0)}, "threads": 1, "mlflow": False, "startup_trials": 2,
              "heartbeat": 5, **kw}
    return SweepSettings(**values)


def _params(settings: SweepSettings) -> list[dict]:
    study = optuna.load_study(study_name=settings.study, storage=settings.storage)
    return [t.params for t in sorted(study.trials, key=lambda t: t.number)]


def test_same_seed_one_worker_sqlite_same_trial_params(tiny_data: Path, small_space: Path, tmp_path: Path) -> None:
    runs = [_settings(tiny_data, small_space, tmp_path, f"seed{seed}-{i}", seed=seed)
            for i, seed in enumerate((0, 0, 1))]
    for s in runs:
        info = run_sweep(s)
        assert info["n_trials"] == 4 and (Path(s.out) / "best.json").is_file()
    first, again, other = (_params(s) for s in runs)
    assert first == again
    assert first[0]["lr"] == 0.005  # trial 0: the untuned settings (lightgcn's dim 64 is outside the space)
    assert first != other


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def test_pruned_trial_keeps_its_partial_curve_and_runs_nest_under_the_sweep(
        tiny_data: Path, write_space, tmp_path: Path, tracking: str) -> None:
    # lr 5e-3 (the default, trial 0) learns; lr 1e-6 does not, and is pruned after the warm-up epoch.
    space = write_space({"lr": [0.005, 1.0e-6]}, {"epochs": 6, "batch_size": 512, "patience": 6})
    settings = _settings(tiny_data, space, tmp_path, "prune", n_trials=5, mlflow=True, startup_trials=1,
                         prune_warmup=1, experiment="sweep-test")
    info = run_sweep(settings)
    study = optuna.load_study(study_name="prune", storage=settings.storage)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, [(t.number, t.state, t.params) for t in study.trials]
    assert all(t.params["lr"] == 1.0e-6 for t in pruned)
    assert info["best"]["params"] == {"lr": 0.005} and info["states"]["PRUNED"] == len(pruned)

    client = MlflowClient()
    exp = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in children) == [t.number for t in study.trials]
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    for t in study.trials:
        run = by_number[t.number]
        assert run.data.tags["optuna.state"] == t.state.name and run.info.status == "FINISHED"
        curve = client.get_metric_history(run.info.run_id, "valid_ndcg_at_20")
        assert sorted(m.step for m in curve) == sorted(t.intermediate_values)
        assert {m.step: m.value for m in curve} == pytest.approx(t.intermediate_values)
    assert all(len(t.intermediate_values) < 6 for t in pruned)  # stopped before the last epoch

    assert parent.data.params["best.lr"] == "0.005"
    assert parent.data.tags["best_trial"] == str(info["best"]["number"])
    assert parent.data.metrics["best_valid_ndcg_at_20"] == pytest.approx(study.best_value)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/intermediate_values.png"} <= artifacts

    # Resumed with a larger budget: the same study and parent run, only the missing trials run.
    info = run_sweep(settings.model_copy(update={"n_trials": 6}))
    assert info["n_trials"] == 6
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.run_id for r in runs if r.data.tags.get("sweep") == "parent"] == [parent.info.run_id]
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]) == 6


def test_a_study_of_another_model_is_not_joined(tiny_data: Path, small_space: Path, tmp_path: Path) -> None:
    from gatrec.errors import GatrecError

    run_sweep(_settings(tiny_data, small_space, tmp_path, "shared", n_trials=1))
    with pytest.raises(GatrecError, match="differs in: model"):
        run_sweep(_settings(tiny_data, small_space, tmp_path, "shared", n_trials=1, model="mf"))


def test_trials_with_other_knn_k_leave_the_feature_folder_alone(write_space, tmp_path: Path) -> None:
    from tests.kit import write_features, write_prepared

    data = write_prepared(tmp_path / "featured")
    write_features(data, k=5)
    before = {p.name: p.read_bytes() for p in (data / "features").rglob("*") if p.is_file()}
    space = write_space({"knn_k": [3, 5, 7]}, {"features": "text", "dim": 8, "epochs": 2, "batch_size": 512})
    settings = _settings(data, space, tmp_path, "knn", model="gat", n_trials=3, startup_trials=3)
    run_sweep(settings)
    study = optuna.load_study(study_name="knn", storage=settings.storage)
    assert len({t.params["knn_k"] for t in study.trials}) >= 2 and all(
        t.state == TrialState.COMPLETE for t in study.trials)
    after = {p.name: p.read_bytes() for p in (data / "features").rglob("*") if p.is_file()}
    assert after == before
