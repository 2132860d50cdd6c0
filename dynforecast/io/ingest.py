"""`dynforecast ingest`: convert input files into one H5MD file, one system per input.

Each input is opened as a stream (`readers.open_input`) and written chunk by chunk
(`H5MDWriter.append_frames`), so memory holds one chunk of frames at a time whatever the
trajectory's length. The output appears only when every input converted (atomic rename).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.console import log
from dynforecast.errors import UsageError
from dynforecast.io.amc import pair_skeletons
from dynforecast.io.atomic import reading_inputs
from dynforecast.io.frame_spacing import SpacingCheck
from dynforecast.io.h5md import SYSTEM_NAME, H5MDWriter, add_trajectory_system
from dynforecast.io.notes import NOTES_PARAMETER, IngestNote, notes_to_json
from dynforecast.io.readers import default_system_name, input_kind, open_input
from dynforecast.io.storable import check_storable_text
from dynforecast.io.table import format_table
from dynforecast.io.units import time_factor

#: Called after each chunk with (system name, frames written so far).
ProgressCallback = Callable[[str, int], None]


#: Units `--time-step` accepts, as (recorded unit, factor): ns and ms are stored as ps and s.
_TIME_STEP_UNITS = {
    "fs": ("fs", 1.0),
    "ps": ("ps", 1.0),
    "ns": ("ps", 1e3),
    "ms": ("s", 1e-3),
    "s": ("s", 1.0),
}
_TIME_STEP = re.compile(r"^\s*([0-9.eE+-]+)\s*([a-z]+)\s*$")

#: Notes about frame times a reader assumed or numbered (AMC's 120 frames/s, XYZ's step x dt,
#: frames without times): a given ``--time-step`` replaces those times, so they do not apply.
TIME_NOTE_KINDS = ("assumed_frame_rate", "guessed_time", "untimed_frames")
UNTIMED_DETAIL = (
    "the file stores no times; time is the frame index (give --time-step, e.g. --time-step '2 ps')"
)


@dataclass(frozen=True)
class TimeStep:
    """Time between consecutive frames of an input, replacing the times the file carries.

    BINPOS, LAMMPS dumps, multi-model PDB, a DCD whose header has no time step (`dcd_header`),
    GRO without ``t=`` and XYZ without ``time=`` store no time per frame; a user who knows the
    saving interval gives it here so that the data's frame spacing, which checkpoints check, is
    a real time. It also replaces a DCD header's clock and AMC's assumed 120 frames/s.
    """

    value: float
    unit: str

    @classmethod
    def parse(cls, text: str) -> TimeStep:
        """'2 ps', '0.5fs', '1ns' (stored as 1000 ps), '8.3ms' (stored in s)."""
        match = _TIME_STEP.match(text)
        number = _float_or_none(match.group(1)) if match else None
        unit = match.group(2) if match else None
        if number is None or unit not in _TIME_STEP_UNITS:
            raise UsageError(
                f"--time-step {text!r}: expected a number and a unit, one of "
                f"{', '.join(_TIME_STEP_UNITS)} (e.g. '2 ps')"
            )
        if not (math.isfinite(number) and number > 0):
            raise UsageError(f"--time-step {text!r}: expected a positive time")
        recorded, factor = _TIME_STEP_UNITS[unit]
        return cls(number * factor, recorded)

    def times(self, frame_indices: np.ndarray) -> np.ndarray:
        """Times of the input's frames with these indices (stride already in the indices)."""
        return frame_indices.astype(np.float64) * self.value


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class IngestedSystem:
    """What one input became: the summary `ingest` prints."""

    name: str
    source: str
    frames: int
    particles: int
    bonds: int
    length_unit: str
    time_unit: str
    has_velocities: bool
    notes: tuple[IngestNote, ...] = ()


