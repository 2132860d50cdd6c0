"""Atomic file output: write to a hidden temporary file beside the target, rename on success.

Every writer goes through `atomic_output` so that a crash, an error or Ctrl-C never leaves a half
written file under the final name (the rename is atomic on POSIX within one directory), and so
that "exists without --overwrite" and "unwritable place" are reported the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from dynforecast.errors import OutputError

# The files the running command reads: no output may replace one of them, --overwrite or not.
_INPUTS: ContextVar[tuple[Path, ...]] = ContextVar("dynforecast_inputs", default=())


@contextmanager
def reading_inputs(paths: Iterable[str | Path | None]) -> Iterator[None]:
    """Within the block, `check_output_path` refuses any output that is one of ``paths``.

    Why: an output is written beside its target and renamed over it, so ``ingest a.xyz -o a.xyz
    --overwrite`` or ``predict d.h5 -o d.h5 --overwrite`` would replace the very file being read,
    and the data would be gone. Files are compared by identity (``os.path.samefile``: the same
    device and inode), so a symbolic link, a hard link or another spelling of the path is caught
    too. ``None`` entries are skipped; the blocks nest (an inner command adds to the outer set).
    """
    given = tuple(Path(p) for p in paths if p is not None)
    token = _INPUTS.set(_INPUTS.get() + given)
    try:
        yield
    finally:
        _INPUTS.reset(token)


def _input_at(path: Path) -> Path | None:
    """The input of the running command that ``path`` names (the same file), else None."""
    for source in _INPUTS.get():
        try:
            if os.path.samefile(source, path):
                return source
        except OSError:  # an input that is not there (yet) cannot be replaced
            continue
    return None


def temporary_path(path: Path) -> Path:
    """The temporary name used while ``path`` is written: ``.<name>.tmp-<pid>`` in its directory."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def check_output_path(path: Path, *, overwrite: bool) -> None:
    """Refuse an existing output (unless ``overwrite``) and a missing or unwritable directory.

    An output that is one of the running command's inputs (`reading_inputs`) is refused even
    with ``overwrite``: replacing it would destroy the data being read. Raises OutputError.
    """
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    source = _input_at(path) if path.exists() else None
    if source is not None:
        same = "" if source == path else f" ({source})"
        raise OutputError(
            f"{path}: is an input of this command{same}; write the output to another file"
        )
    if (path.exists() or path.is_symlink()) and not overwrite:  # a dangling link is there too
        raise OutputError(f"{path}: exists (use --overwrite to replace it)")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        if directory.exists() or _file_ancestor(directory) is not None:
            blocker = directory if directory.exists() else _file_ancestor(directory)
            raise OutputError(f"{path}: {blocker} is not a directory")
        raise OutputError(f"{path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: directory {directory} is not writable")


def _file_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a directory (a file), else None."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_directory_creatable(directory: Path) -> None:
    """Refuse, before any work, a directory that `create_directory` could not make or write in.

    Walks up to the nearest existing ancestor: a file there ("is not a directory") or an
    unwritable directory is an OutputError naming ``directory`` and the reason. Nothing is created,
    so a run that then fails on its input leaves no empty directory behind.
    """
    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise OutputError(f"{directory}: exists and is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OutputError(f"{directory}: directory is not writable")
        return
    for parent in directory.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{directory}: cannot create it, {parent} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{directory}: cannot create it, {parent} is not writable")
            return


def create_directory(directory: Path) -> None:
    """``mkdir -p`` with the failure as one OutputError line (exit 4) instead of a traceback."""
    directory = Path(directory)
    check_directory_creatable(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OutputError(f"{directory}: cannot create the directory ({reason})") from None


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
