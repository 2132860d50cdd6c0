"""Molecular inputs read with mdtraj: PDB (one or many MODELs) and topology + trajectory pairs.

mdtraj reports nanometres and picoseconds; they are recorded as read ("nm", "ps"), never converted.
mdtraj numbers the frames of formats that it reads no time from; a DCD's times are taken from its
header instead (`dcd_header`), a GRO's from every title line's ``t=`` (`gro_frames`), and the
others (BINPOS, LAMMPS dumps, multi-model PDB, a DCD without a time step, a GRO frame without
``t=``) keep frame indices, recorded with the dimensionless unit "1" rather than labelled
picoseconds, with an ``untimed_frames`` note (``ingest --time-step`` gives them real times).
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

import contextlib
import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dynforecast.errors import DynforecastError, InputError, UsageError
from dynforecast.io.checksum import combined_checksum
from dynforecast.io.dcd_header import (
    DCDClock,
    dcd_partial_frame_bytes,
    read_dcd_clock,
    read_dcd_steps,
)
from dynforecast.io.gro_frames import (
    FrameIndexClock,
    GroClock,
    GroScan,
    scan_gro,
    stepless_detail,
    untimed_detail,
)
from dynforecast.io.gro_mdtraj import mdtraj_readable
from dynforecast.io.inputs import check_input_file, extension_of
from dynforecast.io.isolated import isolated_iter
from dynforecast.io.molecular_audit import (
    audit_gro,
    audit_pdb,
    audit_prmtop,
    audit_psf,
    dropped_columns_notes,
    warning_notes,
)
from dynforecast.io.notes import IngestNote
from dynforecast.io.pdb import model_cells
from dynforecast.io.quiet import quiet_iter, quiet_library
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
from dynforecast.io.unread_arrays import unread_arrays
from dynforecast.io.xdr_frames import XdrScan, scan_trr, scan_xtc

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
#: GROMACS XDR trajectories: their frame headers are checked before mdtraj reads them
#: (`xdr_frames`), and XTC's compressed coordinates are decoded in a child process (`isolated`).
XDR_SCANS = {".xtc": scan_xtc, ".trr": scan_trr}
ISOLATED_EXTENSIONS = (".xtc",)
#: Formats whose frames carry no time that mdtraj reads: it numbers their frames instead.
UNTIMED_EXTENSIONS = (".dcd", ".binpos", ".lammpstrj", ".pdb", ".pdb.gz", ".ent")

#: mdtraj has no exception hierarchy of its own: its readers raise ValueError, IndexError,
#: KeyError, OSError, RuntimeError, EOFError, TypeError, AssertionError (PDB field checks),
#: PSFError and its private _PSFEOF, pyparsing errors, and even bare ``Exception`` (GRO lines).
#: Every call into mdtraj therefore turns any Exception that is not ours into an InputError
#: naming the file; only those calls are wrapped, so that our own bugs still show as bugs.
#: Topology-only files: they hold no frames, so alone they need a trajectory.
TOPOLOGY_ONLY_EXTENSIONS = tuple(e for e in TOPOLOGY_EXTENSIONS if e not in STANDALONE_EXTENSIONS)


def load_topology(path: Path):  # -> mdtraj.Topology
    """mdtraj Topology of ``path``, or InputError naming the file."""
    return _load_topology(path, [])[0]


def _load_topology(path: Path, warnings_sink: list[str]):  # -> (Topology, codes or None)
    """mdtraj Topology of ``path`` and a PSF's insertion codes; InputError naming the file.

    Every exception mdtraj raises on a malformed file (its readers have no common error type)
    becomes an InputError; C-level output stays off the terminal (io/quiet.py).
    """
    import mdtraj

    from dynforecast.io.psf import load_psf

    check_input_file(path)
    codes = None
    try:
        with quiet_library(warnings_sink):
            if extension_of(path) == ".psf":
                topology, codes = load_psf(path)
            else:
                with _readable(path) as readable:
                    topology = mdtraj.load_topology(str(readable))
    except Exception as exc:  # mdtraj's readers raise anything, even bare Exception (GRO)
        if isinstance(exc, DynforecastError):
            raise
        if isinstance(exc, IndexError) and extension_of(path) in STANDALONE_EXTENSIONS:
            # mdtraj indexes the first atom of an atom-less PDB
            raise InputError(f"{path}: no atoms (no ATOM/HETATM records)") from exc
        if extension_of(path) in STANDALONE_EXTENSIONS and "same number of ATOMs" in str(exc):
            _raise_unequal_models(path, exc)
        raise InputError(
            f"{path}: {_problem(path, 'cannot read topology')} ({_reason(exc)})"
        ) from exc
    if topology.n_atoms == 0:
        what = "no ATOM/HETATM records" if extension_of(path) in STANDALONE_EXTENSIONS else "empty"
        raise InputError(f"{path}: no atoms ({what})")
    return topology, codes


def _raise_unequal_models(path: Path, exc: Exception) -> None:
    """An InputError naming the model whose record count differs from the first's, if found."""
    from dynforecast.io.pdb_models import unequal_model
    from dynforecast.io.pdb_records import read_pdb_bytes

    which = unequal_model(read_pdb_bytes(path))
    if which is not None:
        raise InputError(f"{path}: {which}") from exc


