"""Atomic file output: write to a hidden temporary file beside the target, rename on success.

Every writer goes through `atomic_output` so that a crash, an error or Ctrl-C never leaves a half
written file under the final name (the rename is atomic on POSIX within one directory), and so
that "exists without --overwrite" and "unwritable place" are reported the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dynforecast.errors import OutputError


def temporary_path(path: Path) -> Path:
    """The temporary name used while ``path`` is written: ``.<name>.tmp-<pid>`` in its directory."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def check_output_path(path: Path, *, overwrite: bool) -> None:
    """Refuse an existing output (unless ``overwrite``) and a missing or unwritable directory."""
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists (use --overwrite to replace it)")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise OutputError(f"{path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: directory {directory} is not writable")


@contextmanager
def atomic_output(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block ends without error.

    On any exception (KeyboardInterrupt included) the temporary file is deleted and the
    exception propagates; an existing file at ``path`` is untouched until the final rename.
    """
    target = Path(path)
    check_output_path(target, overwrite=overwrite)
    scratch = temporary_path(target)
    try:
        yield scratch
        if not scratch.exists():
            raise OutputError(f"{target}: nothing was written")
        os.replace(scratch, target)
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OutputError(f"{target}: cannot write ({reason})") from exc
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
