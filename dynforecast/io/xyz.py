"""XYZ and extended XYZ: multi-frame reading (our frame scanner + ase's parser, streamed) and writing.

Reading: `io.xyz_scan` splits the file into frames (blank lines between frames skipped and
noted, count lines checked, a frame the file ends inside noted and not read), ase's extxyz
parser (``ase.io.extxyz.read_xyz``, which also reads plain XYZ) parses a chunk of whole frames
at a time, and `io.xyz_frames` reads times and tallies what is not kept.

- species from element symbols (atomic numbers; "X" gives 0). ase reads symbols
  case-insensitively ("CL" is Cl, "ca" is Ca); symbols written in another case are noted.
  Unknown symbols are an InputError naming the line.
- positions in Angstrom, as read; a ``Properties`` without ``pos`` is refused (ase would
  place every atom at the origin). Atom lines with fewer values than declared are refused
  naming the line; extra values beyond the declared columns (plain ``symbol x y z`` lines with
  more numbers) are noted as ignored.
- time: see `io.xyz_frames` (``time=`` in fs; ``timestep=``/``dt=`` with or without
  ``step=``; otherwise the frame index with time unit "1").
- velocities: kept when the frames carry ``momenta`` (ASE's extxyz convention); ASE's internal
  velocity unit is converted to Angstrom/fs and recorded as ``velocity_unit = "Angstrom fs-1"``.
  `ingest` refuses velocities with unitless frame times unless ``--time-step`` is given.
- everything else a frame carries (forces, charges, masses, energies, other comment-line keys,
  plain comment text) is not kept, and noted by name.
- bonds, inferred once from the first frame: atoms i < j are bonded when their distance is below
  ``BOND_SCALE * (r_cov_i + r_cov_j)``, r_cov being ASE's covalent radii
  (`io.bond_inference`: one linear-memory neighbour list, vesin).
- unit cell: a frame periodic in any direction (``pbc``; ``Lattice=`` without ``pbc=`` means
  periodic) with a non-zero ``Lattice`` has a box (Angstrom); a periodic frame without a
  Lattice (or with one of zeros) is a placeholder: no box, noted; a Lattice on a frame with
  ``pbc="F F F"`` is no box either, noted. A periodic axis whose Lattice vector is zero is
  refused. Frames must all have a box or none, and the same pbc flags. A partly periodic box
  (``pbc="T T F"``: a slab) keeps its axes in the ``periodic_axes`` parameter, which the H5MD
  box's ``boundary`` and the writer follow.
- the particle count and species must stay the same in every frame.
- ``select`` (`io.selection`: element, name, index) keeps some atoms; bonds are inferred on
  all atoms and those between kept atoms kept.

Writing produces extended XYZ (readable as plain XYZ: the first four columns are symbol x y z):
positions in Angstrom with 9 significant digits, so float32 values survive a round trip exactly,
``time=`` in fs when the time unit converts, ``momenta`` when the velocities' unit converts, and
``Lattice=`` (Angstrom, 9 significant digits) with the box's ``pbc`` flags (``"T T T"`` unless it
is partly periodic), else ``pbc="F F F"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import numpy as np

from dynforecast.console import log
from dynforecast.errors import InputError, OutputError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.bond_inference import covalent_bonds
from dynforecast.io.checksum import file_checksum
from dynforecast.io.inputs import check_input_file
from dynforecast.io.notes import IngestNote, counted
from dynforecast.io.selection import Particles, select_subset
from dynforecast.io.stream import (
    FrameChunk,
    StreamedSystem,
    auto_chunk_frames,
    check_finite,
    chunk_boxes,
    empty_frames,
)
from dynforecast.io.trajectory import (
    PERIODIC_AXES,
    Trajectory,
    format_periodic_axes,
    periodic_axes,
)
from dynforecast.io.units import length_factor, time_factor, velocity_factor
from dynforecast.io.xyz_frames import STEP_KEYS, Clock, NotKept, columns, is_number, lookup
from dynforecast.io.xyz_scan import FrameScanner, RawFrame, open_text

XYZ_EXTENSIONS = (".xyz", ".extxyz", ".xyz.gz", ".xyz.bz2", ".extxyz.gz", ".extxyz.bz2")

#: Bond when distance < BOND_SCALE * (r_cov_i + r_cov_j). 1.2 admits the H-H bond of H2
#: (0.74 Angstrom vs 2 * 0.31) and stretched bonds of MD frames, and rejects 1-3 neighbours.
BOND_SCALE = 1.2

#: Velocity unit recorded for velocities read from XYZ (ASE's unit converted on reading).
XYZ_VELOCITY_UNIT = "Angstrom fs-1"

#: What ase raises on malformed XYZ (its XYZError is an OSError; bad numbers give ValueError).
_ASE_ERRORS = (ValueError, IndexError, KeyError, TypeError, StopIteration, EOFError, OSError)
_AXES = "abc"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"unknown element symbol {exc.args[0]!r}" if exc.args else "unknown element"
    message = " ".join(str(exc).split()).removeprefix("ase.io.extxyz: ")
    return message or type(exc).__name__


def infer_bonds(atoms, where: str = "frame 0") -> np.ndarray:
    """int32 [M, 2] pairs i < j closer than BOND_SCALE * (r_cov_i + r_cov_j) (one frame).

    Raises InputError starting with ``where`` for a cell no neighbour list can search.
    """
    return covalent_bonds(
        atoms.positions, atoms.numbers, BOND_SCALE, atoms.cell.array, atoms.pbc, where=where
    )


class _Frames:
    """The file's frames, checked and parsed chunk by chunk (one open scan of the file)."""

    def __init__(self, path: Path, stride: int) -> None:
        self.path = path
        self.stride = stride
        self.stream = open_text(path)
        self.scanner = FrameScanner(self.stream, path)
        self.raw = iter(self.scanner)
        self.extra_lines = 0  # atom lines with values beyond the declared columns
        self.first_extra = 0

    def take(self, count: int) -> list[tuple[RawFrame, object]]:
        """Up to ``count`` of the next stride-th frames as (raw frame, ase Atoms)."""
        raw = []
        try:
            if count > 0:
                for frame in self.raw:  # every frame is scanned; only kept ones are parsed
                    if frame.index % self.stride == 0:
                        raw.append(frame)
                        if len(raw) == count:
                            break
        except (OSError, EOFError, UnicodeError) as exc:  # gzip/bz2 corruption, I/O errors
            self.stream.close()
            raise InputError(f"{self.path}: cannot read ({_reason(exc)})") from exc
        for frame in raw:
            self._check_columns(frame)
        return list(zip(raw, self._parse(raw), strict=True))

    def _check_columns(self, frame: RawFrame) -> None:
        """Refuse short atom lines (naming the line); count lines with extra values."""
        layout = columns(frame.comment)
        if not layout.has_positions:  # ase would put every atom at the origin
            raise InputError(
                f"{self.path}: line {frame.line + 1}: the Properties of frame {frame.index} "
                "declare no 'pos' column"
            )
        expected = layout.values
        total = len("".join(frame.atoms).split())
        if total == expected * frame.n_atoms:
            return
        counts = np.array([len(line.split()) for line in frame.atoms])  # mismatch path only
        short = np.flatnonzero(counts < expected)
        if short.size:
            line = frame.first_atom_line + int(short[0])
            got = int(counts[short[0]])
            problem = "blank line" if got == 0 else f"{got} values, expected {expected},"
            raise InputError(
                f"{self.path}: line {line}: {problem} inside frame {frame.index} "
                f"(its count line {frame.line} declares {frame.n_atoms} atoms)"
            )
        extra = np.flatnonzero(counts > expected)
        if extra.size and not self.extra_lines:
            self.first_extra = frame.first_atom_line + int(extra[0])
        self.extra_lines += int(extra.size)

    def _parse(self, raw: list[RawFrame]) -> list:
        from ase.io.extxyz import read_xyz

        if not raw:
            return []
        try:
            return list(read_xyz(StringIO("".join(f.text() for f in raw)), index=slice(None)))
        except _ASE_ERRORS:
            pass
        for frame in raw:  # error path: find the frame (and line) to blame
            try:
                list(read_xyz(StringIO(frame.text()), index=slice(None)))
            except _ASE_ERRORS as exc:
                raise InputError(
                    f"{self.path}: {_where(frame, exc)}malformed XYZ ({_reason(exc)})"
                ) from exc
        raise InputError(f"{self.path}: malformed XYZ")  # not reached: a frame failed above

    def close(self) -> None:
        self.stream.close()