def _readable(path: Path) -> contextlib.AbstractContextManager[Path]:
    """``path`` as mdtraj can read it: a GRO whose titles defeat mdtraj's reader is handed on
    as a temporary copy (`gro_mdtraj`); every other file as it is."""
    if extension_of(path) == ".gro":
        return mdtraj_readable(path)
    return contextlib.nullcontext(path)


def _problem(path: Path, otherwise: str) -> str:
    """How a parse failure is described: PDB files are "malformed", others unreadable."""
    return "malformed PDB" if extension_of(path) in STANDALONE_EXTENSIONS else otherwise


def _reason(exc: BaseException) -> str:
    """mdtraj's message on one line (its type where the message says little)."""
    text = " ".join(str(exc).split())
    if not text or len(text) < 4 or text.strip("'\"").isdigit():
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:300]


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
    """Particle count from the trajectory's first frame, or None if mdtraj cannot tell cheaply.

    A PDB given as the trajectory is counted by its first MODEL's atoms (mdtraj's PDB file
    object has no ``read``); other readers read one frame.
    """
    import mdtraj

    try:
        if extension_of(path) in STANDALONE_EXTENSIONS:
            return _load_topology(path, [])[0].n_atoms
        with quiet_library([]), _readable(path) as readable, mdtraj.open(str(readable)) as handle:
            first = handle.read(n_frames=1)
    except DynforecastError:
        raise
    except Exception as exc:  # see _load_topology: mdtraj has no error hierarchy
        raise InputError(f"{path}: cannot read trajectory ({_reason(exc)})") from exc
    xyz = first[0] if isinstance(first, tuple) else getattr(first, "xyz", None)
    return int(xyz.shape[1]) if isinstance(xyz, np.ndarray) and xyz.ndim == 3 else None


def _audit_topology(top_path: Path, topology, fields: dict, codes) -> list[IngestNote]:
    """Repair and report what mdtraj guessed or dropped in the topology (molecular_audit)."""
    extension = extension_of(top_path)
    if extension in STANDALONE_EXTENSIONS:
        return audit_pdb(top_path, topology, fields)
    if extension == ".gro":
        return audit_gro(top_path, fields)
    if extension == ".psf":
        if codes is not None:
            _split_insertion_residues(fields, codes)
        return audit_psf(fields)
    if extension in (".prmtop", ".parm7"):
        return audit_prmtop(top_path, fields)
    return []


def _split_insertion_residues(fields: dict, codes: np.ndarray) -> None:
    """Keep a PSF's insertion codes and give residues 52 and 52A their own residue index.

    mdtraj, reading the copy without codes, joins consecutive atoms of equal (id, name,
    segment) into one residue; a change of insertion code starts a new one, as in a PDB.
    """
    parameters = fields["parameters"]
    parameters["insertion_codes"] = codes.astype(str)
    index = parameters["residue_indices"]
    new = np.ones(index.size, dtype=bool)
    new[1:] = (index[1:] != index[:-1]) | (codes[1:] != codes[:-1])
    parameters["residue_indices"] = np.cumsum(new).astype(np.int64) - 1


