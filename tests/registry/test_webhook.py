"""A champion alias set by hand (as the MLflow UI does) is gated through a real webhook delivery
from ``mlflow server`` (PostgreSQL backend) to ``gatrec gate serve`` on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient

from gatrec.registry import audit
from gatrec.registry.promote import alias_holder, production_versions, promote
from gatrec.registry.register import register_run

GATREC = str(Path(sys.executable).parent / "gatrec")
SECRET = "test-secret-" + uuid.uuid4().hex


def wait_until(check: Callable[[], bool], timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return check()


@pytest.fixture(scope="module")
def gate(mlflow_server, tmp_path_factory: pytest.TempPathFactory, free_port, wait_http, stop_group):
    """``gatrec gate serve`` guarding one model, registered as the server's webhook (removed after).

    Yields (receiver url, receiver log, guarded model name)."""
    name, root = f"gatrec-hook-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("gate")
    port, log = free_port(), root / "gate.log"
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        proc = subprocess.Popen([GATREC, "gate", "serve", "--port", str(port), "--secret", SECRET, "--name", name,
                                 "--tracking-uri", mlflow_server.url], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_http(f"{url}health", 90, proc, log)
        hook = subprocess.run([GATREC, "gate", "register-webhook", "--url", url, "--secret", SECRET,
                               "--webhook-name", f"gate-{name}", "--test", "--tracking-uri", mlflow_server.url],
                              capture_output=True, text=True, timeout=120)
        assert hook.returncode == 0, hook.stderr
        assert "test delivery: HTTP 200" in hook.stdout  # MLflow reached the receiver; the signature held
        client = MlflowClient(mlflow_server.url)
        hook_id = next(w.webhook_id for w in client.list_webhooks() if w.name == f"gate-{name}")
        time.sleep(1.5)  # the server caches its webhook list for MLFLOW_WEBHOOK_CACHE_TTL=1 s
        yield url, log, name
        client.delete_webhook(hook_id)
    finally:
        stop_group(proc, timeout=3)


@pytest.fixture
def server(mlflow_server, use_tracking):
    use_tracking(mlflow_server.url)
    return mlflow_server


def signed(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    delivery, stamp = str(uuid.uuid4()), str(int(ts if ts is not None else time.time()))
    mac = hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"X-MLflow-Delivery-Id": delivery, "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": "v1," + base64.b64encode(mac).decode(), "Content-Type": "application/json"}


def test_alias_set_by_hand_is_gated_through_the_webhook(gate, server, make_run) -> None:
    url, log, model_name = gate
    client = MlflowClient()
    v1 = str(register_run(make_run(ndcg=0.50, recall=0.60), model_name).version)
    assert promote(v1, model_name).passed
    worse = str(register_run(make_run(ndcg=0.45, recall=0.60, seed=1), model_name).version)

    def decided(version: str) -> bool:  # the audit record is the gate's last step
        return audit.history(client, model_name)[-1].candidate == version

    client.set_registered_model_alias(model_name, "champion", worse)  # what the UI does
    assert wait_until(lambda: decided(worse)), log.read_text()[-3000:]
    assert alias_holder(client, model_name) == v1 and production_versions(client, model_name) == [v1]
    tags = client.get_model_version(model_name, worse).tags
    assert tags["validation_status"] == "rejected" and "ndcg@20" in tags["rejection_reasons"]
    last = audit.history(client, model_name)[-1]
    assert (last.decision, last.actor, last.candidate, last.champion) == ("rejected", "webhook", worse, v1)
    assert "reverted" in last.action

    better = str(register_run(make_run(ndcg=0.60, recall=0.60, seed=2), model_name).version)
    client.set_registered_model_alias(model_name, "champion", better)
    assert wait_until(lambda: decided(better)), log.read_text()[-3000:]
    assert alias_holder(client, model_name) == better and production_versions(client, model_name) == [better]
    last = audit.history(client, model_name)[-1]
    assert (last.decision, last.actor, last.candidate, last.previous) == ("passed", "webhook", better, v1)
    time.sleep(1.0)  # the gate's own alias moves come back as events: they must not add records
    assert len(audit.history(client, model_name)) == 3


def test_receiver_refuses_unsigned_bad_and_stale_deliveries(gate) -> None:
    url, _, model_name = gate
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "x",
                       "data": {"name": model_name, "alias": "champion", "version": "1"}}).encode()
    assert requests.post(url, data=body, timeout=10).status_code == 401
    assert requests.post(url, data=body, headers=signed(body, secret="wrong"), timeout=10).status_code == 401
    assert requests.post(url, data=body, headers=signed(body, ts=int(time.time()) - 3600), timeout=10).status_code == 401
    tampered = signed(body)
    assert requests.post(url, data=body.replace(b'"1"', b'"2"'), headers=tampered, timeout=10).status_code == 401
    other = json.dumps({"entity": "model_version_alias", "action": "created",
                        "data": {"name": model_name, "alias": "candidate", "version": "1"}}).encode()
    reply = requests.post(url, data=other, headers=signed(other), timeout=10)
    assert reply.status_code == 200 and reply.json()["status"] == "ignored"
