"""Suite-wide settings: CLI steps do not log to MLflow unless a test asks for it (the tracking tests
unset GATREC_NO_MLFLOW and point MLFLOW_TRACKING_URI at a store in their tmp_path), so no test writes
into MLflow's default store in the current folder; torch runs one intra-op thread in-process.
Data for tests: tests/kit.py; servers: tests/servers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.servers"]  # PostgreSQL and mlflow server, once per session for every package


@pytest.fixture(autouse=True)
def _no_default_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATREC_NO_MLFLOW", "1")


@pytest.fixture(autouse=True)
def _mlflow_environment_restored() -> Iterator[None]:
    """MLflow's in-process project runs and start_run read and set MLFLOW_* variables (experiment id, run
    id); what a test leaves there would steer the next test's CLI subprocesses, so each test's are undone."""
    import os

    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for key in [k for k in os.environ if k.startswith("MLFLOW_") and k not in before]:
        del os.environ[key]
    os.environ.update(before)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The test tensors are tiny: thread hand-offs cost more than they save (10x more on a loaded machine).
    Only when torch is loaded already: tests that never touch it do not pay for importing it."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
