"""One champion and one real ``bentoml serve`` for the whole serving suite.

The champion is made the way a user makes it: a run folder (real random embeddings, as in the
registry tests), then ``gatrec register``, ``gatrec promote`` and ``gatrec bento build`` as subprocesses
against a private SQLite tracking store and BentoML home, so nothing leaks into this process's MLflow
or BentoML settings. The built Bento is served by ``bentoml serve`` on a free 127.0.0.1 port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.kit import make_run_dir
from tests.servers import free_port

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 90
MODEL_NAME = "gatrec-serve-test"


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 180) -> str:
    proc = subprocess.run([sys.executable, "-m", "gatrec", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"gatrec {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


@dataclass
class Champion:
    run: Path
    env: dict[str, str]
    tracking_uri: str
    bento_tag: str
    bentoml_home: Path
    work: Path

    def pyfunc(self):
        """The registered champion loaded as MLflow would serve it, and its registry version."""
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        mv = client.get_model_version_by_alias(MODEL_NAME, "champion")
        with pytest.MonkeyPatch.context() as mp:  # env only: no process-wide set_tracking_uri
            mp.setenv("MLFLOW_TRACKING_URI", self.tracking_uri)
            mp.chdir(self.work)
            return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{mv.version}"), mv


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    work = tmp_path_factory.mktemp("serve")
    run = make_run_dir(work, ndcg=0.6, recall=0.7, bias=True, seed=3)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "BENTOML_HOME": str(work / "bentoml"),
           "BENTOML_DO_NOT_TRACK": "true", "GATREC_NO_MLFLOW": "1", "OMP_NUM_THREADS": "1",
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           # the build must not need a package index (lock_packages: false)
           "UV_OFFLINE": "1", "PIP_NO_INDEX": "1"}
    run_cli(["register", "--run", str(run), "--name", MODEL_NAME], env, work)
    run_cli(["promote", "--version", "candidate", "--name", MODEL_NAME], env, work)
    out = run_cli(["bento", "build", "--model-uri", f"models:/{MODEL_NAME}@champion", "--name", "gatrec"],
                  env, work)
    tag = re.search(r"built Bento (\S+)", out)
    assert tag, out
    return Champion(run, env, uri, tag.group(1), work / "bentoml", work)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def start_server(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=cwd,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.25)
    _stop(proc)
    raise RuntimeError(f"{' '.join(cmd)} not ready within {STARTUP_TIMEOUT}s:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="session")
def server(champion: Champion) -> Iterator[str]:
    """Base URL of ``bentoml serve <the built Bento>`` on 127.0.0.1."""
    proc, url = start_server([str(VENV_BIN / "bentoml"), "serve", champion.bento_tag], champion.env,
                             champion.work, champion.work / "bentoml-serve.log")
    try:
        yield url
    finally:
        _stop(proc)

