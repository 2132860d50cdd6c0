"""Molecular inputs read with mdtraj: PDB (one or many MODELs) and topology + trajectory pairs.

mdtraj reports nanometres and picoseconds; they are recorded as read ("nm", "ps"), never converted.
mdtraj numbers the frames of formats that it reads no time from; a DCD's times are taken from its
header instead (`dcd_header`), and the others (BINPOS, LAMMPS dumps, multi-model PDB) keep frame
indices, recorded with the dimensionless unit "1" rather than labelled picoseconds
(``ingest --time-step`` gives them real times).
Frames are streamed with ``mdtraj.iterload`` in chunks, so trajectories larger than memory convert.
Periodic unit cells are kept as mdtraj reports them (``unitcell_vectors``, nm; XTC, TRR, DCD, GRO,
NetCDF, PDB CRYST1); a PDB whose every MODEL has its own CRYST1 (as `io.pdb.write_pdb` writes a
changing box, and MDAnalysis reads it) gives each frame its own cell (`pdb.model_cells`), where
mdtraj would apply the file's last CRYST1 to every frame.
Species are atomic numbers (0 for virtual sites and unknown elements); bonds come from the topology
(PDB CONECT records and standard residue templates, PSF bond lists). Atom, residue and chain data
travel in ``Trajectory.parameters`` under these keys, which the PDB writer uses to write a valid PDB:

    residue_names [N] str, residue_ids [N] int (resSeq), residue_indices [N] int (0-based, unique
    per residue), chain_ids [N] str, segment_ids [N] str, elements [N] str;  atom names: ``names``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError, UsageError
from dynforecast.io.checksum import combined_checksum
from dynforecast.io.dcd_header import DCDClock, read_dcd_clock
from dynforecast.io.inputs import check_input_file, extension_of
from dynforecast.io.pdb import model_cells
from dynforecast.io.quiet import quiet_iter, stdout_to_stderr
from dynforecast.io.stream import (
    FrameChunk,
    StreamedSystem,
    auto_chunk_frames,
    check_finite,
    chunk_boxes,
    empty_frames,
    has_cell,
)
from dynforecast.io.trajectory import Trajectory

#: Files that carry both a topology and coordinates (read without --topology).
STANDALONE_EXTENSIONS = (".pdb", ".pdb.gz", ".ent")
#: Topology files accepted by --topology.
TOPOLOGY_EXTENSIONS = (".pdb", ".pdb.gz", ".ent", ".psf", ".gro", ".prmtop", ".parm7", ".mol2")
#: Trajectory files read with --topology.
TRAJECTORY_EXTENSIONS = (
    ".dcd",
    ".xtc",
    ".trr",
    ".nc",
    ".netcdf",
    ".ncdf",
    ".binpos",
    ".lammpstrj",
    ".gro",
    ".pdb",
    ".pdb.gz",
)
#: Formats whose frames carry no time that mdtraj reads: it numbers their frames instead.
UNTIMED_EXTENSIONS = (".dcd", ".binpos", ".lammpstrj", ".pdb", ".pdb.gz", ".ent")

#: What mdtraj raises on malformed input (it has no exception hierarchy of its own).
#: mdtraj also validates some PDB fields with bare `assert` statements (e.g. a short atom name).
_MDTRAJ_ERRORS = (
    ValueError,
    IndexError,
    KeyError,
    OSError,
    RuntimeError,
    EOFError,
    TypeError,
    AssertionError,
)


def load_topology(path: Path):  # -> mdtraj.Topology
    """mdtraj Topology of ``path``, or InputError naming the file."""
    import mdtraj

    check_input_file(path)
    try:
        with stdout_to_stderr():
            topology = mdtraj.load_topology(str(path))
    except IndexError as exc:  # mdtraj indexes the first atom of an atom-less file
        raise InputError(f"{path}: no atoms (no ATOM/HETATM records)") from exc
    except _MDTRAJ_ERRORS as exc:
        raise InputError(
            f"{path}: {_problem(path, 'cannot read topology')} ({_reason(exc)})"
        ) from exc
    if topology.n_atoms == 0:
        raise InputError(f"{path}: no atoms (no ATOM/HETATM records)")
    return topology


def _problem(path: Path, otherwise: str) -> str:
    """How a parse failure is described: PDB files are "malformed", others unreadable."""
    return "malformed PDB" if extension_of(path) in STANDALONE_EXTENSIONS else otherwise


def _reason(exc: BaseException) -> str:
    """mdtraj's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def select_atoms(topology, select: str | None, path: Path) -> np.ndarray | None:
    """Indices of atoms matched by the mdtraj selection ``select`` (None: all atoms)."""
    if select is None:
        return None
    try:
        indices = topology.select(select)
    except Exception as exc:  # mdtraj's parser raises bare ValueError/pyparsing errors
        raise UsageError(f"--select {select!r}: invalid selection ({_reason(exc)})") from exc
    if indices.size == 0:
        raise UsageError(f"--select {select!r}: matches no atoms in {path}")
    return indices.astype(np.int64)


def topology_fields(topology) -> dict:
    """Species, bonds, atom names and residue data of an mdtraj Topology (one pass over atoms).

    The pass is Python-level because mdtraj's topology is made of Python objects; it runs once per
    system, never per frame.
    """
    rows = [
        (
            atom.name,
            atom.element.atomic_number if atom.element is not None else 0,
            atom.element.symbol if atom.element is not None else "",
            atom.residue.name,
            atom.residue.resSeq,
            atom.residue.index,
            atom.residue.chain.chain_id or "",
            atom.segment_id or "",
        )
        for atom in topology.atoms
    ]
    names, species, elements, res_names, res_ids, res_index, chains, segments = zip(
        *rows, strict=True
    )
    bonds = np.array([(a.index, b.index) for a, b in topology.bonds], dtype=np.int32)
    return {
        "names": list(names),
        "species": np.asarray(species, dtype=np.int32),
        "bonds": bonds.reshape(-1, 2),
        "parameters": {
            "residue_names": np.asarray(res_names, dtype=str),
            "residue_ids": np.asarray(res_ids, dtype=np.int64),
            "residue_indices": np.asarray(res_index, dtype=np.int64),
            "chain_ids": np.asarray(chains, dtype=str),
            "segment_ids": np.asarray(segments, dtype=str),
            "elements": np.asarray(elements, dtype=str),
        },
    }


