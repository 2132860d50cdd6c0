"""Reading the systems a data set is made of from an H5MD file: frames in memory or left there."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dynforecast.data.finite import check_finite
from dynforecast.errors import InputError, describe_path
from dynforecast.io.trajectory import Trajectory


def load_systems(
    path: Path, systems: Sequence[str] | None = None, *, lazy: bool | None = None
) -> list[Trajectory]:
    """All systems of an H5MD file (or the named ones), in the file's order.

    ``lazy``: leave positions and velocities in the file (`dynforecast.io.h5md_frames.FileFrames`,
    read on demand by `WindowDataset`); None decides by size (`frame_store.frames_in_memory`:
    in memory when the frames take at most a quarter of the memory the process may use, or as
    ``DYNFORECAST_FRAMES`` says). Batches are bit-identical either way.

    The H5MD reader raises InputError (one line naming the file) for a missing, unreadable or
    malformed file; a file with no system, or one whose frames hold NaN or infinity
    (`dynforecast.data.finite.check_finite`, one pass over the frames in blocks), is an
    InputError here.
    """
    from dynforecast.io.h5md import read_h5md

    path = Path(path)
    names = list(systems) if systems is not None else None
    try:
        if lazy is None:
            lazy = not _fits_in_memory(path, names)
        loaded = read_h5md(path, systems=names, lazy=lazy)
    except OSError as exc:
        raise InputError(f"{describe_path(path)}: cannot read as HDF5/H5MD ({exc})") from None
    if not loaded:
        raise InputError(f"{describe_path(path)}: no systems in the file")
    check_finite(path, loaded)
    return loaded


def _fits_in_memory(path: Path, names: list[str] | None) -> bool:
    from dynforecast.data.frame_store import frames_in_memory
    from dynforecast.io.h5md import frame_bytes

    return frames_in_memory(frame_bytes(path, names))
