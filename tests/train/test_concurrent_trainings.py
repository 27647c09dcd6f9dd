"""Two `gatrec train` processes with different `-p knn_k` on one featured folder at the same time (what a
sweep with several workers does): both finish, and the folder is byte-for-byte what embed left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.kit import write_features, write_prepared


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_concurrent_trainings_with_other_knn_k_leave_the_feature_folder_alone(tmp_path: Path):
    data = write_prepared(tmp_path / "data", n_users=60, n_items=30, per_user=8)
    write_features(data, k=5)  # embed built k=5; the trainings ask for 3 and 4
    before = _snapshot(data)
    env = {**os.environ, "GATREC_NO_MLFLOW": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "gatrec", "train", "--data", str(data), "--model", "gat",
                               "--features", "text", "-p", f"knn_k={k}", "-p", "dim=16", "--epochs", "3",
                               "--threads", "1", "--out", str(tmp_path / f"run-k{k}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in (3, 4)]
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    for k in (3, 4):
        assert (tmp_path / f"run-k{k}" / "metrics.json").is_file()
    assert _snapshot(data) == before  # no new file, no rewritten manifest