def open_molecular(
    path: str | Path,
    *,
    name: str,
    topology: str | Path | None = None,
    select: str | None = None,
    stride: int = 1,
    chunk_frames: int | None = None,
) -> StreamedSystem:
    """Open a PDB, or a trajectory with its ``topology`` file, as a stream of frame chunks.

    What mdtraj guessed, dropped or reinterpreted (elements, alternate locations, a placeholder
    cell, a partial last DCD frame, its warnings) is repaired where the file says better
    (`molecular_audit`) and listed in the stream's ``notes``. Raises InputError naming the file
    for every malformed input, UsageError for a bad ``select``.
    """
    path = check_input_file(path)
    top_path = Path(topology) if topology is not None else path
    library_warnings: list[str] = []
    top, codes = _load_topology(top_path, library_warnings)
    scan = None
    if topology is not None and extension_of(path) in XDR_SCANS:
        scan = XDR_SCANS[extension_of(path)](path, top.n_atoms, topology=top_path)
    elif topology is not None:
        n_frames_atoms = _count_trajectory_atoms(path)
        if n_frames_atoms is not None and n_frames_atoms != top.n_atoms:
            raise InputError(
                f"{path}: {n_frames_atoms} particles, but topology {top_path} has {top.n_atoms}"
            )
    fields = topology_fields(top)
    mdtraj_species = fields["species"].copy()
    notes = _audit_topology(top_path, top, fields, codes)
    if topology is not None:  # ingest prefixes the trajectory's name; say which file it was
        notes = [dataclasses.replace(n, detail=f"topology {top_path}: {n.detail}") for n in notes]
    if topology is not None and extension_of(path) in STANDALONE_EXTENSIONS and path != top_path:
        notes += dropped_columns_notes(path)  # a PDB trajectory drops these columns too
    _sync_elements(top, mdtraj_species, fields["species"])
    indices = select_atoms(top, select, top_path)
    if indices is not None:
        fields = _subset_fields(fields, indices)
    sources = [top_path, path] if topology is not None else [path]
    parameters = fields.pop("parameters")
    if topology is not None:
        parameters["topology"] = str(top_path)
    if select is not None:
        parameters["selection"] = select
    gro = scan_gro(path) if extension_of(path) == ".gro" else None
    clock, untimed = _frame_clock(path, gro, notes)
    steps_of = _file_steps(path, scan, gro, notes)
    header = Trajectory(
        name=name,
        length_unit="nm",
        time_unit="1" if untimed else "ps",
        parameters=parameters,
        source=str(path),
        checksum=combined_checksum(sources),
        **fields,
        **empty_frames(len(fields["names"])),
    )
    cryst1 = None
    if extension_of(path) in STANDALONE_EXTENSIONS:
        from dynforecast.io.pdb_records import read_atom_columns

        cryst1 = read_atom_columns(path).cryst1
    # A separate topology is passed parsed (mdtraj would parse the file again); a PDB is its own.
    chunks = _iter_chunks(
        path,
        top if topology is not None else None,
        indices,
        stride,
        auto_chunk_frames(header.n_particles, chunk_frames),
        clock,
        steps_of,
        _NoteSink(notes, library_warnings, cryst1, top.n_atoms, scan),
    )
    # Whether frames carry a unit cell must be known before the H5MD layout is made; mdtraj's
    # readers differ per format in where the cell is, so the first chunk (read next anyway) tells.
    first = next(chunks)
    return StreamedSystem(
        header=header,
        has_velocities=False,
        chunks=itertools.chain([first], chunks),
        has_box=first.box is not None,
        notes=notes,
    )


Clock = DCDClock | GroClock | FrameIndexClock


#: File frame indices [f] -> the MD steps the file stores for them (int64 [f]).
StepsOf = Callable[[np.ndarray], np.ndarray]


def _file_steps(
    path: Path, xdr: XdrScan | None, gro: GroScan | None, notes: list[IngestNote]
) -> StepsOf | None:
    """Where the file's MD step numbers are, which mdtraj does not report; None: frame indices.

    XTC/TRR frame headers carry the step (`xdr_frames`), a DCD header ISTART and NSAVC
    (`dcd_header`), GROMACS's GRO titles ``step=`` (`gro_frames`: used when every title has
    one; a title without it in some frames is a note). Other formats store no steps.
    """
    if xdr is not None:
        return xdr.steps.__getitem__
    if extension_of(path) == ".dcd":
        counter = read_dcd_steps(path)
        return counter.steps if counter is not None else None
    if gro is not None:
        detail = stepless_detail(gro)
        if detail is not None:
            missing = gro.n_frames - gro.stepped_frames
            notes.append(IngestNote("unnumbered_steps", missing, detail))
        return gro.steps.__getitem__ if gro.steps is not None else None
    return None


