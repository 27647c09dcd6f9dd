"""The allocator settings take on glibc and are harmless to repeat."""

from __future__ import annotations

import ctypes.util
import platform

import pytest
import torch

from gatrec.train.allocator import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc" or not ctypes.util.find_library("c"),
                    reason="mallopt is glibc's")
def test_mallopt_applies_on_glibc_and_tensors_still_work() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # cached: one call per process
    for _ in range(3):  # big blocks are now heap blocks, reused after free
        x = torch.ones(3000, 3000)
        assert float(x.sum()) == 9e6
        del x