def _where(frame: RawFrame, exc: BaseException) -> str:
    """'line L: ' of the atom line an unknown symbol is on, else 'frame K (line L): '."""
    if isinstance(exc, KeyError) and exc.args:
        symbol = str(exc.args[0]).lower()
        for k, line in enumerate(frame.atoms):
            words = line.split()
            if words and words[0].lower() == symbol:
                return f"line {frame.first_atom_line + k}: "
    return f"frame {frame.index} (line {frame.line}): "


def open_xyz(
    path: str | Path,
    *,
    name: str,
    select: str | None = None,
    stride: int = 1,
    chunk_frames: int | None = None,
) -> StreamedSystem:
    """Open an (extended) XYZ file as a stream of frame chunks (see module docstring)."""
    path = check_input_file(path)
    frames = _Frames(path, stride)
    first = frames.take(1)
    if not first:
        frames.close()
        truncated = frames.scanner.truncated
        if truncated is not None:
            raise InputError(
                f"{path}: frame 0 (line {truncated.line}) is truncated: the file ends after "
                f"{truncated.present} of its {truncated.declared} atom lines"
            )
        raise InputError(f"{path}: no frames")
    raw0, atoms0 = first[0]
    if len(atoms0) == 0:
        frames.close()
        raise InputError(f"{path}: no atoms in frame 0")
    symbols = np.asarray(atoms0.get_chemical_symbols(), dtype=str)
    species = atoms0.numbers.astype(np.int32)
    has_velocities = "momenta" in atoms0.arrays
    clock = Clock.of(atoms0.info)
    if not np.isfinite(atoms0.cell.array).all():  # ase's neighbour list would fail on it
        frames.close()
        raise InputError(f"{path}: non-finite (NaN or inf) unit cell in frame 0")
    try:
        bonds = infer_bonds(atoms0, where=f"{path}: frame 0")
    except InputError:
        frames.close()
        raise
    notes: list[IngestNote] = []
    kept = None
    if select is not None:
        kept, bonds = select_subset(select, Particles(symbols.tolist(), species), bonds)
        symbols, species = symbols[kept], species[kept]
    parameters: dict = {"elements": symbols}
    if has_velocities:
        parameters["velocity_unit"] = XYZ_VELOCITY_UNIT
    if select is not None:
        parameters["selection"] = select
    cell = _cell_state(atoms0)
    has_box = cell == "box"
    if has_box and not atoms0.pbc.all():  # a slab or a wire: keep which axes wrap
        parameters[PERIODIC_AXES] = format_periodic_axes(atoms0.pbc)
    header = Trajectory(
        name=name,
        species=species,
        length_unit="Angstrom",
        time_unit=clock.time_unit,
        bonds=bonds,
        names=symbols.tolist(),
        parameters=parameters,
        source=str(path),
        checksum=file_checksum(path),
        **empty_frames(species.size),
    )
    recased = _recased(raw0, atoms0)
    if recased is not None:
        notes.append(recased)
    if (detail := clock.note_detail()) is not None:
        notes.append(IngestNote("guessed_time", 1, detail))
    chunk = auto_chunk_frames(header.n_particles, chunk_frames)
    reading = _Reading(path, frames, header, clock, has_velocities, has_box, atoms0, kept, notes)
    return StreamedSystem(
        header=header,
        has_velocities=has_velocities,
        chunks=reading.chunks(first, chunk),
        has_box=has_box,
        notes=notes,
    )


