"""Reading the systems a data set is made of, once, from an H5MD file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dynforecast.errors import InputError, describe_path
from dynforecast.io.trajectory import Trajectory


def load_systems(path: Path, systems: Sequence[str] | None = None) -> list[Trajectory]:
    """All systems of an H5MD file (or the named ones), in the file's order.

    Raises InputError (one line naming the file) if it is missing, unreadable or holds no
    systems; the H5MD reader raises its own InputErrors for malformed content.
    """
    from dynforecast.io.h5md import read_h5md

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{describe_path(path)}: no such file")
    try:
        loaded = read_h5md(path, systems=list(systems) if systems is not None else None)
    except OSError as exc:
        raise InputError(f"{describe_path(path)}: cannot read as HDF5/H5MD ({exc})") from None
    if not loaded:
        raise InputError(f"{describe_path(path)}: no systems in the file")
    return loaded
