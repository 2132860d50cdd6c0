"""Opt-in tuning of glibc's malloc for CPU training and inference.

Each layer of a graph network allocates fresh multi-megabyte activations ([E, T, H] floats). glibc
serves blocks above its mmap threshold with mmap and returns freed heap tops to the system, so every
such tensor is page-faulted in again: on ESTAG's reference batch (100 aspirin windows) this is about
9,000 minor page faults and 10-15 ms of kernel time per forward pass on the project's 2-core CPU.
Raising the mmap threshold and the trim threshold keeps freed blocks in the heap for reuse; the
cost is that the process keeps its peak memory instead of returning it to the system.

This changes process-wide state, so nothing calls it at import: an application entry point (a
training command, a benchmark) may call it once. CUDA memory is unaffected.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit on 64-bit systems
TRIM_THRESHOLD = 1 << 30


def retain_freed_memory() -> bool:
    """Ask glibc to keep freed blocks (up to 32 MiB each) for reuse; True if glibc accepted.

    Returns False and changes nothing where the C library is not glibc (macOS, musl, Windows).
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