def _whole_number(value: object) -> bool:
    """True for an int, or a float with no fractional part (``step=1000.0``)."""
    return is_number(value) and np.isfinite(float(value)) and float(value) == int(value)


def step_key(info: dict) -> str | None:
    """The comment-line key of frame 0 that numbers MD steps (``step=``, ``md_step=``,
    ``nstep=``, any case) with a whole-number value, or None; stored as H5MD ``step``."""
    found = lookup(info, STEP_KEYS)
    return found[0] if found is not None and _whole_number(found[1]) else None


def _recased(raw: RawFrame, atoms) -> IngestNote | None:
    """A note when frame 0 writes element symbols in another case than ase read them."""
    column = columns(raw.comment).species
    if column is None:
        return None
    written = np.array([line.split()[column] for line in raw.atoms], dtype=str)  # once per file
    read = np.asarray(atoms.get_chemical_symbols(), dtype=str)
    differs = written != read
    if not differs.any():
        return None
    pairs = dict(zip(written[differs].tolist(), read[differs].tolist(), strict=True))
    shown = ", ".join(f"{w!r} as {r}" for w, r in list(pairs.items())[:4])
    count = int(differs.sum())
    return IngestNote(
        "recased_symbols",
        count,
        f"element symbols of {counted(count, 'atom')} read case-insensitively: {shown}",
    )


