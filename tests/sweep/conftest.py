"""Fixtures for the sweep tests: a tiny prepared dataset (synthesised, then `prepare`d), small space files,
a runner for the ``gatrec`` CLI as a separate process (the PostgreSQL cluster and the ``mlflow server``
come from tests/servers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 users, 80 items, clustered tastes: an epoch of any model takes a fraction of a second."""
    from gatrec.data.prepare import prepare_dataset
    from gatrec.data.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("sweep-data")
    synthesize(SynthConfig(users=150, items=80, interactions=2500, clusters=4, images=False), root / "raw")
    return prepare_dataset(root / "raw", root / "data", split="mmrec", seed=0)


@pytest.fixture
def write_space(tmp_path: Path) -> Callable[..., Path]:
    """``write_space(params, fixed=None, name="space.yaml")`` -> the YAML file."""

    def write(params: dict, fixed: dict | None = None, name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"params": params, "fixed": fixed or {}}, sort_keys=False))
        return path

    return write


# lr and dim searched, a few epochs: a trial takes ~1-2 s on the tiny data.
SMALL_PARAMS = {"lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}, "dim": [8, 16]}
SMALL_FIXED = {"epochs": 4, "batch_size": 512}


@pytest.fixture
def small_space(write_space: Callable[..., Path]) -> Path:
    return write_space(SMALL_PARAMS, SMALL_FIXED)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false", "OMP_NUM_THREADS": "1"}
    for key in ("GATREC_NO_MLFLOW", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(key, None)
    return env


@pytest.fixture
def gatrec(tmp_path: Path, cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """``gatrec(*args, env=None, timeout=240)``: the CLI in its own process, in tmp_path."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "gatrec"), *args], cwd=tmp_path, env={**cli_env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    return run