def _frame_clock(
    path: Path, gro: GroScan | None, notes: list[IngestNote]
) -> tuple[Clock | None, bool]:
    """Where frame times come from instead of mdtraj's, and whether they are frame indices.

    A DCD's from its header (`dcd_header`; frame indices when it records no time step); a GRO's
    from its title lines (`gro_frames`), frame indices with an ``untimed_frames`` note when a
    frame has no ``t=``; other formats keep mdtraj's times (frame indices for the formats in
    `UNTIMED_EXTENSIONS`, which ingest notes as untimed).
    """
    extension = extension_of(path)
    if extension == ".dcd":
        clock = read_dcd_clock(path)
        return clock, clock is None
    if gro is not None:
        scan = gro
        if scan.n_frames and scan.untimed_frames == 0:
            return GroClock(scan.times), False
        if scan.n_frames > 1:  # one frame needs no time (as ingest's own untimed note)
            notes.append(IngestNote("untimed_frames", scan.n_frames, untimed_detail(scan)))
        return FrameIndexClock(), True
    return None, extension in UNTIMED_EXTENSIONS


def _sync_elements(topology, before: np.ndarray, species: np.ndarray) -> None:
    """Give mdtraj's atoms the repaired elements, so ``--select "element K"`` sees them too.

    Touches only the atoms whose element the audit changed (``before`` -> ``species``, [N]).
    """
    from mdtraj.core import element as elements

    changed = np.flatnonzero(before != species).tolist()
    if not changed:
        return
    atoms = list(topology.atoms)
    for index in changed:
        z = int(species[index])
        atoms[index].element = elements.Element.getByAtomicNumber(z) if z else elements.virtual


def _subset_fields(fields: dict, indices: np.ndarray) -> dict:
    """`topology_fields` restricted to atoms ``indices`` (sorted), bonds renumbered."""
    position = np.full(len(fields["names"]), -1, dtype=np.int64)
    position[indices] = np.arange(indices.size)
    bonds = position[fields["bonds"].astype(np.int64)].reshape(-1, 2)
    bonds = bonds[(bonds >= 0).all(axis=1)].astype(np.int32)
    names = np.asarray(fields["names"], dtype=object)[indices].tolist()
    parameters = {key: value[indices] for key, value in fields["parameters"].items()}
    _, residue_indices = np.unique(parameters["residue_indices"], return_inverse=True)
    parameters["residue_indices"] = residue_indices.reshape(-1).astype(np.int64)
    return {
        "names": names,
        "species": np.asarray(fields["species"])[indices],
        "bonds": bonds,
        "parameters": parameters,
    }


class _NoteSink:
    """Where `_iter_chunks` leaves what it learns while reading: notes and mdtraj's warnings."""

    def __init__(
        self,
        notes: list[IngestNote],
        warnings: list[str],
        cryst1: str | None,
        n_atoms: int,
        scan: XdrScan | None = None,
    ):
        self.notes, self.warnings, self.cryst1, self.n_atoms = notes, warnings, cryst1, n_atoms
        self.scan = scan

    def finish(self, path: Path, frames_read: int) -> None:
        """Notes for the warnings seen and for a partial last DCD frame mdtraj skipped."""
        self.notes.extend(warning_notes(self.warnings, self.cryst1))
        unread = unread_arrays(path)
        if unread:
            self.notes.append(
                IngestNote(
                    "unread_arrays",
                    len(unread),
                    f"the file's {' and '.join(unread)} were not ingested (mdtraj reads "
                    f"positions, times and unit cells only)",
                )
            )
        partial = self.scan.partial_bytes if self.scan is not None else 0
        if extension_of(path) == ".dcd":
            partial = dcd_partial_frame_bytes(path, self.n_atoms)
        if partial:
            self.notes.append(
                IngestNote(
                    "dropped_partial_frame",
                    1,
                    f"the file ends {partial} bytes into a frame after its last whole frame "
                    f"(a truncated write); that partial frame was dropped",
                )
            )


