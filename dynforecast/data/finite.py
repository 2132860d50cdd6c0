"""Refusing a data file whose frames hold NaN or infinity, before any model sees them.

Ingest never writes such values, but an H5MD file may come from elsewhere (another writer, a
hand edit, a crashed simulation that wrote NaN coordinates). Without this check each command
fails in its own way far from the cause: `train` reports a diverged run, `evaluate` dies in a
least-squares fit, `predict` writes a forecast of NaN with exit 0. One check, on opening the data,
gives all three the same exit-3 message naming the file, the system, the array and the first bad
frame and particle.

Frames are scanned in blocks (`BLOCK_FRAMES`, or the dataset's own chunk length when the frames
are left in the file), so the check holds at most one block's boolean mask in memory, never a
mask the size of the trajectory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError, describe_path
from dynforecast.io.trajectory import Trajectory

#: Frames per scanned block when the frames are in memory.
BLOCK_FRAMES = 256


def first_nonfinite(frames, block_frames: int = BLOCK_FRAMES) -> tuple[int, int] | None:
    """(frame, particle) of the first NaN/inf in ``frames`` [F, N, ...], or None when all finite.

    ``frames`` is a NumPy array or a `FileFrames` (read one block at a time). For arrays with no
    particle axis ([F] times, [F, 3, 3] boxes) the particle is the first bad row of the frame.
    """
    n_frames = len(frames)
    step = max(1, int(getattr(frames, "block_frames", block_frames)))
    for start in range(0, n_frames, step):
        block = np.asarray(frames[start : min(n_frames, start + step)])
        bad = ~np.isfinite(block)
        if not bad.any():
            continue
        per_row = bad.reshape(bad.shape[0], bad.shape[1] if bad.ndim > 1 else 1, -1).any(axis=2)
        frame, row = np.argwhere(per_row)[0]
        return start + int(frame), int(row)
    return None


def check_finite(path: Path, trajectories: Iterable[Trajectory]) -> None:
    """Raise InputError when any system's positions, velocities, box, times or charges hold NaN/inf.

    Message: ``<file>: system 'x' has a non-finite value (NaN or inf) in positions at frame 12,
    particle 3 (0-based); fix or drop those frames before training or forecasting``.
    """
    for trajectory in trajectories:
        arrays = {
            "positions": trajectory.positions,
            "velocities": trajectory.velocities,
            "box": trajectory.box,
            "time": trajectory.time,
        }
        for array_name, frames in arrays.items():
            if frames is None:
                continue
            found = first_nonfinite(frames)
            if found is None:
                continue
            frame, row = found
            where = f"frame {frame}" if array_name == "time" else f"frame {frame}, "
            if array_name == "positions" or array_name == "velocities":
                where += f"particle {row}"
            elif array_name == "box":
                where += f"cell vector {row}"
            raise InputError(
                f"{describe_path(path)}: system {trajectory.name!r} has a non-finite value "
                f"(NaN or inf) in {array_name} at {where} (0-based); fix or drop those frames "
                "before training or forecasting"
            )
        if trajectory.charges is not None and not np.isfinite(trajectory.charges).all():
            particle = int(np.flatnonzero(~np.isfinite(trajectory.charges))[0])
            raise InputError(
                f"{describe_path(path)}: system {trajectory.name!r} has a non-finite charge "
                f"(NaN or inf) at particle {particle} (0-based)"
            )
