"""Reading the systems a data set is made of, once, from an H5MD file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dynforecast.errors import InputError, describe_path
from dynforecast.io.trajectory import Trajectory


def load_systems(path: Path, systems: Sequence[str] | None = None) -> list[Trajectory]:
    """All systems of an H5MD file (or the named ones), in the file's order.

    The H5MD reader raises InputError (one line naming the file) for a missing, unreadable or
    malformed file; a file with no system is an InputError here.
    """
    from dynforecast.io.h5md import read_h5md

    path = Path(path)
    try:
        loaded = read_h5md(path, systems=list(systems) if systems is not None else None)
    except OSError as exc:
        raise InputError(f"{describe_path(path)}: cannot read as HDF5/H5MD ({exc})") from None
    if not loaded:
        raise InputError(f"{describe_path(path)}: no systems in the file")
    return loaded
