"""Frame-chunk streaming shared by the readers, `ingest` and the H5MD writer.

A reader opens a source as a `StreamedSystem`: the time-independent part (a `Trajectory` with
zero frames: species, bonds, names, units, parameters) plus an iterator of `FrameChunk`s. Ingest
writes each chunk as it arrives, so a trajectory larger than memory converts; `collect` joins the
chunks when a whole in-memory `Trajectory` is wanted.

Shapes: f frames in a chunk, F frames in all, N particles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError
from dynforecast.io.notes import IngestNote
from dynforecast.io.trajectory import Trajectory


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive frames of one system.

    Fields: positions float32 [f, N, 3]; time float64 [f]; step int64 [f] (the MD step the
    file stores, else the file frame index); velocities float32 [f, N, 3] or None; box float32
    [f, 3, 3] (unit cell vectors as rows, in the header's length unit) or None; index int64 [f],
    the frames' 0-based indices in the file (stride included), or None when ``step`` is that
    index. ``--time-step`` times are frame index x step, never MD step x step.
    """

    positions: np.ndarray
    time: np.ndarray
    step: np.ndarray
    velocities: np.ndarray | None = None
    box: np.ndarray | None = None
    index: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def frame_index(self) -> np.ndarray:
        """int64 [f] file frame indices of these frames."""
        return self.step if self.index is None else self.index


@dataclass
class StreamedSystem:
    """A system whose frames are read lazily.

    ``header`` is a `Trajectory` with zero frames that carries everything but the frames;
    ``has_velocities`` and ``has_box`` say whether the chunks carry velocities and a unit cell
    (known before the first chunk, because the H5MD layout is created before frames are
    appended). ``chunks`` can be iterated once. ``notes`` lists what the reader dropped,
    guessed or reinterpreted (`io.notes`); readers may append to it while chunks are read, and
    ingest reports and records it after the last chunk.
    """

    header: Trajectory
    has_velocities: bool
    chunks: Iterator[FrameChunk]
    has_box: bool = False
    notes: list[IngestNote] = field(default_factory=list)


#: Default chunk size in bytes of positions: per-chunk overhead is already negligible at this
#: size (benchmarks/ingest_speed.py: 32 to 980 frames of AdK convert at the same rate), and
#: mdtraj allocates a full chunk up front even when the file is shorter, so bigger only costs.
CHUNK_BYTES = 8 * 2**20


def auto_chunk_frames(n_particles: int, chunk_frames: int | None) -> int:
    """``chunk_frames`` if given, else as many frames as fit CHUNK_BYTES (1 to 1024)."""
    if chunk_frames is not None:
        return chunk_frames
    return max(1, min(1024, CHUNK_BYTES // max(1, 12 * n_particles)))


def empty_frames(n_particles: int) -> dict[str, np.ndarray]:
    """The frame fields of a zero-frame header `Trajectory`."""
    return {
        "positions": np.zeros((0, n_particles, 3), dtype=np.float32),
        "time": np.zeros(0, dtype=np.float64),
        "step": np.zeros(0, dtype=np.int64),
    }


def check_finite(path: str | Path, positions: np.ndarray, first_frame: int) -> None:
    """Raise InputError naming ``path`` and the first frame (0-based, in the file) with NaN/inf.

    ``first_frame`` is the file frame index of ``positions[0]``; the check is one vectorised
    reduction per chunk.
    """
    bad_frames = ~np.isfinite(positions).reshape(positions.shape[0], -1).all(axis=1)
    if bad_frames.any():
        frame = first_frame + int(np.argmax(bad_frames))
        raise InputError(f"{path}: non-finite (NaN or inf) coordinates in frame {frame}")


def has_cell(boxes: np.ndarray) -> np.ndarray:
    """bool [f]: which frames of ``boxes`` [f, 3, 3] have a unit cell.

    All-zero vectors are how XTC, TRR and DCD store "no box", so they count as none.
    """
    return boxes.reshape(boxes.shape[0], -1).any(axis=1)


def chunk_boxes(
    path: str | Path, boxes: np.ndarray, step: np.ndarray, has_box: bool
) -> np.ndarray | None:
    """float32 [f, 3, 3] unit cells of a chunk, or None for a system without one.

    ``has_box`` is what frame 0 showed; a frame (file index ``step``) that differs is an
    InputError naming it, because H5MD stores a box for every frame or for none, and dropping or
    inventing a cell for some frames would lose or fake data.
    """
    bad = ~np.isfinite(boxes).reshape(boxes.shape[0], -1).all(axis=1)
    if bad.any():
        frame = int(step[int(np.argmax(bad))])
        raise InputError(f"{path}: non-finite (NaN or inf) unit cell in frame {frame}")
    differs = has_cell(boxes) != has_box
    if differs.any():
        frame = int(step[int(np.argmax(differs))])
        if has_box:
            raise InputError(f"{path}: frame {frame} has no unit cell (frame 0 has one)")
        raise InputError(f"{path}: frame {frame} has a unit cell (frame 0 has none)")
    return np.ascontiguousarray(boxes, dtype=np.float32) if has_box else None


def collect(system: StreamedSystem) -> Trajectory:
    """Read every chunk of ``system`` into one in-memory `Trajectory`."""
    chunks = list(system.chunks)
    header = system.header
    if not chunks:
        return dataclasses.replace(header, **empty_frames(header.n_particles))
    velocities = np.concatenate([c.velocities for c in chunks]) if system.has_velocities else None
    box = np.concatenate([c.box for c in chunks]) if system.has_box else None
    trajectory = dataclasses.replace(
        header,
        positions=np.concatenate([c.positions for c in chunks]),
        time=np.concatenate([c.time for c in chunks]),
        step=np.concatenate([c.step for c in chunks]),
        velocities=velocities,
        box=box,
    )
    trajectory.validate()
    return trajectory
