"""scripts/main.sh (what `make main` runs): per-step timings at the end, and a closing hint that names the
run folder of the model that actually trained (not always runs/gat-fused).

Reduced to a tiny synthetic dataset and the popularity model through GATREC_PIPELINE_ARGS (the script's own
knob), in a private MLflow store whose experiment keeps its artefacts in the test's folder.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_main_script_prints_timings_and_names_the_trained_run(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).create_experiment("gatrec", artifact_location=str(tmp_path / "mlruns"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GATREC_"))}
    env.update(MLFLOW_TRACKING_URI=uri, BENTOML_HOME=str(tmp_path / "bentoml"), GATREC_THREADS="1",
               GATREC_PIPELINE_ARGS="-P model=pop -P features=none -P synth_users=100 -P synth_items=40 -P synth_interactions=600")
    work = tmp_path / "work"
    proc = subprocess.run(["bash", str(REPO / "scripts/main.sh"), str(work)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"gatrec eval --run {work.resolve() / 'runs' / 'pop'}" in out
    assert "runs/gat-fused" not in out
    timings = dict(re.findall(r"^  (\S+)\s+([\d.]+)(?:  \(reused\))?$", out, re.M))
    assert {"synth", "prepare", "train", "eval", "register+promote", "total"} <= set(timings), out[-3000:]
    assert "embed" not in timings  # the popularity model reads no item features
    assert float(timings["total"]) >= sum(float(v) for k, v in timings.items() if k != "total") - 0.5
    assert re.search(r"Main job: \d+ s in all", out)
