"""Registry edges: the champion's tags after a rollback say why it is champion, and a promotion killed
while it holds the lock (SIGKILL, a real process) does not block the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gatrec.errors import GatrecError
from gatrec.registry.lock import PromotionLock
from gatrec.registry.promote import alias_holder, promote, rollback
from gatrec.registry.register import register_run

GATREC = [str(Path(sys.executable).parent / "gatrec")]

HOLD = """
import functools, sys, time
from gatrec.registry import promote as p

# An expiry far beyond the next promote's 60 s lock timeout: only the dead-holder rule can free it in time.
p.PromotionLock = functools.partial(p.PromotionLock, ttl_s=3600)

def hold(*args, **kwargs):  # the gate step of a real promote, stalled while the lock is held
    print("holding", flush=True)
    time.sleep(300)

p.gate_and_apply = hold
p.promote(sys.argv[1], sys.argv[2], actor="stalled")
"""


@pytest.fixture
def store(sqlite_uri, use_tracking):
    use_tracking(sqlite_uri)
    return sqlite_uri


def register(make_run, name: str, ndcg: float, recall: float, **kwargs) -> str:
    return str(register_run(make_run(ndcg=ndcg, recall=recall, **kwargs), name).version)


def test_rollback_target_loses_stale_rejection_tags(store, make_run, model_name: str) -> None:
    client = MlflowClient()
    v1 = register(make_run, model_name, 0.50, 0.60)
    v2 = register(make_run, model_name, 0.60, 0.62, seed=1)
    assert promote(v1, model_name).passed and promote(v2, model_name).passed
    assert not promote(v1, model_name).passed  # v1 gated again against v2: rejected, with reasons
    assert client.get_model_version(model_name, v1).tags["validation_status"] == "rejected"

    rollback(model_name)
    assert alias_holder(client, model_name) == v1
    tags = client.get_model_version(model_name, v1).tags
    assert tags["validation_status"] == "rollback"
    assert tags["champion_reason"] == f"restored by rollback from v{v2} (cli)"
    assert "rejection_reasons" not in tags
    assert client.get_model_version(model_name, v2).tags["champion_reason"].startswith("passed the promotion gate")


def _start_holder(version: str, name: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, version, name], stdout=subprocess.PIPE, text=True,
                            env=os.environ)
    for line in proc.stdout:
        if line.strip() == "holding":
            return proc
    raise AssertionError(f"holder exited with {proc.wait()}")


def test_killed_holder_is_taken_over_at_once(store, make_run, model_name: str) -> None:
    v1 = register(make_run, model_name, 0.50, 0.60)
    holder = _start_holder(v1, model_name)
    try:
        # While it lives, the lock is refused, naming the holder.
        with pytest.raises(GatrecError, match=rf"held by stalled@\S+:{holder.pid}:\w+ \(expires in 3\d\d\ds\)"):
            PromotionLock(MlflowClient(), model_name, actor="test", timeout_s=1.0).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    t0 = time.monotonic()
    proc = subprocess.run([*GATREC, "promote", "--version", v1, "--name", model_name], capture_output=True,
                          text=True, timeout=120, env=os.environ)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert "promoted to champion" in proc.stdout
    assert "holder process is gone" in proc.stderr
    assert seconds < 120, seconds  # (the process itself; the lock would have held it for an hour)
    assert alias_holder(MlflowClient(), model_name) == v1
