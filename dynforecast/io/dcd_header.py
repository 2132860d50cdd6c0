"""Frame times from a DCD file's header, which mdtraj does not read.

A DCD starts with one Fortran record of 84 bytes: ``CORD`` and twenty int32 control words. Word 1
is ISTART (the MD step of the first frame), word 2 NSAVC (steps between saved frames) and word 9
DELTA, the integration time step in AKMA time units: a float32 in CHARMM files (word 19, the
CHARMM version, is non-zero) and a float64 spanning words 9-10 in X-PLOR files. Frame i was saved
at step ISTART + i·NSAVC, so its time is that times DELTA, as MDAnalysis's DCD reader computes it.
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


def read_dcd_clock(path: str | Path) -> DCDClock | None:
    """The frame clock of a DCD, or None when its header records no usable time step."""
    with open(path, "rb") as handle:
        head = handle.read(4 + _HEADER_RECORD)
    if len(head) < 4 + _HEADER_RECORD:
        return None
    for order in "<>":
        (length,) = struct.unpack(f"{order}i", head[:4])
        if length == _HEADER_RECORD and head[4:8] == b"CORD":
            break
    else:
        return None
    control = struct.unpack(f"{order}20i", head[8:88])
    first_step, steps_per_frame, charmm = control[1], control[2], control[19]
    if charmm:
        (delta,) = struct.unpack(f"{order}f", head[44:48])
    else:
        (delta,) = struct.unpack(f"{order}d", head[44:52])
    if not (np.isfinite(delta) and delta > 0 and steps_per_frame > 0):
        return None
    step_ps = float(delta) * AKMA_PS
    return DCDClock(first_ps=first_step * step_ps, interval_ps=steps_per_frame * step_ps)
