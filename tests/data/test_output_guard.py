"""Output folders are never clobbered: commands replace only a gatrec output of their own kind (or with
--force), and what a killed writer left behind is removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from gatrec.data.prepare import prepare_dataset
from gatrec.fsutil import OutputExistsError, atomic_dir, atomic_file, guard_output, output_kind


def gatrec(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gatrec", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GATREC_NO_MLFLOW": "1"})


@pytest.fixture
def raw(tmp_path, make_folder, make_rows):
    return make_folder(tmp_path / "raw", make_rows())


def test_prepare_refuses_a_foreign_folder_and_touches_nothing(tmp_path, raw):
    out = tmp_path / "x"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    proc = gatrec("prepare", "--input", str(raw), "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"--out {out} holds a folder gatrec did not write (thesis.txt)" in proc.stderr and "--force" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["thesis.txt"]
    assert (out / "thesis.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "x"]  # no temp folder either


def test_prepare_refuses_a_plain_file(tmp_path, raw):
    out = tmp_path / "x"
    out.write_text("precious")
    proc = gatrec("prepare", "--input", str(raw), "--out", str(out))
    assert proc.returncode == 2 and "is a file, not a gatrec prepared folder" in proc.stderr
    assert out.read_text() == "precious"


def test_force_replaces_foreign_output(tmp_path, raw):
    out = tmp_path / "x"
    out.write_text("precious")
    proc = gatrec("prepare", "--input", str(raw), "--out", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.json").is_file() and output_kind(out) == "prepared"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "x"]


def test_prepared_folder_is_replaced_and_other_kinds_are_not(tmp_path, raw):
    out = prepare_dataset(raw, tmp_path / "data", seed=0)
    prepare_dataset(raw, out, seed=1)  # its own kind: replaced
    assert '"seed": 1' in (out / "manifest.json").read_text()
    with pytest.raises(OutputExistsError, match="holds a gatrec prepared folder, not a gatrec synth folder"):
        guard_output(out, "synth")
    guard_output(tmp_path / "absent", "synth")
    (tmp_path / "empty").mkdir()
    guard_output(tmp_path / "empty", "synth")


def test_synth_train_and_embed_refuse_foreign_out(tmp_path, raw, capsys, monkeypatch):
    """In process (the refusal comes before any work; the subprocess tests above cover exit codes)."""
    from gatrec.cli import main

    monkeypatch.setenv("GATREC_NO_MLFLOW", "1")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.md").write_text("keep")
    data = prepare_dataset(raw, tmp_path / "data", kcore=0)
    for args in (["synth", "--out", str(foreign), "--users", "40", "--items", "20", "--interactions", "200", "--clusters", "2",
                  "--no-images"],
                 ["train", "--data", str(data), "--model", "pop", "--out", str(foreign)],
                 ["embed", "--data", str(data), "--out", str(foreign), "--modalities", "text"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        err = capsys.readouterr().err
        assert done.value.code == 2, (args, err)
        assert f"--out {foreign} holds a folder gatrec did not write (notes.md)" in err, err
        assert sorted(p.name for p in foreign.iterdir()) == ["notes.md"], args
    # ... and --force lets them write (train as the cheap example); rerunning into the run folder is fine.
    main(["train", "--data", str(data), "--model", "pop", "--out", str(foreign), "--force"])
    assert (foreign / "notes.md").read_text() == "keep" and (foreign / "metrics.json").is_file()
    assert output_kind(foreign) == "run"
    main(["train", "--data", str(data), "--model", "pop", "--out", str(foreign)])


def test_killed_prepare_leaves_a_temp_folder_the_next_run_removes(tmp_path, raw):
    """SIGKILL a real prepare while it writes; its `.out.tmp-*` folder is gone after the next prepare."""
    out = tmp_path / "out"
    # Stall the writer inside atomic_dir (the temp folder exists), then kill it.
    code = ("import sys, time; from gatrec.data import prepare as p; real = p._write_parquet\n"
            "def slow(df, path):\n    real(df, path); print('writing', flush=True); time.sleep(60)\n"
            "p._write_parquet = slow\n"
            f"p.prepare_dataset({str(raw)!r}, {str(out)!r})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # log lines come first
            if line.strip() == "writing":
                break
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")]
        assert len(leftovers) == 1 and f"-{proc.pid}-" in leftovers[0]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert (tmp_path / leftovers[0]).is_dir()  # the kill left it behind
    prepare_dataset(raw, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"]


def test_live_writers_temps_are_left_alone(tmp_path):
    target = tmp_path / "last.pt"
    with atomic_file(target, "wb") as fh:  # this (live) process's temp file exists during the block
        fh.write(b"x")
        mine = [p for p in tmp_path.iterdir() if p.name.startswith(".last.pt.tmp-")]
        with atomic_dir(tmp_path / "other"):
            pass
        assert mine and all(p.exists() for p in mine)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    host = next(iter(mine)).name.split("-")[1]
    stale = tmp_path / f".last.pt.tmp-{host}-{pid}-abc123"
    stale.write_bytes(b"")  # a 0-byte checkpoint temp of a killed training
    foreign = tmp_path / ".last.pt.notes"
    foreign.write_text("not ours")
    time.sleep(0.01)
    with atomic_file(target, "wb") as fh:
        fh.write(b"y")
    assert not stale.exists() and foreign.exists() and target.read_bytes() == b"y"


def test_killed_checkpoint_write_is_cleaned_by_the_next_training(tmp_path, raw):
    """A process killed inside a checkpoint write leaves a 0-byte `.last.pt.tmp-*`; the next training of that
    run folder removes it."""
    data = prepare_dataset(raw, tmp_path / "data", kcore=0)
    run = tmp_path / "run"
    code = ("import time; from gatrec.fsutil import atomic_file, mark_output\n"
            f"mark_output({str(run)!r}, 'run')\n"  # as `gatrec train` does when it starts
            f"with atomic_file({str(run / 'checkpoints' / 'last.pt')!r}, 'wb'):\n"
            "    print('writing', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    (left,) = (run / "checkpoints").glob(".last.pt.tmp-*")
    assert left.stat().st_size == 0
    done = gatrec("train", "--data", str(data), "--model", "mf", "--epochs", "1", "--out", str(run))
    assert done.returncode == 0, done.stderr
    assert (run / "checkpoints" / "last.pt").is_file() and not left.exists()
