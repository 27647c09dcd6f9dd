"""Servers the tests run for real, shared by every test package (tests/conftest.py loads this plugin), so
each starts once per session: a private PostgreSQL cluster (initdb + pg_ctl in a temp folder, as
``postgres`` via runuser when root) and an ``mlflow server`` on 127.0.0.1 backed by it (its schema migrations
take ~15 s); and the helpers to start, wait for and stop processes."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not come up within {timeout:.0f}s\n{tail}")


def stop_group(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a process started with start_new_session=True, and its children."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


# ---------------------------------------------------------------- PostgreSQL

def _pg_bindir() -> Path | None:
    if env := os.environ.get("GATREC_PG_BIN"):
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database: in GATREC_TEST_POSTGRES_URL's server if set, else in a private cluster."""
    import psycopg2

    dbname = f"gatrec_test_{uuid.uuid4().hex[:8]}"
    if base := os.environ.get("GATREC_TEST_POSTGRES_URL"):
        dsn = base.replace("postgresql+psycopg2://", "postgresql://", 1)
        admin = psycopg2.connect(dsn)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{dbname}"')
        head, _, _ = dsn.partition("?")[0].rpartition("/")
        yield f"{head}/{dbname}".replace("postgresql://", "postgresql+psycopg2://", 1)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()
        return
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; set GATREC_PG_BIN or GATREC_TEST_POSTGRES_URL")
    tmp = Path(tempfile.mkdtemp(prefix="gatrec-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start the test cluster as 'postgres'")
        try:
            pg_user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the test cluster")
        os.chown(tmp, pg_user.pw_uid, pg_user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port, data = free_port(), tmp / "data"
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "postgres.log"), "-w", "-t", "60",
            "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            "start")
        admin = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{dbname}"')
        admin.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{dbname}"
    finally:
        with contextlib.suppress(Exception):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- MLflow

@dataclass
class MlflowServer:
    url: str
    env: dict[str, str]  # what the server runs with (webhook settings)
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1 with the PostgreSQL backend, set up to deliver webhooks locally."""
    from cryptography.fernet import Fernet

    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {
        **os.environ,
        # Webhook secrets are encrypted at rest; a fixed key keeps them readable by every worker.
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",  # see webhooks registered during the session at once
        "MLFLOW_WEBHOOK_REQUEST_MAX_RETRIES": "1",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    log = root / "server.log"
    mlflow_bin = VENV_BIN / "mlflow" if (VENV_BIN / "mlflow").exists() else shutil.which("mlflow")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(mlflow_bin), "server", "--backend-store-uri", postgres_url,
             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 120, proc, log)
        yield MlflowServer(url=url, env=env, log=log)
    finally:
        stop_group(proc, timeout=3)  # nothing to flush: the database is thrown away


@pytest.fixture(name="free_port", scope="session")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture(name="wait_http", scope="session")
def wait_http_fixture() -> Callable[..., None]:
    """``wait_http(url, timeout, proc=None, log=None)``: poll until 200, else fail with the log tail."""
    return wait_http


@pytest.fixture(name="stop_group", scope="session")
def stop_group_fixture() -> Callable[..., None]:
    """``stop_group(proc, timeout=10)`` for processes started with start_new_session=True."""
    return stop_group


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """``spawn(cmd, log=path, env=None)``: a process group stopped (with its children) at teardown."""
    procs: list[subprocess.Popen] = []

    def start(cmd: list[str], *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        env = {**(env or os.environ)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # the venv's gatrec / mlflow
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_group(proc)
