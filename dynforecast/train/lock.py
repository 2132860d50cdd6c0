"""One training per run directory: an advisory lock that a crashed run cannot leave stuck.

The lock is a POSIX record lock (``fcntl.lockf``) on ``<run>/.lock``, held for the whole run by
the process that writes the directory (rank 0 under DDP; the other ranks write nothing). The
kernel drops it when that process ends in any way, kill -9 and node crashes included, so a stale
lock never blocks a requeued job. Why lockf and not flock: on Linux NFS clients flock is emulated
with POSIX locks and both go through the NFS lock manager, but lockf is the one with the same
semantics on every POSIX system and NFS version. The file also records ``pid host start-time`` of
the holder, only to name it in the refusal.

Where the file system has no working locks (``ENOLCK``: NFS mounted with ``nolock``), the record
alone decides: a live process with that pid on this host holds the run; a record from another
host cannot be checked from here and is trusted only if it is younger than `REMOTE_RECORD_TTL_S`
and was refreshed (`RunLock.refresh`, once per epoch) — otherwise it is taken over with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from dynforecast import console
from dynforecast.errors import OutputError
from dynforecast.io.atomic import create_directory

LOCK_FILE = ".lock"
#: Age after which an unlockable file system's record from another host counts as stale.
REMOTE_RECORD_TTL_S = 6 * 3600.0


class RunLock:
    """``with RunLock(run_dir):`` - exclusive use of a run directory; OutputError (exit 4) if taken.

    ``enabled=False`` (non-zero DDP ranks) makes it a no-op.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self.enabled = enabled
        self._fd: int | None = None
        self._record_only = False

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        create_directory(self.run_dir)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                os.close(fd)
                raise OutputError(self._refusal(_read_record(self.path))) from None
            if exc.errno != errno.ENOLCK:
                os.close(fd)
                raise OutputError(f"{self.path}: cannot lock the run directory ({exc})") from None
            self._record_only = True
            self._check_record_without_locks()
        self._fd = fd
        self._write_record()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # no record of a holder that is gone
        finally:
            os.close(self._fd)  # closing releases the POSIX lock
            self._fd = None

    def refresh(self) -> None:
        """Renew the record's time stamp (matters only where locks do not work)."""
        if self._fd is not None and self._record_only:
            self._write_record()

    def _write_record(self) -> None:
        assert self._fd is not None
        record = f"{os.getpid()} {socket.gethostname()} {time.time():.0f}\n".encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, record, 0)

    def _refusal(self, record: tuple[int, str, float] | None) -> str:
        holder = ""
        if record is not None:
            pid, host, started = record
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
            holder = f" (pid {pid} on {host}, since {since})"
        return (
            f"{self.run_dir}: in use by another training{holder}; wait for it to end or stop "
            "it, or give another --out"
        )

    def _check_record_without_locks(self) -> None:
        record = _read_record(self.path)
        if record is None:
            return
        pid, host, stamp = record
        if host == socket.gethostname():
            if pid != os.getpid() and _alive(pid):
                raise OutputError(self._refusal(record))
            return
        if time.time() - stamp < REMOTE_RECORD_TTL_S:
            raise OutputError(self._refusal(record))
        console.log(
            f"warning: {self.path}: file locks do not work here; taking over the stale record of "
            f"pid {pid} on {host}"
        )


def _read_record(path: Path) -> tuple[int, str, float] | None:
    try:
        fields = path.read_text().split()
        return int(fields[0]), fields[1], float(fields[2])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
