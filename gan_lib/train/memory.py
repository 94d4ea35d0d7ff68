r"""Keep freed memory in the process: fewer page faults for training loops that allocate large tensors.

A CPU training step of a large ensemble allocates and frees tens of megabytes of activations and
gradients. With glibc's default settings, blocks of that size are mapped from the kernel when
allocated and given back when freed (or the top of the heap is trimmed), so the next step's
tensors are fresh pages that fault in one by one on first write. :func:`retain_freed_memory`
raises glibc's two thresholds (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``, set with ``mallopt``)
so that blocks up to ``mmap_threshold`` come from the heap and freed memory stays there for the
next step. It is what the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` do when set before Python starts, and what PyTorch's CPU tuning advice
reaches by preloading another allocator.

It changes the whole process, for good: the process keeps up to about ``trim_threshold`` bytes of
freed memory instead of returning it to the system. It does nothing off glibc (macOS, Windows,
musl) and says so by returning ``False``.

On this book's 2-core machine, the 40-member ensemble of ``benchmarks/ensemble.py`` took
15-25 % less time per step with it (minor page faults from 4,000-10,000 per step to under 500);
``benchmarks/ensemble.py`` calls it (``--malloc default`` leaves glibc as it is).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1  # glibc's <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc refuses larger mmap thresholds on 64-bit systems (HEAP_MAX_SIZE / 2)


def retain_freed_memory(mmap_threshold: int = _MMAP_THRESHOLD_MAX, trim_threshold: int = 2**30) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (module docstring); ``True`` if both took.

    ``mmap_threshold``: blocks up to this many bytes come from the heap (at most 32 MiB, glibc's
    limit); ``trim_threshold``: freed memory at the top of the heap is kept up to this many bytes.
    """
    for name, value, hi in (("mmap_threshold", mmap_threshold, _MMAP_THRESHOLD_MAX),
                            ("trim_threshold", trim_threshold, 2**31 - 1)):  # mallopt takes a C int
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
            raise ValueError(f"{name}={value!r} must be an integer number of bytes in [0, {hi}]")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
