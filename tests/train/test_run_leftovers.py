"""Leftovers of a killed training (issue 17, point 9): the 0-byte temp checkpoints of dead writers, in the
PID naming and in the pre-PID one, are removed when the next training of that run folder starts, whatever
that training then writes; a live writer's temps, recent pre-PID ones and foreign files stay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gatrec.fsutil import remove_stale_temps, this_host
from gatrec.train.config import TrainConfig
from gatrec.train.loop import train

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600


def _killed_checkpoint_writer(run: Path) -> Path:
    """SIGKILL a real process inside its atomic write of ``checkpoints/last.pt``; returns its temp file."""
    last = run / "checkpoints" / "last.pt"
    code = ("import time; from gatrec.fsutil import atomic_file\n"
            f"with atomic_file({str(last)!r}, 'wb'):\n"
            "    print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    (left,) = last.parent.glob(".last.pt.tmp-*")
    assert left.stat().st_size == 0 and f"-{proc.pid}-" in left.name
    return left


def _aged(path: Path, seconds: float) -> Path:
    path.write_bytes(b"")
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def test_the_next_training_removes_dead_writers_temp_checkpoints(clustered_data: Path,
                                                                 tmp_path: Path) -> None:
    run = tmp_path / "run"
    dead = _killed_checkpoint_writer(run)
    ckpt = run / "checkpoints"
    legacy_old = _aged(ckpt / ".last.pt.k3j9x0qa", 2 * HOUR)  # a pre-PID mkstemp name, from an older gatrec
    legacy_new = _aged(ckpt / ".last.pt.p1q2r3s4", 60)  # too recent to be sure its writer is gone
    legacy_metrics = _aged(run / ".metrics.json.a1b2c3d4", 2 * HOUR)
    foreign = ckpt / ".last.pt.notes"
    foreign.write_text("not a temp")
    live = ckpt / f".last.pt.tmp-{this_host()}-{os.getpid()}-live01"  # a live writer's (this process)
    live.write_bytes(b"")
    # pop fits without epochs, so it writes no checkpoint: the sweep at the start is what removes them
    train(clustered_data, TrainConfig(model="pop"), run)
    assert not dead.exists() and not legacy_old.exists() and not legacy_metrics.exists()
    assert live.exists() and legacy_new.exists() and foreign.read_text() == "not a temp"
    assert (run / "metrics.json").is_file() and not (ckpt / "last.pt").exists()


def test_pre_pid_temp_files_are_removed_once_old(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    old, young = _aged(tmp_path / ".last.pt.abcd_123", 2 * HOUR), _aged(tmp_path / ".last.pt.zzzz9999", 10)
    other = _aged(tmp_path / ".other.pt.abcd1234", 2 * HOUR)  # beside another target: not this one's
    assert remove_stale_temps(target) == [old]
    assert young.exists() and other.exists()
