"""Run a C reader in a child process, so that a crash on a corrupt file is an error, not a death.

mdtraj's XTC reader (xdrfile) decodes compressed coordinates without bounds checks that hold on
garbage: a damaged frame can write a few values past its buffer (its own overrun check is one atom
short) or index past a table, and glibc then aborts the process ("corrupted size vs. prev_size",
SIGABRT) or it segfaults; no header check (`io/xdr_frames.py`) can see this in advance. So the
frames are decoded in a forked child and sent to the parent through a pipe (pickle protocol 5,
one message per chunk); a child killed by a signal becomes an InputError naming the file and the
frames that had arrived. Errors raised in the child (InputError from the reader) are re-raised
in the parent as they were.

Cost: one fork (milliseconds, the parent's modules are already loaded) and one copy of each
chunk through the pipe; measured in docs/architecture.md ("Crash-safe XTC reading"). Where
`os.fork` does not exist (Windows) the reader runs in-process.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from dynforecast.errors import DynforecastError, InputError
from dynforecast.io.notes import counted

T = TypeVar("T")
_BUFFER = 1 << 20


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _child(make: Callable[[], Iterator[T]], sink: list[str] | None, write_fd: int) -> None:
    """Body of the child: send each item, then ("end", new warnings) or ("error", exception)."""
    try:
        with os.fdopen(write_fd, "wb", buffering=_BUFFER) as out:
            start = len(sink) if sink is not None else 0
            try:
                for item in make():
                    pickle.dump(("item", item), out, protocol=5)
                    out.flush()  # each chunk reaches the parent before the next is decoded
                pickle.dump(("end", sink[start:] if sink is not None else []), out)
            except BaseException as exc:  # everything goes to the parent, Ctrl-C included
                if isinstance(exc, Exception) and not isinstance(exc, DynforecastError):
                    # a bug of ours: the parent shows it as one, with the child's traceback
                    exc = RuntimeError(f"in the reader process: {traceback.format_exc()}")
                try:
                    pickle.dump(("error", exc), out)
                except Exception:  # an exception that does not pickle: its message does
                    pickle.dump(("error", InputError(str(exc))), out)
    finally:
        os._exit(0)


def isolated_iter(
    make: Callable[[], Iterator[T]],
    path: str | Path,
    sink: list[str] | None = None,
    frames_of: Callable[[T], int] = lambda item: 1,
) -> Iterator[T]:
    """The items of ``make()``, produced in a forked child; see the module doc.

    ``sink`` (a list the reader appends library warnings to) receives the child's new entries
    when it finishes; ``frames_of(item)`` counts the frames an item holds, for the message.
    Raises InputError ``"<path>: the reader crashed (SIGSEGV) after N frames: the file is
    corrupt ..."`` when the child dies, and whatever the reader raised otherwise.
    """
    if not hasattr(os, "fork"):
        yield from make()
        return
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # never returns
        os.close(read_fd)
        faulthandler.disable()  # the parent reports the crash in one line
        _child(make, sink, write_fd)
    os.close(write_fd)
    received = 0
    try:
        with os.fdopen(read_fd, "rb", buffering=_BUFFER) as pipe:
            while True:
                try:
                    kind, value = pickle.load(pipe)
                except (EOFError, pickle.UnpicklingError, ValueError):
                    kind, value = "died", None
                if kind == "item":
                    received += frames_of(value)
                    yield value
                elif kind == "end":
                    if sink is not None:
                        sink.extend(value)
                    return
                elif kind == "error":
                    raise value
                else:
                    _, status = os.waitpid(pid, 0)
                    pid = 0
                    how = (
                        _signal_name(os.WTERMSIG(status))
                        if os.WIFSIGNALED(status)
                        else f"exit status {os.WEXITSTATUS(status)}"
                    )
                    raise InputError(
                        f"{path}: the reader crashed ({how}) after {counted(received, 'frame')}: "
                        f"the file is corrupt (damaged compressed coordinates)"
                    )
    finally:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
