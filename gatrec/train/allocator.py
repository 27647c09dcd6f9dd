"""Keep freed full-graph tensors in the process heap instead of handing them back to the kernel (glibc).

Every training step of the graph models allocates a handful of (nodes × dim) tensors per layer. glibc serves
blocks of that size with fresh ``mmap`` pages and returns them to the kernel on ``free`` (or trims them
off the heap top), so each step page-faults and kernel-zeroes every one of them again, which can cost more
than the product itself (BENCHMARKS.md, Design notes); the two ``mallopt`` settings below keep them.
PyTorch's CPU tuning guide gets the same effect by preloading jemalloc or tcmalloc; ``mallopt`` does it
from inside the process, with nothing to install. The cost: up to ``trim_threshold`` of freed memory stays
with the process until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper bound for M_MMAP_THRESHOLD on 64-bit


@functools.cache
def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Serve blocks up to 32 MiB from the heap and keep up to ``trim_threshold`` bytes of it when freed.

    Returns whether the settings took (False off glibc, e.g. macOS or musl: nothing changes there).
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
