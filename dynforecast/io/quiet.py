"""Keep chatter of C extensions off standard output, and known-harmless warnings off stderr.

mdtraj's DCD plugin prints "dcdplugin) ..." lines with C ``printf``; on stdout they would corrupt
the results a pipeline reads (``dynforecast info --json | jq``). `stdout_to_stderr` points file
descriptor 1 at stderr for the duration of a block and flushes C's stdio buffer before restoring
it, so that nothing buffered leaks out later.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def _flush_c_stdout() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (
        OSError,
        AttributeError,
    ):  # no libc symbols (e.g. some Windows builds): nothing to flush
        pass


#: mdtraj warns on every PDB with the placeholder CRYST1 record most tools write; the unit cell
#: is discarded either way (dynforecast keeps no box), so the warning says nothing actionable.
_HARMLESS_WARNINGS = ("Unlikely unit cell vectors detected",)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to file descriptor 1 inside the block to stderr."""
    sys.stdout.flush()
    with warnings.catch_warnings():
        for message in _HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        try:
            saved = os.dup(1)
        except OSError:  # no real stdout (captured by a test runner): nothing to protect
            yield
            return
        try:
            os.dup2(2, 1)
            yield
        finally:
            _flush_c_stdout()
            os.dup2(saved, 1)
            os.close(saved)


def quiet_iter(iterator: Iterator[T]) -> Iterator[T]:
    """Iterate ``iterator`` with fd 1 sent to stderr during each step only."""
    while True:
        with stdout_to_stderr():
            item = next(iterator, _DONE)
        if item is _DONE:
            return
        yield item  # type: ignore[misc]


_DONE = object()
