"""Promotion, rejection, concurrency, rollback and the watcher against a real ``mlflow server``
with a PostgreSQL backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gatrec.errors import GatrecError
from gatrec.registry import audit
from gatrec.registry.policy import Policy
from gatrec.registry.promote import alias_holder, production_versions, promote, rollback
from gatrec.registry.register import register_run
from gatrec.registry.watch import WatchConfig, watch_once

GATREC = [str(Path(sys.executable).parent / "gatrec")]


@pytest.fixture
def server(mlflow_server, use_tracking):
    use_tracking(mlflow_server.url)
    return mlflow_server


def register(make_run, name: str, ndcg: float, recall: float, **kwargs) -> str:
    return str(register_run(make_run(ndcg=ndcg, recall=recall, **kwargs), name).version)


def gatrec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*GATREC, *args], capture_output=True, text=True, timeout=timeout, env=os.environ)


def champion_state(client: MlflowClient, name: str) -> tuple[str | None, list[str]]:
    return alias_holder(client, name), production_versions(client, name)


def test_better_version_is_promoted_and_worse_rejected(server, make_run, model_name: str) -> None:
    client = MlflowClient()
    v1 = register(make_run, model_name, 0.50, 0.60)
    first = promote(v1, model_name)
    assert first.passed and first.previous is None, first.reasons
    assert champion_state(client, model_name) == (v1, [v1])

    v2 = register(make_run, model_name, 0.60, 0.62, seed=1)
    assert promote("candidate", model_name).passed
    assert champion_state(client, model_name) == (v2, [v2])
    assert client.get_model_version(model_name, v1).current_stage == "Archived"
    assert client.get_model_version(model_name, v2).tags["validation_status"] == "passed"
    trail = audit.history(client, model_name)
    assert [(r.decision, r.candidate, r.previous, r.champion, r.actor) for r in trail] == [
        ("passed", v1, None, v1, "cli"), ("passed", v2, v1, v2, "cli")]
    assert trail[1].metrics["candidate.valid.ndcg_at_20"] == pytest.approx(0.60)
    assert trail[1].metrics["reference.valid.ndcg_at_20"] == pytest.approx(0.50)
    assert trail[1].timestamp.startswith("20")

    # Worse on the primary metric, through the CLI: exit 1, reasons printed, champion unchanged.
    v3 = register(make_run, model_name, 0.59, 0.70, seed=2)
    proc = gatrec("promote", "--version", v3, "--name", model_name)
    assert proc.returncode == 1, proc.stderr
    assert "rejected" in proc.stdout and "ndcg@20 0.5900 does not beat champion v2" in proc.stdout
    assert champion_state(client, model_name) == (v2, [v2])
    tags = client.get_model_version(model_name, v3).tags
    assert tags["validation_status"] == "rejected" and "ndcg@20" in tags["rejection_reasons"]
    last = audit.history(client, model_name)[-1]
    assert (last.decision, last.candidate, last.champion) == ("rejected", v3, v2) and last.reasons

    # Promoting the champion again changes nothing and records nothing.
    assert promote(v2, model_name).record is None
    assert len(audit.history(client, model_name)) == 3


def test_first_champion_must_beat_popularity(server, make_run, model_name: str) -> None:
    client = MlflowClient()
    weak = register(make_run, model_name, 0.01, 0.02)
    out = promote(weak, model_name)
    assert not out.passed and "popularity baseline" in out.reasons[0]
    assert champion_state(client, model_name) == (None, [])
    strict = Policy(split="test", min_lift=0.0)
    strong = register(make_run, model_name, 0.9, 0.9)
    assert promote(strong, model_name, strict).passed


def test_simultaneous_promotions_leave_one_champion(server, make_run, model_name: str) -> None:
    client = MlflowClient()
    v1 = register(make_run, model_name, 0.50, 0.60)
    assert promote(v1, model_name).passed
    v2 = register(make_run, model_name, 0.60, 0.60, seed=1)
    v3 = register(make_run, model_name, 0.70, 0.60, seed=2)
    procs = [subprocess.Popen([*GATREC, "promote", "--version", v, "--name", model_name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for v in (v2, v3)]
    results = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 1]), results
    # v3 wins whichever went first; alias and stage agree on it.
    assert champion_state(client, model_name) == (v3, [v3])
    trail = audit.history(client, model_name)
    assert len(trail) == 3
    a, b = trail[1], trail[2]
    # Serialised by the lock: the second decision saw the first one's outcome.
    assert {a.candidate, b.candidate} == {v2, v3} and a.previous == v1 and b.previous == a.champion
    assert not [m for m in client.search_registered_models() if m.name.endswith(".promotion-lock")]


def test_rollback_restores_the_previous_champion(server, make_run, model_name: str) -> None:
    client = MlflowClient()
    v1 = register(make_run, model_name, 0.50, 0.60)
    v2 = register(make_run, model_name, 0.60, 0.60, seed=1)
    assert promote(v1, model_name).passed and promote(v2, model_name).passed
    out = rollback(model_name)
    assert (out.previous, out.champion) == (v2, v1)
    assert champion_state(client, model_name) == (v1, [v1])
    last = audit.history(client, model_name)[-1]
    assert (last.decision, last.candidate, last.previous, last.champion) == ("rollback", v1, v2, v1)
    with pytest.raises(GatrecError, match="no earlier champion"):
        rollback(model_name)
    proc = gatrec("rollback", "--name", model_name)
    assert proc.returncode == 2 and "no earlier champion" in proc.stderr


def test_watcher_reverts_hand_made_transitions(server, make_run, model_name: str) -> None:
    import warnings

    client = MlflowClient()
    v1 = register(make_run, model_name, 0.50, 0.60)
    assert promote(v1, model_name).passed
    worse = register(make_run, model_name, 0.40, 0.60, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(model_name, worse, "Production", archive_existing_versions=True)
    assert production_versions(client, model_name) == [worse]
    proc = gatrec("gate", "watch", "--once", "--name", model_name)
    assert proc.returncode == 0, proc.stderr
    assert f"v{worse} rejected" in proc.stdout
    assert champion_state(client, model_name) == (v1, [v1])
    assert client.get_model_version(model_name, worse).current_stage == "Archived"
    assert client.get_model_version(model_name, worse).tags["validation_status"] == "rejected"
    last = audit.history(client, model_name)[-1]
    assert (last.decision, last.actor, last.candidate, last.champion) == ("rejected", "watcher", worse, v1)
    assert "stage" in last.action

    # An alias moved by hand to a better version while no receiver listened: kept, stage aligned.
    better = register(make_run, model_name, 0.60, 0.60, seed=2)
    client.set_registered_model_alias(model_name, "champion", better)
    outcomes = watch_once(client, WatchConfig(names=[model_name]), Policy())
    assert [(o.version, o.passed) for o in outcomes] == [(better, True)]
    assert champion_state(client, model_name) == (better, [better])
    assert watch_once(client, WatchConfig(names=[model_name, "no-such-model"]), Policy()) == []