def _count_trajectory_atoms(path: Path) -> int | None:
    """Particle count from the trajectory's first frame, or None if mdtraj cannot tell cheaply."""
    import mdtraj

    try:
        with stdout_to_stderr(), mdtraj.open(str(path)) as handle:
            first = handle.read(n_frames=1)
    except _MDTRAJ_ERRORS as exc:
        raise InputError(f"{path}: cannot read trajectory ({_reason(exc)})") from exc
    xyz = first[0] if isinstance(first, tuple) else getattr(first, "xyz", None)
    return int(xyz.shape[1]) if isinstance(xyz, np.ndarray) and xyz.ndim == 3 else None


def open_molecular(
    path: str | Path,
    *,
    name: str,
    topology: str | Path | None = None,
    select: str | None = None,
    stride: int = 1,
    chunk_frames: int | None = None,
) -> StreamedSystem:
    """Open a PDB, or a trajectory with its ``topology`` file, as a stream of frame chunks."""
    path = check_input_file(path)
    top_path = Path(topology) if topology is not None else path
    top = load_topology(top_path)
    if topology is not None:
        n_frames_atoms = _count_trajectory_atoms(path)
        if n_frames_atoms is not None and n_frames_atoms != top.n_atoms:
            raise InputError(
                f"{path}: {n_frames_atoms} particles, but topology {top_path} has {top.n_atoms}"
            )
    indices = select_atoms(top, select, top_path)
    fields = topology_fields(top if indices is None else top.subset(indices))
    sources = [top_path, path] if topology is not None else [path]
    parameters = fields.pop("parameters")
    if topology is not None:
        parameters["topology"] = str(top_path)
    if select is not None:
        parameters["selection"] = select
    clock = read_dcd_clock(path) if extension_of(path) == ".dcd" else None
    header = Trajectory(
        name=name,
        length_unit="nm",
        time_unit="1" if clock is None and extension_of(path) in UNTIMED_EXTENSIONS else "ps",
        parameters=parameters,
        source=str(path),
        checksum=combined_checksum(sources),
        **fields,
        **empty_frames(len(fields["names"])),
    )
    # A separate topology is passed parsed (mdtraj would parse the file again); a PDB is its own.
    chunks = _iter_chunks(
        path,
        top if topology is not None else None,
        indices,
        stride,
        auto_chunk_frames(header.n_particles, chunk_frames),
        clock,
    )
    # Whether frames carry a unit cell must be known before the H5MD layout is made; mdtraj's
    # readers differ per format in where the cell is, so the first chunk (read next anyway) tells.
    first = next(chunks)
    return StreamedSystem(
        header=header,
        has_velocities=False,
        chunks=itertools.chain([first], chunks),
        has_box=first.box is not None,
    )


def _iter_chunks(
    path: Path, top, indices: np.ndarray | None, stride: int, chunk: int, clock: DCDClock | None
):
    """FrameChunks from mdtraj.iterload; errors become InputError naming the trajectory file.

    ``clock``, if given, replaces mdtraj's times (frame numbers for a DCD) with the header's.
    Frame 0 decides whether the system has a unit cell; `chunk_boxes` holds later frames to it.
    """
    import mdtraj

    emitted = 0
    has_box: bool | None = None
    cells = model_cells(path) if extension_of(path) in STANDALONE_EXTENSIONS else None
    try:
        frames = mdtraj.iterload(
            str(path), top=top, chunk=chunk, stride=stride, atom_indices=indices
        )
        for piece in quiet_iter(iter(frames)):
            positions = np.ascontiguousarray(piece.xyz, dtype=np.float32)
            check_finite(path, positions, first_frame=emitted * stride)
            count = positions.shape[0]
            step = (emitted + np.arange(count, dtype=np.int64)) * stride
            boxes = _frame_cells(piece.unitcell_vectors, cells, step)
            if has_box is None:
                has_box = bool(has_cell(boxes[:1])[0])
            yield FrameChunk(
                positions=positions,
                time=np.asarray(piece.time if clock is None else clock.times(step), np.float64),
                step=step,
                box=chunk_boxes(path, boxes, step, has_box),
            )
            emitted += count
    except _MDTRAJ_ERRORS as exc:
        raise InputError(f"{path}: {_problem(path, 'cannot read')} ({_reason(exc)})") from exc
    if emitted == 0:
        raise InputError(f"{path}: no frames")


def _frame_cells(
    unitcell_vectors: np.ndarray | None, cells: np.ndarray | None, step: np.ndarray
) -> np.ndarray:
    """[f, 3, 3] nm cells of a chunk, zeros where mdtraj reports none.

    ``cells`` (a PDB's per-MODEL CRYST1s, file frame order) replace mdtraj's one cell per file
    when mdtraj kept a cell at all: mdtraj discards dummy CRYST1s (a cell too small for the
    atoms), and that decision stands.
    """
    if unitcell_vectors is None:
        return np.zeros((step.size, 3, 3), dtype=np.float32)
    if cells is not None and step.size and int(step[-1]) < cells.shape[0]:
        return cells[step]
    return np.asarray(unitcell_vectors, dtype=np.float32)
