"""Keep the chatter of C extensions off the terminal, and hand library warnings to the caller.

mdtraj's DCD plugin prints "dcdplugin) ..." banners with C ``printf`` (twice per file, before any
error of ours); on stdout they would corrupt the results a pipeline reads (``dynforecast info
--json | jq``), on stderr they bury the one error line. `quiet_library` points file descriptors 1
and 2 at a scratch file for the duration of a block, flushes C's stdio buffer before restoring
them, and throws the text away, or copies it to stderr after the block when
`show_library_output` was switched on (``dynforecast --debug``).

Python warnings raised inside the block (mdtraj's "Unlikely unit cell vectors detected" when it
discards a placeholder CRYST1, pdbstructure's "two consecutive residues with same number") are
recorded instead of printed: a caller that passes a ``warnings_sink`` list gets their messages
(molecular.py turns them into ingest notes); without a sink they are shown after the block.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_SETTINGS = {"show": False}

#: Warnings about the installation, not the data: mdtraj falls back to scipy for NetCDF.
_HARMLESS_WARNINGS = (".*The 'netCDF4' Python package is not installed",)


def show_library_output(show: bool) -> None:
    """Whether C-level output of libraries is copied to stderr (True under ``--debug``)."""
    _SETTINGS["show"] = bool(show)


def _flush_c_stdout() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (
        OSError,
        AttributeError,
    ):  # no libc symbols (e.g. some Windows builds): nothing to flush
        pass


@contextmanager
def _redirected_fds() -> Iterator[None]:
    """File descriptors 1 and 2 into a scratch file inside the block (shown only if asked)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:  # no real descriptors (captured by a test runner): nothing to protect
        yield
        return
    with tempfile.TemporaryFile() as scratch:
        try:
            os.dup2(scratch.fileno(), 1)
            os.dup2(scratch.fileno(), 2)
            yield
        finally:
            _flush_c_stdout()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if _SETTINGS["show"]:
                scratch.seek(0)
                text = scratch.read().decode("utf-8", "replace")
                if text:
                    sys.stderr.write(text)
                    sys.stderr.flush()


@contextmanager
def quiet_library(warnings_sink: list[str] | None = None) -> Iterator[None]:
    """Run a block of library calls with C output off the terminal and warnings recorded.

    ``warnings_sink``, if given, receives each warning message (one line); otherwise recorded
    warnings are shown on stderr after the block, as Python would have shown them.
    """
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("always")
        for message in _HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        with _redirected_fds():
            yield
    for item in recorded:
        if warnings_sink is not None:
            warnings_sink.append(" ".join(str(item.message).split()))
        else:
            warnings.showwarning(item.message, item.category, item.filename, item.lineno)


#: The old name: kept for callers written before C output went off stderr too.
stdout_to_stderr = quiet_library


def quiet_iter(iterator: Iterator[T], warnings_sink: list[str] | None = None) -> Iterator[T]:
    """Iterate ``iterator`` with `quiet_library` around each step only."""
    while True:
        with quiet_library(warnings_sink):
            item = next(iterator, _DONE)
        if item is _DONE:
            return
        yield item  # type: ignore[misc]


_DONE = object()
