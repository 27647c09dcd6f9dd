"""The README's cloud walk-through, run as written: its bash block executes with every ``gatrec cloud``
command as a ``--dry-run`` (the requests it prints are checked) and every other ``gatrec`` command parsed
by the real CLI (tests/cloud/parse_cli.py). terraform, gcloud, buildah and curl cannot reach a cloud here:
they are shell functions that record their arguments and print sample values for the `$(…)` outputs, so
the commands' flow (which variable feeds which command) is the README's own."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import REPO

HEADING = "## From an empty GCP project to a served champion"
MLFLOW_URL = "https://gatrec-mlflow-abc123-uc.a.run.app"
STUBS = f"""
set -euo pipefail
record() {{ printf '%s\\n' "$*" >> "$CALLS"; }}
terraform() {{ record terraform "$@"; case "$*" in
  *"output -raw mlflow_url"*) echo {MLFLOW_URL};;
  *"output -raw network"*) echo projects/123456/global/networks/gatrec;;
  *"output -raw optuna_storage"*) echo postgresql://gatrec@10.20.0.3:5432/optuna;; esac; }}
gcloud() {{ record gcloud "$@"; case "$*" in
  *print-identity-token*) echo id-token-sample;;
  *"secrets versions access"*) echo db-password-sample;;
  *"run services describe"*) echo https://gatrec-xyz789-uc.a.run.app;; esac; }}
buildah() {{ record buildah "$@"; }}
curl() {{ record curl "$@"; }}
gatrec() {{ record gatrec "$@"
  if [ "$1" = cloud ]; then "$PY" -m gatrec "$@" --dry-run >> "$OUT"; echo "=== end" >> "$OUT"
  else "$PY" "$PARSE" "$@" >> "$OUT"; fi; }}
"""


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    assert HEADING in text
    section = text.split(HEADING, 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_readme_cloud_commands_run_as_dry_runs(tmp_path: Path, monkeypatch) -> None:
    block = readme_block()
    calls, out = tmp_path / "calls.txt", tmp_path / "out.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATREC_", "GOOGLE_", "MLFLOW_"))}
    env |= {"CALLS": str(calls), "OUT": str(out), "PY": sys.executable,
            "PARSE": str(Path(__file__).with_name("parse_cli.py")), "HOME": str(tmp_path),
            "BENTOML_HOME": str(tmp_path / "bentoml"), "NO_GCE_CHECK": "True"}
    proc = subprocess.run(["bash", "-c", STUBS + block], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recorded = calls.read_text().splitlines()
    # Every gatrec command of the block ran (none skipped by an earlier failure).
    written = [line for line in block.splitlines() if line.startswith("gatrec ")]
    ran = [line for line in recorded if line.startswith("gatrec ")]
    assert len(ran) == len(written) == 12

    printed = out.read_text()
    jobs = [json.loads(chunk.split("\n", 1)[1]) for chunk in printed.split("=== end\n")
            if chunk.startswith("POST ") and "/customJobs\n" in chunk.split("\n", 2)[0] + "\n"]
    entries = [j["labels"]["gatrec-entry"] for j in jobs]
    assert entries == ["prepare", "embed", "train", "sweep"]
    project = "my-gatrec-project"
    for job in jobs:
        (c,) = {json.dumps(p["containerSpec"]) for p in job["jobSpec"]["workerPoolSpecs"]}
        c = json.loads(c)
        assert c["imageUri"] == f"us-central1-docker.pkg.dev/{project}/gatrec/train:latest"
        assert c["command"] + c["args"][:6] == ["mlflow", "run", ".", "-e", job["labels"]["gatrec-entry"],
                                                "--env-manager", "local"]
        env_vars = {e["name"]: e["value"] for e in c["env"]}
        assert env_vars["MLFLOW_TRACKING_URI"] == MLFLOW_URL
        assert env_vars["MLFLOW_TRACKING_AUTH"] == "gatrec-google-id-token"
    prepare, embed, train, sweep = jobs
    assert prepare["jobSpec"]["workerPoolSpecs"][0]["machineSpec"] == {"machineType": "n2-standard-8"}
    assert train["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] == "NVIDIA_L4"
    assert f"out=gs://{project}-gatrec-artifacts/runs/office-gat" in \
        train["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]
    assert [p["replicaCount"] for p in sweep["jobSpec"]["workerPoolSpecs"]] == ["1", "3"]
    assert sweep["jobSpec"]["network"] == "projects/123456/global/networks/gatrec"
    assert "storage=postgresql://gatrec@10.20.0.3:5432/optuna" in \
        sweep["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]

    registry = f"us-central1-docker.pkg.dev/{project}/gatrec"
    assert f"buildah push {registry}/train:latest docker://{registry}/train:latest" in printed
    assert f"buildah push {registry}/mlflow:3.17.2 docker://{registry}/mlflow:3.17.2" in printed
    assert f"buildah tag gatrec:latest {registry}/gatrec:latest" in printed
    assert f"POST https://run.googleapis.com/v2/projects/{project}/locations/us-central1/services?serviceId=gatrec" \
        in printed
    assert ":setIamPolicy" not in printed  # private
    for name in ("register", "promote", "bento build", "bento containerize"):
        assert f"parsed gatrec {name}" in printed

    # The other tools were called as written, in order.
    tools = [shlex.split(line)[:3] for line in recorded if not line.startswith("gatrec ")]
    assert ["terraform", "-chdir=infra", "apply"] in tools
    assert any(line.startswith("buildah bud -f docker/train.Dockerfile") for line in recorded)
    assert (REPO / "docker" / "train.Dockerfile").exists() and (REPO / "docker" / "mlflow.Dockerfile").exists()
    assert recorded[-1].startswith("curl ") and recorded[-1].endswith("https://gatrec-xyz789-uc.a.run.app/recommend")
