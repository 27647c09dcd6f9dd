"""Suite-wide settings: CLI steps do not log to MLflow unless a test asks for it (the tracking tests
unset GATREC_NO_MLFLOW and point MLFLOW_TRACKING_URI at a store in their tmp_path), so no test writes
into MLflow's default store in the current folder; torch runs one intra-op thread in-process.
Data for tests: tests/kit.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_default_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATREC_NO_MLFLOW", "1")


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
