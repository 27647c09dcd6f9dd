"""Docstrings and comments say what and why; the measurements behind a choice live in BENCHMARKS.md
("Design notes", rendered by bench/report.py from bench/design_notes.yaml), so they are regenerated with
the benchmarks instead of going stale in the code (issue 16, point 7)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ROOMS = ("models", "train", "graph", "features", "evaluate")
# A timing, a share of a profile, a speed-up or a dataset named as where something was measured.
FIGURE = re.compile(r"\d(\.\d+)?\s?ms\b|\d\s?%|\d(\.\d+)?\s?[x×] (faster|slower)|s/epoch"
                    r"|amazon-(beauty|office)")


def test_the_model_and_training_code_carries_no_measurements() -> None:
    found = [f"{src.relative_to(REPO)}:{n}: {line.strip()}"
             for room in ROOMS for src in sorted((REPO / "gatrec" / room).rglob("*.py"))
             for n, line in enumerate(src.read_text().splitlines(), 1) if FIGURE.search(line)]
    assert not found, "figures belong in bench/design_notes.yaml (BENCHMARKS.md):\n" + "\n".join(found)


def test_every_design_note_names_existing_code_and_is_rendered_in_benchmarks() -> None:
    notes = yaml.safe_load((REPO / "bench" / "design_notes.yaml").read_text())["notes"]
    benchmarks = (REPO / "BENCHMARKS.md").read_text()
    for note in notes:
        assert {"code", "choice", "figures", "source"} <= set(note), note
        paths = re.findall(r"[\w/]+\.py", note["code"])
        assert paths and all((REPO / p).is_file() for p in paths), note["code"]
        assert f"| `{note['code']}` | {note['choice']} |" in benchmarks, (
            f"{note['code']}: not in BENCHMARKS.md; regenerate it with `.venv/bin/python bench/report.py`")
