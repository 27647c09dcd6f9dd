"""The registry subcommands end to end on an embedded SQLite store: output, exit codes, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

GATREC = str(Path(sys.executable).parent / "gatrec")


def gatrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GATREC, *args], capture_output=True, text=True, timeout=180, env=os.environ)


@pytest.mark.parametrize("cmd", [["register"], ["promote"], ["rollback"], ["gate", "serve"], ["gate", "watch"],
                                 ["gate", "register-webhook"]])
def test_help_has_an_example(cmd: list[str]) -> None:
    out = gatrec(*cmd, "--help")
    assert out.returncode == 0 and "Example" in out.stdout and "gatrec " in out.stdout


def test_register_and_promote_from_the_command_line(sqlite_uri: str, use_tracking, make_run, model_name: str,
                                                    tmp_path: Path) -> None:
    use_tracking(sqlite_uri)
    run = make_run(ndcg=0.6, recall=0.7)
    reg = gatrec("register", "--run", str(run), "--name", model_name)
    assert reg.returncode == 0, reg.stderr
    assert f"registered {model_name} v1" in reg.stdout

    bad = tmp_path / "policy.yaml"
    bad.write_text("split: valid\nsplti: test\n")
    out = gatrec("promote", "--version", "candidate", "--name", model_name, "--policy", str(bad))
    assert out.returncode == 2 and f"{bad}:2, field 'splti'" in out.stderr

    missing = gatrec("promote", "--version", "7", "--name", model_name)
    assert missing.returncode == 2 and "has no version 7" in missing.stderr

    good = tmp_path / "lenient.yaml"
    good.write_text("split: test\nmin_lift: 0.0\nguard_metrics: {}\nrequired_metrics: [ndcg@20]\n")
    ok = gatrec("promote", "--version", "candidate", "--name", model_name, "--policy", str(good))
    assert ok.returncode == 0, ok.stderr
    assert f"{model_name} v1 promoted to champion (previous: none)" in ok.stdout
    assert str(MlflowClient().get_model_version_by_alias(model_name, "champion").version) == "1"