def _cell_state(atoms) -> str:
    """'box', 'none', 'placeholder' (periodic, no or zero Lattice) or 'ignored' (Lattice,
    pbc all F) for one frame."""
    periodic = bool(atoms.pbc.any())
    lattice = bool(np.any(atoms.cell.array))
    if periodic:
        return "box" if lattice else "placeholder"
    return "ignored" if lattice else "none"


class _Reading:
    """The chunk iterator of one open XYZ file and the notes it collects while reading."""

    def __init__(
        self,
        path: Path,
        frames: _Frames,
        header: Trajectory,
        clock: Clock,
        has_velocities: bool,
        has_box: bool,
        atoms0,
        kept: np.ndarray | None,
        notes: list[IngestNote],
    ) -> None:
        self.path, self.frames, self.header, self.clock = path, frames, header, clock
        self.has_velocities, self.has_box, self.kept, self.notes = (
            has_velocities,
            has_box,
            kept,
            notes,
        )
        self.n_atoms = len(atoms0)
        self.species = atoms0.numbers
        self.pbc = atoms0.pbc.copy()
        self.not_kept = NotKept()
        self.cells = {"placeholder": [0, -1], "ignored": [0, -1]}
        self.step_key = step_key(atoms0.info)

    def chunks(self, first: list, chunk: int) -> Iterator[FrameChunk]:
        try:
            batch = first + self.frames.take(chunk - 1)
            while batch:
                yield self._chunk(batch)
                batch = self.frames.take(chunk)
        finally:
            self.frames.close()
        self._final_notes()

    def _chunk(self, batch: list) -> FrameChunk:
        path = self.path
        raw = [r for r, _ in batch]
        frames = [a for _, a in batch]
        step = np.array([r.index for r in raw], dtype=np.int64)
        md_steps = self._md_steps(frames, step)
        self._check_same_atoms(raw, frames, step)
        positions = np.stack([atoms.positions for atoms in frames]).astype(np.float32)
        check_finite(path, positions, first_frame=int(step[0]))
        velocities = None
        if self.has_velocities:
            missing = [k for k, a in enumerate(frames) if "momenta" not in a.arrays]
            if missing:
                raise InputError(
                    f"{path}: frame {int(step[missing[0]])} lacks momenta (frame 0 has it)"
                )
            velocities = _velocities(frames)
        time = self._times(frames, step)
        boxes = self._cells(frames, step)
        used = self.clock.used_keys() | ({self.step_key} if self.step_key else set())
        for r, atoms in batch:
            self.not_kept.add(atoms, r.comment, used)
        if self.kept is not None:
            positions = positions[:, self.kept]
            velocities = None if velocities is None else velocities[:, self.kept]
        return FrameChunk(
            positions=np.ascontiguousarray(positions),
            time=time,
            step=step if md_steps is None else md_steps,
            velocities=None if velocities is None else velocities.astype(np.float32),
            box=chunk_boxes(path, boxes, step, self.has_box),
            index=step,
        )

    def _md_steps(self, frames: list, index: np.ndarray) -> np.ndarray | None:
        """int64 [f] MD steps from the step key frame 0 carries (`step_key`), or None.

        Frame 0 decides, as for times: a later frame without a whole-number value of that key
        is an InputError naming it, since H5MD steps are written chunk by chunk and cannot
        switch to frame indices part way.
        """
        key = self.step_key
        if key is None:
            return None
        values = [a.info.get(key) for a in frames]
        for k, value in enumerate(values):
            if not _whole_number(value):
                problem = f"lacks {key}=" if value is None else f"has {key}={value!r}"
                raise InputError(
                    f"{self.path}: frame {int(index[k])} {problem} (frame 0 has a whole-number "
                    f"{key}=, stored as the MD step of every frame)"
                )
        return np.asarray(values, dtype=np.int64)

    def _check_same_atoms(self, raw: list, frames: list, step: np.ndarray) -> None:
        counts = np.array([len(atoms) for atoms in frames])
        wrong = np.flatnonzero(counts != self.n_atoms)
        if wrong.size:
            k = int(wrong[0])
            raise InputError(
                f"{self.path}: line {raw[k].line}: frame {int(step[k])} has {counts[k]} atoms, "
                f"expected {self.n_atoms}"
            )
        numbers = np.stack([atoms.numbers for atoms in frames])
        changed = np.flatnonzero((numbers != self.species).any(axis=1))
        if changed.size:
            k = int(changed[0])
            raise InputError(
                f"{self.path}: line {raw[k].line}: frame {int(step[k])} has different elements"
            )

    def _times(self, frames: list, step: np.ndarray) -> np.ndarray:
        """float64 [f] frame times in the clock's unit; InputError naming the first bad frame."""
        clock = self.clock
        if clock.mode == "none":
            return step.astype(np.float64)
        if clock.mode == "index":
            self._check_step_size(frames, step)
            return step.astype(np.float64) * clock.step_size
        key = clock.key if clock.mode == "time" else clock.step_key
        values = [a.info.get(key) for a in frames]
        bad = [k for k, v in enumerate(values) if not is_number(v)]
        if bad:
            k = bad[0]
            value = values[k]
            problem = f"lacks {key}=" if value is None else f"has a non-numeric {key}={value!r}"
            raise InputError(f"{self.path}: frame {int(step[k])} {problem} (frame 0 has one)")
        times = np.asarray(values, dtype=np.float64)
        if clock.mode == "step":
            self._check_step_size(frames, step)
            times = times * clock.step_size
        return times

    def _check_step_size(self, frames: list, step: np.ndarray) -> None:
        """Every frame must give frame 0's MD step (times are step x step size)."""
        key, size = self.clock.key, self.clock.step_size
        for k, atoms in enumerate(frames):
            value = atoms.info.get(key)
            if not is_number(value) or float(value) != size:
                raise InputError(
                    f"{self.path}: frame {int(step[k])} has {key}={value!r} "
                    f"(frame 0 has {size:g}; the MD step must stay the same)"
                )

    def _cells(self, frames: list, step: np.ndarray) -> np.ndarray:
        """float64 [f, 3, 3] boxes (rows) of the frames, zeros for frames without one."""
        pbc = np.stack([atoms.pbc for atoms in frames])
        # a frame without any periodic axis is left to chunk_boxes' "no unit cell" message
        changed = np.flatnonzero((pbc != self.pbc).any(axis=1) & pbc.any(axis=1) & self.pbc.any())
        if changed.size:
            k = int(changed[0])
            raise InputError(
                f"{self.path}: frame {int(step[k])} has pbc={_flags(pbc[k])} "
                f"(frame 0 has {_flags(self.pbc)})"
            )
        cells = np.stack([atoms.cell.array for atoms in frames])
        lattice = cells.reshape(len(frames), -1).any(axis=1)
        zero_axis = ~cells.any(axis=2) & pbc & lattice[:, None]  # periodic axis, zero vector
        if zero_axis.any():
            k, axis = np.argwhere(zero_axis)[0]
            raise InputError(
                f"{self.path}: frame {int(step[k])}: Lattice vector {_AXES[axis]} is zero but "
                f"pbc={_flags(pbc[k])} makes that axis periodic"
            )
        periodic = pbc.any(axis=1)
        for state, where in (
            ("placeholder", periodic & ~lattice),
            ("ignored", ~periodic & lattice),
        ):
            if where.any():
                tally = self.cells[state]
                tally[0] += int(where.sum())
                tally[1] = int(step[np.argmax(where)]) if tally[1] < 0 else tally[1]
        return np.where((periodic & lattice)[:, None, None], cells, 0.0)

    def _final_notes(self) -> None:
        notes, scanner = self.notes, self.frames.scanner
        blank, first_blank = scanner.blank_lines
        if blank:
            notes.append(
                IngestNote(
                    "skipped_blank_lines",
                    blank,
                    f"{counted(blank, 'blank line')} between frames skipped "
                    f"(the first: line {first_blank})",
                )
            )
        if (cut := scanner.truncated) is not None:
            notes.append(
                IngestNote(
                    "truncated_frame",
                    1,
                    f"the file ends inside frame {cut.index} (line {cut.line}: {cut.present} of "
                    f"{cut.declared} atom lines); that frame is not read",
                )
            )
        if self.frames.extra_lines:
            notes.append(
                IngestNote(
                    "ignored_columns",
                    self.frames.extra_lines,
                    f"values beyond the declared columns on "
                    f"{counted(self.frames.extra_lines, 'atom line')} ignored "
                    f"(the first: line {self.frames.first_extra})",
                )
            )
        count, frame = self.cells["placeholder"]
        if count:
            notes.append(
                IngestNote(
                    "placeholder_cell",
                    count,
                    f"{counted(count, 'frame')} (the first: frame {frame}) periodic (pbc) but "
                    "without a Lattice or with one of zeros: stored without a unit cell",
                )
            )
        count, frame = self.cells["ignored"]
        if count:
            notes.append(
                IngestNote(
                    "ignored_cell",
                    count,
                    f"the Lattice of {counted(count, 'frame')} (the first: frame {frame}) not "
                    'stored: pbc is "F F F"',
                )
            )
        for kind, count, detail in self.not_kept.notes():
            notes.append(IngestNote(kind, count, detail))


