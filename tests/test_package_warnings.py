"""A GAT run does not print torch's torch.jit.script deprecation, which PyG triggers on import."""

from __future__ import annotations

import subprocess
import sys


def _stderr(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stderr


def test_pyg_jit_deprecation_is_not_printed():
    notice = "`torch.jit.script` is deprecated"
    assert notice in _stderr("import torch_geometric.nn")  # what PyG alone prints (so this test can fail)
    assert notice not in _stderr("from gatrec import models; models.get('gat')")
