"""``gatrec prepare`` on the command line: summary on success, exit code 2 and a clear message on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from gatrec.cli import cli


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gatrec", "prepare", *args], capture_output=True, text=True,
                          timeout=120)


def test_prepare_prints_summary(tmp_path, make_folder, make_rows):
    raw = make_folder(tmp_path / "raw", make_rows())
    result = CliRunner().invoke(cli, ["prepare", "--input", str(raw), "--out", str(tmp_path / "out"),
                                      "--split", "leave-one-out", "--seed", "3", "--kcore", "2"])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["split"] == {"protocol": "leave-one-out", "seed": 3} and m["cleaning"]["kcore"] == 2
    assert "users 12" in result.output and "items 10" in result.output
    assert f"train {m['counts']['train']}" in result.output and "test 12" in result.output
    assert "density" in result.output


def test_bad_input_exits_2_with_file_line_field(tmp_path, make_folder):
    raw = make_folder(tmp_path / "raw", [("u1", "a", 1), ("u1", "b", "soon")])
    proc = run("--input", str(raw), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "interactions.csv:3, field 'timestamp'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_choice_and_help(tmp_path):
    proc = run("--input", str(tmp_path), "--out", str(tmp_path / "o"), "--split", "random")
    assert proc.returncode == 2 and "mmrec" in proc.stderr and "leave-one-out" in proc.stderr
    help_text = CliRunner().invoke(cli, ["prepare", "--help"]).output
    assert "Example:" in help_text and "gatrec prepare --input" in help_text
    for flag in ("--format", "--split", "--seed", "--kcore", "--min-rating", "--category", "--out"):
        assert flag in help_text