def _flags(pbc: np.ndarray) -> str:
    return '"' + " ".join("T" if p else "F" for p in pbc) + '"'


def _velocities(frames: list) -> np.ndarray:
    """float64 [f, N, 3] velocities in Angstrom/fs from the frames' momenta."""
    from ase import units

    return np.stack([a.get_velocities() for a in frames]) * units.fs


# Writing -------------------------------------------------------------------------------------


def write_xyz(trajectory: Trajectory, path: str | Path, *, overwrite: bool = False) -> None:
    """Write ``trajectory`` as extended XYZ in Angstrom (fs for time), atomically."""
    from ase import units
    from ase.data import atomic_masses, chemical_symbols

    trajectory.validate()
    if trajectory.n_particles == 0:
        raise OutputError(f"{path}: nothing to write (no particles)")
    to_angstrom = length_factor(trajectory.length_unit, "Angstrom")
    to_fs = time_factor(trajectory.time_unit, "fs")
    positions = trajectory.positions.astype(np.float64) * (to_angstrom or 1.0)
    columns = [positions]
    properties = "species:S:1:pos:R:3"
    if trajectory.velocities is not None:
        unit = trajectory.parameters.get("velocity_unit")
        to_angstrom_fs = velocity_factor(
            unit if isinstance(unit, str) else None, trajectory.length_unit, trajectory.time_unit
        )
        if to_angstrom_fs is None:
            log(
                f"warning: {path}: velocities left out (their unit does not convert to Angstrom/fs)"
            )
        else:
            masses = atomic_masses[trajectory.species][None, :, None]
            momenta = (
                trajectory.velocities.astype(np.float64) * (to_angstrom_fs / units.fs) * masses
            )
            columns.append(momenta)
            properties += ":momenta:R:3"
    values = np.concatenate(columns, axis=2)  # [F, N, 3 or 6]
    symbols = np.asarray(chemical_symbols)[np.clip(trajectory.species, 0, None)]
    number = " %.9g" * values.shape[2]
    body = "".join(f"{symbol:<2s}{number}\n" for symbol in symbols)
    times = trajectory.time * to_fs if to_fs is not None else None
    cells = _lattice_fields(trajectory, to_angstrom or 1.0)
    with atomic_output(path, overwrite=overwrite) as scratch, open(scratch, "w") as stream:
        # One formatted block per frame: the per-value work happens inside C string formatting.
        for frame in range(trajectory.n_frames):
            time = f" time={float(times[frame])!r}" if times is not None else ""
            cell = cells[frame] if cells is not None else 'pbc="F F F"'
            stream.write(f"{trajectory.n_particles}\nProperties={properties}{time} {cell}\n")
            stream.write(body % tuple(values[frame].ravel().tolist()))


def _lattice_fields(trajectory: Trajectory, to_angstrom: float) -> list[str] | None:
    """Per frame 'Lattice="ax ay az bx ... cz" pbc="T T T"' in Angstrom, or None without a box.

    ``pbc`` follows the ``periodic_axes`` parameter of a partly periodic box (a slab: "T T F").

    Nine significant digits, like positions, so a float32 box survives the round trip exactly;
    unitless boxes are written as if in Angstrom, as positions are.
    """
    if trajectory.box is None:
        return None
    box = trajectory.box.astype(np.float64).reshape(-1, 9) * to_angstrom
    pbc = format_periodic_axes(periodic_axes(trajectory.parameters, True))
    field = 'Lattice="' + " ".join(["%.9g"] * 9) + f'" pbc="{pbc}"\n'
    return (field * len(box) % tuple(box.ravel().tolist())).splitlines()
