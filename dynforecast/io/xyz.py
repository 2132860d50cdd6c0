"""XYZ and extended XYZ: multi-frame reading with ase (streamed) and writing.

Reading (``ase.io.iread``, extxyz parser, which also reads plain XYZ):

- species from element symbols (atomic numbers; "X" gives 0); positions in Angstrom, as read.
- time: when the first frame's comment line carries ``time=<t>`` (as ASE's extxyz writer does),
  every frame must carry it and it is taken as femtoseconds (time unit "fs"); otherwise time is
  the frame index in the file and the time unit is "1".
- velocities: kept when the frames carry ``momenta`` (ASE's extxyz convention); ASE's internal
  velocity unit is converted to Angstrom/fs and recorded as ``velocity_unit = "Angstrom fs-1"``.
- bonds, inferred once from the first frame: atoms i < j are bonded when their distance is below
  ``BOND_SCALE * (r_cov_i + r_cov_j)``, r_cov being ASE's covalent radii
  (``ase.neighborlist.natural_cutoffs``); the search is ASE's vectorised ``neighbor_list``.
- unit cell: when frame 0 is periodic in any direction (``pbc``; ``Lattice=`` without ``pbc=``
  means periodic), every frame's ``Lattice=`` vectors become the box (Angstrom); frames must all
  have a periodic cell or none. A partly periodic box (``pbc="T T F"``: a slab) keeps its axes in
  the ``periodic_axes`` parameter, which the H5MD box's ``boundary`` and the writer follow.
- the particle count and species must stay the same in every frame.

Writing produces extended XYZ (readable as plain XYZ: the first four columns are symbol x y z):
positions in Angstrom with 9 significant digits, so float32 values survive a round trip exactly,
``time=`` in fs when the time unit converts, ``momenta`` when the velocities' unit converts, and
``Lattice=`` (Angstrom, 9 significant digits) with the box's ``pbc`` flags (``"T T T"`` unless it
is partly periodic), else ``pbc="F F F"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from dynforecast.console import log
from dynforecast.errors import InputError, OutputError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.checksum import file_checksum
from dynforecast.io.inputs import check_input_file
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

XYZ_EXTENSIONS = (".xyz", ".extxyz", ".xyz.gz", ".xyz.bz2", ".extxyz.gz", ".extxyz.bz2")

#: Bond when distance < BOND_SCALE * (r_cov_i + r_cov_j). 1.2 admits the H-H bond of H2
#: (0.74 Angstrom vs 2 * 0.31) and stretched bonds of MD frames, and rejects 1-3 neighbours.
BOND_SCALE = 1.2

#: Velocity unit recorded for velocities read from XYZ (ASE's unit converted on reading).
XYZ_VELOCITY_UNIT = "Angstrom fs-1"

#: What ase raises on malformed XYZ (its XYZError is an OSError; bad numbers give ValueError).
_ASE_ERRORS = (ValueError, IndexError, KeyError, StopIteration, EOFError, OSError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"unknown element symbol {exc.args[0]!r}" if exc.args else "unknown element"
    message = " ".join(str(exc).split()).removeprefix("ase.io.extxyz: ")
    return message or type(exc).__name__


def infer_bonds(atoms) -> np.ndarray:
    """int32 [M, 2] pairs i < j closer than BOND_SCALE * (r_cov_i + r_cov_j) (one frame)."""
    from ase.neighborlist import natural_cutoffs, neighbor_list

    first, second = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=BOND_SCALE))
    pairs = np.stack([first, second], axis=1)
    pairs = pairs[pairs[:, 0] < pairs[:, 1]]
    return np.unique(pairs, axis=0).astype(np.int32).reshape(-1, 2)


def _frames(path: Path, stride: int) -> Iterator:
    import ase.io

    return ase.io.iread(str(path), index=f"::{stride}", format="extxyz")


def open_xyz(
    path: str | Path, *, name: str, stride: int = 1, chunk_frames: int | None = None
) -> StreamedSystem:
    """Open an (extended) XYZ file as a stream of frame chunks (see module docstring)."""
    path = check_input_file(path)
    try:
        first = next(_frames(path, 1))
    except _ASE_ERRORS as exc:
        raise InputError(f"{path}: malformed XYZ ({_reason(exc)})") from exc
    if len(first) == 0:
        raise InputError(f"{path}: no atoms in frame 0")
    symbols = np.asarray(first.get_chemical_symbols(), dtype=str)
    has_velocities = "momenta" in first.arrays
    has_time = "time" in first.info
    parameters: dict = {"elements": symbols}
    if has_velocities:
        parameters["velocity_unit"] = XYZ_VELOCITY_UNIT
    header = Trajectory(
        name=name,
        species=first.numbers.astype(np.int32),
        length_unit="Angstrom",
        time_unit="fs" if has_time else "1",
        bonds=infer_bonds(first),
        names=symbols.tolist(),
        parameters=parameters,
        source=str(path),
        checksum=file_checksum(path),
        **empty_frames(len(first)),
    )
    chunk = auto_chunk_frames(header.n_particles, chunk_frames)
    has_box = bool(first.pbc.any())
    if has_box and not first.pbc.all():  # a slab or a wire: keep which axes wrap
        header.parameters[PERIODIC_AXES] = format_periodic_axes(first.pbc)
    chunks = _iter_chunks(path, header, stride, chunk, has_velocities, has_time, has_box)
    return StreamedSystem(
        header=header, has_velocities=has_velocities, chunks=chunks, has_box=has_box
    )


def _iter_chunks(
    path: Path,
    header: Trajectory,
    stride: int,
    chunk: int,
    has_velocities: bool,
    has_time: bool,
    has_box: bool,
) -> Iterator[FrameChunk]:
    """Group ase frames into FrameChunks; every frame is checked against frame 0."""
    from ase import units

    frames = _frames(path, stride)
    emitted = 0
    while True:
        try:
            batch = list(islice(frames, chunk))
        except _ASE_ERRORS as exc:
            raise InputError(f"{path}: malformed XYZ ({_reason(exc)})") from exc
        if not batch:
            break
        step = (emitted + np.arange(len(batch), dtype=np.int64)) * stride
        _check_same_atoms(path, header.species, batch, step)
        positions = np.stack([atoms.positions for atoms in batch]).astype(np.float32)
        check_finite(path, positions, first_frame=int(step[0]))
        velocities = None
        if has_velocities:
            _check_frames_have(path, batch, step, lambda a: "momenta" in a.arrays, "momenta")
            velocities = np.stack([a.get_velocities() for a in batch]) * units.fs
        if has_time:
            _check_frames_have(path, batch, step, lambda a: "time" in a.info, "time=")
            time = _frame_times(path, batch, step)
        else:
            time = step.astype(np.float64)
        yield FrameChunk(
            positions=positions,
            time=time,
            step=step,
            velocities=None if velocities is None else velocities.astype(np.float32),
            box=chunk_boxes(path, _cells(batch), step, has_box),
        )
        emitted += len(batch)


def _cells(batch: list) -> np.ndarray:
    """float64 [f, 3, 3] Lattice vectors (rows) of the frames; zeros where no direction is
    periodic, since ase keeps a cell on non-periodic frames that is no box (module docstring)."""
    cells = np.stack([atoms.cell.array for atoms in batch])
    periodic = np.stack([atoms.pbc for atoms in batch]).any(axis=1)
    return np.where(periodic[:, None, None], cells, 0.0)


def _check_same_atoms(path: Path, species: np.ndarray, batch: list, step: np.ndarray) -> None:
    counts = np.array([len(atoms) for atoms in batch])
    wrong = np.flatnonzero(counts != species.size)
    if wrong.size:
        frame = int(step[wrong[0]])
        raise InputError(
            f"{path}: frame {frame} has {counts[wrong[0]]} atoms, expected {species.size}"
        )
    numbers = np.stack([atoms.numbers for atoms in batch])
    changed = np.flatnonzero((numbers != species).any(axis=1))
    if changed.size:
        raise InputError(f"{path}: frame {int(step[changed[0]])} has different elements")


def _frame_times(path: Path, batch: list, step: np.ndarray) -> np.ndarray:
    """float64 [f] of the frames' ``time=`` values, or InputError naming the first bad frame."""
    try:
        return np.array([a.info["time"] for a in batch], dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(k for k, a in enumerate(batch) if not _is_number(a.info["time"]))
        raise InputError(
            f"{path}: frame {int(step[bad])} has a non-numeric time={batch[bad].info['time']!r}"
        ) from None


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _check_frames_have(path: Path, batch: list, step: np.ndarray, test, what: str) -> None:
    missing = [k for k, atoms in enumerate(batch) if not test(atoms)]
    if missing:
        raise InputError(f"{path}: frame {int(step[missing[0]])} lacks {what} (frame 0 has it)")


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
