"""README's "Typical session on real data" runs as written, in order, in a folder where the make-main path
already made a champion of another dataset (issue: its last step used to fail, the two datasets competing
for one champion).

The commands are read from README.md, so the test breaks when the README drifts. Reduced so that it fits
in about two minutes of CPU: the office input is replaced by a small synthetic dataset of another seed
(text, no images), trainings get `--epochs 40`; the make-main path is reduced to its registry effect, a
champion of another dataset under the default name, made in-process through the registry's own functions
(the commands themselves are covered by tests/registry and tests/workflow).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
GATREC = str(Path(sys.executable).parent / "gatrec")
REAL_INPUT = "../shared/data/amazon-office-2014"
EPOCHS = 40  # tiny data: enough to beat the popularity baseline the first champion is gated against


def session_commands() -> list[list[str]]:
    """The gatrec commands of the README's real-data session, split at `&&`, comments dropped."""
    text = README.read_text()
    block = re.search(r"### Typical session on real data\s+```bash\n(.*?)```", text, re.S)
    assert block, "README has no 'Typical session on real data' bash block"
    commands = []
    for line in block.group(1).splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] == "gatrec":
                commands.append(words)
            else:
                assert not words or words[:2] == ["source", ".venv/bin/activate"], f"unexpected README line: {line}"
    return commands


def reduced(words: list[str], raw: Path) -> list[str]:
    out = [GATREC, *(str(raw) if w == REAL_INPUT else w for w in words[1:])]
    if words[1] == "train":
        out += ["--epochs", str(EPOCHS)]
    return out


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{shlex.join(cmd)} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_readme_session_runs_as_written_after_main(tmp_path, monkeypatch):
    from gatrec.registry.promote import promote
    from gatrec.registry.register import register_run
    from tests.kit import write_prepared, write_run

    commands = session_commands()
    assert [c[1] for c in commands] == ["prepare", "embed", "train", "train", "eval", "register", "promote"]
    assert any(REAL_INPUT in c for c in commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GATREC_"))}
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "OMP_NUM_THREADS": "1"})

    # The make-main path's registry effect: a champion of another (synthetic) dataset under the default name.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    main_data = write_prepared(tmp_path / "work" / "data", n_users=80, n_items=40)
    register_run(write_run(tmp_path / "work" / "runs" / "mf", main_data, ndcg=0.9, recall=0.9), "gatrec")
    assert promote("candidate", "gatrec").passed

    # Another dataset standing in for office, then the README's session exactly in its order.
    raw = tmp_path / "office-raw"
    small = ["--users", "120", "--items", "60", "--interactions", "1500", "--clusters", "4", "--no-images"]
    run([GATREC, "synth", "--out", str(raw), *small, "--seed", "7"], tmp_path, env)
    for words in commands:
        proc = run(reduced(words, raw), tmp_path, env)
    assert "promoted to champion" in proc.stdout

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    champions = {m.name: str(m.aliases.get("champion")) for m in client.search_registered_models()
                 if not m.name.endswith(".promotion-lock")}
    assert champions == {"gatrec": "1", "gatrec-office": "1"}
