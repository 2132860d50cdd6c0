"""Velocities and frame times must share a time unit; the velocities themselves tell the spacing.

A system with velocities in a time unit (XYZ momenta: Angstrom/fs) whose frames carry no time
(frame indices, unit "1") would be stored with velocities x time step silently off by the real
frame spacing. `SpacingCheck` (run by `ingest` on every system) therefore

- refuses such a system unless ``--time-step`` is given, naming the option and the spacing the
  velocities imply;
- expresses a given ``--time-step`` in the velocities' time unit ("1 ps" is stored as 1000 fs
  next to Angstrom/fs velocities), so that velocity x time step is a length;
- notes when the frame times (the file's or ``--time-step``'s) disagree with the velocities by
  more than a factor `MISMATCH` (frames saved every 10 MD steps but timestamped as one, or a
  mistyped ``--time-step``).

The implied spacing is the least-squares dt of x[k+1] - x[k] = dt (v[k] + v[k+1]) / 2 over
consecutive frames of the first chunk (the trapezoid rule, exact to O(dt^3) for velocity
Verlet); it is one vectorised reduction.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dynforecast.errors import InputError
from dynforecast.io.notes import IngestNote
from dynforecast.io.stream import FrameChunk, StreamedSystem
from dynforecast.io.units import length_factor, time_factor

#: Frame times and velocities disagreeing by more than this factor are noted.
MISMATCH = 1.5


def implied_spacing(positions: np.ndarray, velocities: np.ndarray) -> float | None:
    """Frame spacing (velocity time unit) that consecutive frames' positions [f, N, 3] (velocity
    length unit) and velocities [f, N, 3] imply; None with fewer than 2 frames or no motion."""
    if positions.shape[0] < 2:
        return None
    moved = np.diff(positions.astype(np.float64), axis=0)
    mean_velocity = 0.5 * (velocities[1:].astype(np.float64) + velocities[:-1])
    denominator = float(np.sum(mean_velocity * mean_velocity))
    spacing = float(np.sum(moved * mean_velocity)) / denominator if denominator > 0 else 0.0
    return spacing if np.isfinite(spacing) and spacing > 0 else None


def velocity_units(unit: object) -> tuple[str, str] | None:
    """(length, time) of a velocity unit "L T-1" ("Angstrom fs-1" -> ("Angstrom", "fs"))."""
    parts = unit.split() if isinstance(unit, str) else []
    if len(parts) != 2 or not parts[1].endswith("-1"):
        return None
    return parts[0], parts[1].removesuffix("-1")


class SpacingCheck:
    """Holds one system's velocities and frame times to each other (module docstring).

    ``time_step`` is ingest's `TimeStep` or None; `time_step` (the attribute, after init) is the
    one to apply, in the velocities' time unit where that converts.
    """

    def __init__(self, system: StreamedSystem, time_step) -> None:
        self.system = system
        header = system.header
        units = velocity_units(header.parameters.get("velocity_unit"))
        self.active = system.has_velocities and units is not None
        self.velocity_time = units[1] if units is not None else ""
        self.length_scale = (
            length_factor(header.length_unit, units[0]) if units is not None else None
        )
        self.given = time_step
        if time_step is not None and self.active:
            factor = time_factor(time_step.unit, self.velocity_time)
            if factor is not None:
                time_step = dataclasses.replace(
                    time_step, value=time_step.value * factor, unit=self.velocity_time
                )
        self.time_step = time_step
        self.time_unit = time_step.unit if time_step is not None else header.time_unit
        self.pending: FrameChunk | None = None  # frames seen before the spacing could be judged
        self.done = not self.active

    def check(self, chunk: FrameChunk, time: np.ndarray) -> None:
        """Judge the spacing once two frames are seen; raise InputError or add a note."""
        if self.done or chunk.velocities is None:
            return
        positions, velocities, times = chunk.positions, chunk.velocities, time
        if self.pending is not None:
            positions = np.concatenate([self.pending.positions, positions])
            velocities = np.concatenate([self.pending.velocities, velocities])
            times = np.concatenate([self.pending.time, times])
        if positions.shape[0] < 2:
            self.pending = dataclasses.replace(chunk, time=time)
            return
        self.done = True
        scale = self.length_scale if self.length_scale is not None else 1.0
        implied = implied_spacing(positions * scale, velocities)
        source = self.system.header.source
        unit = self.system.header.parameters.get("velocity_unit")
        if self.time_unit == "1":
            hint = (
                f"--time-step '{implied:.2g} {self.velocity_time}' is what the velocities imply"
                if implied is not None
                else f"e.g. --time-step '1 {self.velocity_time}'"
            )
            raise InputError(
                f"{source}: the file has velocities ({unit}) but no frame times (for XYZ: no "
                f"time=, timestep= or dt= key); give --time-step ({hint})"
            )
        to_velocity_time = time_factor(self.time_unit, self.velocity_time)
        if implied is None or to_velocity_time is None:
            return
        spacing = float(np.median(np.diff(times))) * to_velocity_time
        if spacing > 0 and not (1 / MISMATCH < implied / spacing < MISMATCH):
            origin = "--time-step" if self.given is not None else "the file's frame times"
            self.system.notes.append(
                IngestNote(
                    "velocity_time_mismatch",
                    1,
                    f"the velocities imply about {implied:.2g} {self.velocity_time} between "
                    f"frames, but {origin} give {spacing:.3g} {self.velocity_time}; check "
                    "the time step",
                )
            )
