"""Stop requests from the batch system or the user: SIGTERM, SIGUSR1 and Ctrl-C become a flag the
loop polls.

SLURM sends SIGTERM before it kills a job and, with ``--signal=USR1@<seconds>``, SIGUSR1 as an
early warning. Raising inside a signal handler could tear an optimiser step in half, so the
handler only records the request; the training loop checks it after every optimiser step, writes
a checkpoint and raises `dynforecast.errors.Interrupted` (exit 75), and a requeued job resumes.
Ctrl-C (SIGINT) is handled the same way (exit 130); a second Ctrl-C before the step ends raises
KeyboardInterrupt at once, for a user who does not want to wait.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopFlag:
    """Set by a stop signal (or by code, e.g. tests); ``signal_name`` says which one."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def request(self, signal_name: str) -> None:
        self.signal_name = signal_name

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if name == "SIGINT" and self.signal_name == "SIGINT":
            raise KeyboardInterrupt
        self.request(name)


@contextmanager
def catch_stop_signals() -> Iterator[StopFlag]:
    """Install handlers for SIGTERM/SIGUSR1/SIGINT for the duration of the block, then restore the old ones.

    Outside the main thread Python cannot install handlers; the flag then only reacts to
    `StopFlag.request`.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {sig: signal.signal(sig, flag._handle) for sig in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
