"""The bench scripts share bench/common.py's helpers instead of near-copies of them (issue 16, point 8):
machine facts, peak memory and timing are defined there once."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_no_bench_script_redefines_a_common_helper() -> None:
    common = {n.name for n in ast.parse((BENCH / "common.py").read_text()).body if isinstance(n, ast.FunctionDef)}
    copies = [f"{src.name}: {node.name}" for src in sorted(BENCH.glob("*.py")) if src.name != "common.py"
              for node in ast.parse(src.read_text()).body if isinstance(node, ast.FunctionDef) and node.name in common]
    assert not copies, f"import these from bench/common.py instead: {copies}"
