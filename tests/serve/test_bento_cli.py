"""``gatrec bento build`` errors: one line naming what is wrong, no traceback; re-import is reused."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("uri", "message"), [
    ("gatrec@champion", "expected models:/NAME@ALIAS"),
    ("models:/no-such-model@champion", "models:/no-such-model@champion"),
])
def test_bad_model_uri_is_one_line(champion, uri: str, message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "gatrec", "bento", "build", "--model-uri", uri,
                           "--out", str(champion.work / "bad.json")], env=champion.env, cwd=champion.work,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (champion.work / "bad.json").exists()


def test_pipeline_bento_step_follows_the_champion() -> None:
    from gatrec.workflow import PipelineConfig, bento_step

    cfg = PipelineConfig(model_name="gatrec-x")
    assert bento_step(cfg, None) is None
    one, two = bento_step(cfg, "1"), bento_step(cfg, "2")
    assert one.params["model_uri"] == "models:/gatrec-x/1" and one.output.name == "bento.json"
    assert one.key("code") == bento_step(cfg, "1").key("code") != two.key("code")
    assert {p.name for p in one.inputs} == {"service.py", "bentofile.yaml"}
