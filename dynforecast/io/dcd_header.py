"""Frame times and MD steps from a DCD file's header, which mdtraj does not read.

A DCD starts with one Fortran record of 84 bytes: ``CORD`` and twenty int32 control words. Word 1
is ISTART (the MD step of the first frame), word 2 NSAVC (steps between saved frames) and word 9
DELTA, the integration time step in AKMA time units: a float32 in CHARMM files (word 19, the
CHARMM version, is non-zero) and a float64 spanning words 9-10 in X-PLOR files. Frame i was saved
at step ISTART + i·NSAVC, so its time is that times DELTA, as MDAnalysis's DCD reader computes it;
the step itself is what ingest stores as the frame's H5MD ``step``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: One AKMA time unit in picoseconds (CHARMM's unit of time: sqrt(Angstrom² amu / (kcal/mol))).
AKMA_PS = 4.888821e-2
_HEADER_RECORD = 84


@dataclass(frozen=True)
class DCDClock:
    """Times of a DCD's frames in ps: ``first_ps + index * interval_ps``."""

    first_ps: float
    interval_ps: float

    def times(self, frame_indices: np.ndarray) -> np.ndarray:
        return self.first_ps + frame_indices.astype(np.float64) * self.interval_ps


@dataclass(frozen=True)
class DCDSteps:
    """MD steps of a DCD's frames: ``first + index * interval`` (ISTART, NSAVC)."""

    first: int
    interval: int

    def steps(self, frame_indices: np.ndarray) -> np.ndarray:
        return self.first + frame_indices.astype(np.int64) * self.interval


def _control(path: str | Path) -> tuple[str, tuple, bytes] | None:
    """Byte order, the 20 control words and the raw header record, or None if not a DCD."""
    with open(path, "rb") as handle:
        head = handle.read(4 + _HEADER_RECORD)
    if len(head) < 4 + _HEADER_RECORD:
        return None
    for order in "<>":
        (length,) = struct.unpack(f"{order}i", head[:4])
        if length == _HEADER_RECORD and head[4:8] == b"CORD":
            return order, struct.unpack(f"{order}20i", head[8:88]), head
    return None


def read_dcd_clock(path: str | Path) -> DCDClock | None:
    """The frame clock of a DCD, or None when its header records no usable time step."""
    header = _control(path)
    if header is None:
        return None
    order, control, head = header
    first_step, steps_per_frame, charmm = control[1], control[2], control[19]
    if charmm:
        (delta,) = struct.unpack(f"{order}f", head[44:48])
    else:
        (delta,) = struct.unpack(f"{order}d", head[44:52])
    if not (np.isfinite(delta) and delta > 0 and steps_per_frame > 0):
        return None
    step_ps = float(delta) * AKMA_PS
    return DCDClock(first_ps=first_step * step_ps, interval_ps=steps_per_frame * step_ps)


def read_dcd_steps(path: str | Path) -> DCDSteps | None:
    """The MD steps of a DCD's frames (ISTART, NSAVC), or None when NSAVC is not positive.

    Independent of DELTA: a header without a time step can still number its frames' steps.
    """
    header = _control(path)
    if header is None or header[1][2] <= 0:
        return None
    return DCDSteps(first=int(header[1][1]), interval=int(header[1][2]))


def dcd_partial_frame_bytes(path: str | Path, n_atoms: int) -> int:
    """Bytes after the last whole frame of a DCD (a truncated write), 0 when it ends cleanly.

    mdtraj's DCD plugin counts frames by file size and silently skips a partial last frame; this
    says how much was left over. Layout (as MDAnalysis's and VMD's readers read it): the header
    record, a title record of any length, the atom-count record, then per frame an optional unit
    cell record (48 bytes, CHARMM files whose control word 11 is set) and three coordinate
    records of 4 * n_atoms bytes, each record framed by two 4-byte length markers. Files with
    fixed atoms (control word 9), whose first frame is longer, and unreadable headers give 0:
    nothing is claimed that cannot be checked.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(4 + _HEADER_RECORD + 8)
        if len(head) < 4 + _HEADER_RECORD + 8:
            return 0
        for order in "<>":
            (length,) = struct.unpack(f"{order}i", head[:4])
            if length == _HEADER_RECORD and head[4:8] == b"CORD":
                break
        else:
            return 0
        control = struct.unpack(f"{order}20i", head[8:88])
        (title_length,) = struct.unpack(f"{order}i", head[92:96])
    if control[8] != 0 or title_length < 0:
        return 0
    header = (4 + _HEADER_RECORD + 4) + (4 + title_length + 4) + (4 + 4 + 4)
    charmm = control[19] != 0
    frame = 3 * (4 * n_atoms + 8) + (56 if charmm and control[10] else 0)
    if charmm and control[11]:
        frame += 4 * n_atoms + 8
    body = path.stat().st_size - header
    return body % frame if body > 0 and frame > 0 else 0
