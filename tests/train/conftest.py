"""Fixtures for the training tests: the small prepared dataset folders of the test kit (tests/kit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit import write_prepared


@pytest.fixture(scope="session")
def clustered_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset with strong cluster structure (shared by the tests: treat as read-only)."""
    return write_prepared(tmp_path_factory.mktemp("clustered") / "data")


@pytest.fixture
def make_prepared():
    return write_prepared