def system_names(inputs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    """The names given with --name (one per input), or unique names from the file names."""
    if names:
        if len(names) != len(inputs):
            raise UsageError(f"--name given {len(names)} times for {len(inputs)} inputs")
        for name in names:
            if not SYSTEM_NAME.match(name):
                raise UsageError(f"--name {name!r}: use letters, digits, '_', '-' and '.' only")
        duplicates = sorted({name for name in names if list(names).count(name) > 1})
        if duplicates:
            raise UsageError(f"--name {duplicates[0]!r} given twice")
        return list(names)
    chosen: list[str] = []
    for path in inputs:
        base = default_system_name(path)
        name, suffix = base, 2
        while name in chosen:
            name, suffix = f"{base}-{suffix}", suffix + 1
        chosen.append(name)
    return chosen


def ingest(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    topology: str | Path | None = None,
    names: Sequence[str] | None = None,
    select: str | None = None,
    stride: int = 1,
    chunk_frames: int | None = None,
    overwrite: bool = False,
    compression: str | None = None,
    time_step: TimeStep | None = None,
    progress: ProgressCallback | None = None,
) -> list[IngestedSystem]:
    """Convert ``inputs`` into the H5MD file ``output``; return one summary per system.

    ``topology`` (a PDB/PSF/GRO/... file) applies to every input, which are then trajectories.
    ``time_step``, if given, replaces every input's own frame times (expressed in the time unit
    of an input's velocities, if it has any); an input with velocities but no frame times needs
    it (`io.frame_spacing`).
    """
    if not inputs:
        raise UsageError("no input files given")
    pairs = pair_skeletons([Path(p) for p in inputs], topology)  # ASF files pair with AMC ones
    paths = [path for path, _ in pairs]
    chosen = system_names(paths, names)
    options = {"select": select, "stride": stride, "chunk_frames": chunk_frames}
    for path, top in pairs:  # fail on any bad input before converting the first one
        input_kind(path, topology=top, **options)
    summaries = []
    read = [*paths, *(top for _, top in pairs)]  # each input's topology, --topology's or ASF
    with (
        reading_inputs(read),  # the output may not replace an input, --overwrite or not
        H5MDWriter(output, overwrite=overwrite, compression=compression) as writer,
    ):
        for (path, top), name in zip(pairs, chosen, strict=True):
            system = open_input(path, name=name, topology=top, **options)
            header = system.header
            spacing = SpacingCheck(system, time_step)  # velocities and times in one unit
            system_step = spacing.time_step
            if system_step is not None:
                header = dataclasses.replace(
                    header,
                    time_unit=system_step.unit,
                    parameters=_with_given_frame_time(header.parameters, system_step),
                )
            check_storable_text(header, path, top)
            add_trajectory_system(
                writer, header, has_velocities=system.has_velocities, has_box=system.has_box
            )
            frames = 0
            for chunk in system.chunks:
                time = chunk.time if system_step is None else system_step.times(chunk.frame_index)
                spacing.check(chunk, time)
                writer.append_frames(
                    name, chunk.positions, time, chunk.step, chunk.velocities, chunk.box
                )
                frames += chunk.n_frames
                if progress is not None:
                    progress(name, frames)
            notes = final_notes(system.notes, system_step, header.time_unit, frames)
            if notes:
                writer.set_parameter(name, NOTES_PARAMETER, notes_to_json(notes))
                for note in notes:
                    log(note.line(header.source or str(path)))
            summaries.append(
                IngestedSystem(
                    name=name,
                    source=header.source,
                    frames=frames,
                    particles=header.n_particles,
                    bonds=int(header.bonds.shape[0]),
                    length_unit=header.length_unit,
                    time_unit=header.time_unit,
                    has_velocities=system.has_velocities,
                    notes=tuple(notes),
                )
            )
    return summaries


#: Parameters recording a skeleton file's frame time in seconds (before any stride): BVH's
#: ``Frame Time`` and AMC's assumed 1/120 s. An export to BVH compares frame spacing with them.
FRAME_TIME_PARAMETERS = ("bvh_frame_time", "amc_frame_time")


def _with_given_frame_time(parameters: dict, time_step: TimeStep) -> dict:
    """A recorded frame time (BVH's Frame Time, AMC's assumed 1/120 s) replaced by
    ``--time-step``, in seconds.

    A BVH export compares the frames' spacing with this value to say whether the frame rate
    changed, and writes it for a single frame; left at the file's value it would report a change
    the user did not make, or write the rate the user overrode.
    """
    keys = [key for key in FRAME_TIME_PARAMETERS if key in parameters]
    if not keys:
        return parameters
    factor = time_factor(time_step.unit, "s")
    if factor is None:  # a unit with no seconds equivalent: the file's value is not true either
        return {k: v for k, v in parameters.items() if k not in keys}
    return {**parameters, **{key: np.array([time_step.value * factor]) for key in keys}}


def final_notes(
    notes: Sequence[IngestNote], time_step: TimeStep | None, time_unit: str, frames: int
) -> list[IngestNote]:
    """The notes to print and record for one system, once all its frames are written.

    With ``time_step`` the file's times were replaced, so notes on how they were assumed are
    dropped; without it, frames numbered rather than timed (unit "1") get an ``untimed_frames``
    note unless the reader gave a more specific one. This is the one place that sees both the
    reader's notes and ``--time-step``, whatever the reader.
    """
    if time_step is not None:
        return [note for note in notes if note.kind not in TIME_NOTE_KINDS]
    kept = list(notes)
    untimed = time_unit == "1" and frames > 1
    if untimed and not any(note.kind == "untimed_frames" for note in kept):
        kept.append(IngestNote("untimed_frames", frames, UNTIMED_DETAIL))
    return kept


def format_ingest_summary(systems: Sequence[IngestedSystem], output: str | Path) -> str:
    """Plain-text table of the ingested systems (stdout of `dynforecast ingest`)."""
    rows = [("system", "frames", "particles", "bonds", "units", "source")]
    rows += [
        (
            s.name,
            str(s.frames),
            str(s.particles),
            str(s.bonds),
            f"{s.length_unit}, {s.time_unit}",
            s.source,
        )
        for s in systems
    ]
    return f"{output}\n{format_table(rows)}"