def _iter_chunks(
    path: Path,
    top,
    indices: np.ndarray | None,
    stride: int,
    chunk: int,
    clock: Clock | None,
    steps_of: StepsOf | None,
    sink: _NoteSink,
):
    """FrameChunks from mdtraj.iterload; errors become InputError naming the trajectory file.

    ``clock``, if given, replaces mdtraj's times (`_frame_clock`); ``steps_of`` gives the
    file's MD steps of the kept frames (`_file_steps`), else the step is the file frame index.
    Frame 0 decides whether the system has a unit cell; `chunk_boxes` holds later frames to it.
    """
    import mdtraj

    emitted = 0
    has_box: bool | None = None
    cells = model_cells(path) if extension_of(path) in STANDALONE_EXTENSIONS else None

    def pieces():  # mdtraj's chunks; whatever mdtraj raises becomes an InputError
        try:
            with _readable(path) as readable:  # a GRO copy lives until the last chunk is read
                with quiet_library(sink.warnings):
                    if sink.scan is not None:  # XTC/TRR: whole frames only, as headers say
                        frames = _xdr_pieces(path, top, indices, stride, chunk, sink.scan.n_frames)
                    else:
                        frames = iter(
                            mdtraj.iterload(
                                str(readable),
                                top=top,
                                chunk=chunk,
                                stride=stride,
                                atom_indices=indices,
                            )
                        )
                yield from quiet_iter(frames, sink.warnings)
        except DynforecastError:
            raise
        except Exception as exc:  # mdtraj has no error hierarchy (bare Exception for GRO)
            raise InputError(f"{path}: {_problem(path, 'cannot read')} ({_reason(exc)})") from exc

    chunks = pieces()
    if extension_of(path) in ISOLATED_EXTENSIONS:
        chunks = isolated_iter(pieces, path, sink.warnings, lambda piece: len(piece.xyz))

    for piece in chunks:
        positions = np.ascontiguousarray(piece.xyz, dtype=np.float32)
        check_finite(path, positions, first_frame=emitted * stride)
        count = positions.shape[0]
        index = (emitted + np.arange(count, dtype=np.int64)) * stride
        boxes = _frame_cells(_mdtraj_vectors(piece), cells, index)
        if has_box is None:
            has_box = bool(has_cell(boxes[:1])[0])
        yield FrameChunk(
            positions=positions,
            time=np.asarray(piece.time if clock is None else clock.times(index), np.float64),
            step=index if steps_of is None else np.asarray(steps_of(index), dtype=np.int64),
            box=chunk_boxes(path, boxes, index, has_box),
            index=index,
        )
        emitted += count
    if emitted == 0:
        raise InputError(f"{path}: no frames")
    sink.finish(path, int(index[-1]) + 1)


@dataclasses.dataclass(frozen=True)
class _Piece:
    """The arrays of one chunk that ingest keeps (what crosses the pipe from `isolated_iter`)."""

    xyz: np.ndarray  # [f, n, 3] nm
    time: np.ndarray  # [f] ps
    unitcell_vectors: np.ndarray | None  # [f, 3, 3] nm
    unitcell_lengths: np.ndarray | None  # [f, 3] nm


def _xdr_pieces(
    path: Path, top, indices: np.ndarray | None, stride: int, chunk: int, n_frames: int
):
    """Chunks of an XTC/TRR read with mdtraj's file object, never past frame ``n_frames``.

    `iterload` would read on into a partial last frame (a truncated write) and fail there; the
    header scan knows where the whole frames end. As in `iterload`, each chunk is ``chunk``
    kept frames (every ``stride``-th of the file) read by ``read_as_traj``, so cells are
    mdtraj's exactly as for the other formats.
    """
    import mdtraj

    left = -(-n_frames // stride)  # kept frames: 0, stride, ... below n_frames
    with mdtraj.open(str(path)) as handle:
        while left > 0:
            count = min(chunk, left)
            traj = handle.read_as_traj(top, n_frames=count, stride=stride, atom_indices=indices)
            left -= count
            yield _Piece(traj.xyz, traj.time, traj.unitcell_vectors, traj.unitcell_lengths)


def _mdtraj_vectors(piece) -> np.ndarray | None:
    """mdtraj's [f, 3, 3] cell vectors (nm), zeros where the file's box is all zeros.

    mdtraj turns a frame's zero box (how XTC, TRR and DCD write "no box") into NaN vectors, the
    angles between zero-length vectors; left so, the frame would be refused as a non-finite
    cell instead of as a frame without one (`stream.chunk_boxes`).
    """
    vectors = piece.unitcell_vectors
    lengths = getattr(piece, "unitcell_lengths", None)
    if vectors is None or lengths is None:
        return vectors
    empty = ~np.asarray(lengths).any(axis=1)
    if not empty.any():
        return vectors
    vectors = np.array(vectors, dtype=np.float32)
    vectors[empty] = 0.0
    return vectors


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
