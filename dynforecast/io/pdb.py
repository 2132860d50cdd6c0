"""PDB writing (reading is mdtraj's, in molecular.py) and per-MODEL unit cells.

The atoms' PDB columns are rebuilt from what `molecular.topology_fields` and `molecular_audit`
stored (atom names, residue names, ids and indices, chain and segment ids, elements, insertion
codes, alternate locations, HETATM flags), so an ingested PDB comes back with its residues,
chains and insertion codes, and re-ingesting it gives the same residues and bonds. Systems
without residue data (XYZ, skeletons) become one residue "UNK" in chain A with atom names from
``Trajectory.names`` (or element symbols). PDB stores Angstrom with three decimals: positions are
converted from the recorded unit (unitless positions are written as if in Angstrom), so a
PDB -> H5MD -> PDB -> H5MD round trip reproduces the positions to float32 precision. Bonds
outside standard residue templates are kept as CONECT records. The record text is
`pdb_format`'s.

Unit cells: mdtraj reads one CRYST1 per file, which would lose a changing (NPT) box. The writer
therefore puts frame 0's CRYST1 in the header and each frame's CRYST1 inside its MODEL, where
MDAnalysis reads a cell per frame, and `model_cells` reads them back for molecular.py. CRYST1
holds lengths in Angstrom with three decimals and angles in degrees with two.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dynforecast import __version__
from dynforecast.console import log
from dynforecast.errors import InputError, OutputError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.elements import SYMBOLS
from dynforecast.io.pdb_format import (
    CRYST1_FORMAT,
    AtomColumns,
    atom_templates,
    check_coordinates,
    conect_records,
    forecast_remark,
    pdb_atom_names,
)
from dynforecast.io.trajectory import PERIODIC_AXES, Trajectory, periodic_axes
from dynforecast.io.units import length_factor

PDB_EXTENSIONS = (".pdb",)

#: Column slices of CRYST1's six numbers (PDB format v3.3, columns 7-54).
_CRYST1_COLUMNS = ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))
_CRYST1 = re.compile(rb"^CRYST1[^\r\n]*", re.MULTILINE)


def _column(trajectory: Trajectory, key: str, default: np.ndarray) -> np.ndarray:
    value = trajectory.parameters.get(key)
    if isinstance(value, np.ndarray) and value.shape == (trajectory.n_particles,):
        return value
    return default


def pdb_columns(trajectory: Trajectory) -> tuple[AtomColumns, int]:
    """The PDB columns of ``trajectory``'s atoms (`pdb_format.AtomColumns`) and how many atom
    names had to be shortened to 4 characters.

    Residue data come from the parameters molecular.py stores (`_column` defaults otherwise:
    one residue UNK in chain A); insertion codes, altlocs and HETATM flags where the source had
    them (``insertion_codes``, ``altlocs``, ``hetero``).
    """
    n = trajectory.n_particles
    zeros = np.zeros(n, dtype=np.int64)
    residue_index = _column(trajectory, "residue_indices", zeros).astype(np.int64)
    species = np.asarray(trajectory.species, dtype=np.int64)
    symbols = np.array(SYMBOLS, dtype="<U2")[np.where((species > 0) & (species < 119), species, 0)]
    names = (
        np.asarray(trajectory.names, dtype=str)
        if trajectory.names
        else np.where(symbols == "", "X", symbols)
    )
    short_names, renamed = pdb_atom_names(names, residue_index)
    chain_ids = np.char.strip(_column(trajectory, "chain_ids", np.full(n, "A")).astype(str))
    chain_ids = np.where(chain_ids == "", "A", np.asarray([c[:1] for c in chain_ids.tolist()]))
    columns = AtomColumns(
        hetero=_column(trajectory, "hetero", np.zeros(n, dtype=np.int8)).astype(bool),
        names=short_names,
        altlocs=_clip(_column(trajectory, "altlocs", np.full(n, "")), 1),
        residue_names=_clip(_column(trajectory, "residue_names", np.full(n, "UNK")), 4),
        chain_ids=chain_ids.astype("<U1"),
        residue_ids=_column(trajectory, "residue_ids", residue_index + 1).astype(np.int64),
        insertion_codes=_clip(_column(trajectory, "insertion_codes", np.full(n, "")), 1),
        segment_ids=_clip(_column(trajectory, "segment_ids", np.full(n, "")), 4),
        elements=symbols,
        residue_indices=residue_index,
    )
    return columns, renamed


def _clip(values: np.ndarray, width: int) -> np.ndarray:
    return np.asarray(values).astype(str).astype(f"<U{width}")


def write_pdb(
    trajectory: Trajectory,
    path: str | Path,
    *,
    overwrite: bool = False,
    is_forecast: np.ndarray | None = None,
    bfactors: np.ndarray | None = None,
) -> None:
    """Write ``trajectory`` as a PDB, atomically: MODELs numbered from 1 (when more than one
    frame or any forecast), CRYST1 in the header and in every MODEL, HETATM, insertion codes and
    alternate locations as ingested, CONECT for bonds outside standard residues, and a REMARK
    naming the forecast MODELs (``is_forecast`` [F], 1 = predicted). ``bfactors`` [F, N] fill
    the B-factor column (an ensemble's spread; PDB's field holds -9.99..99.99, callers clip).

    Names longer than 4 characters get unique 4-character names (`pdb_atom_names`), with a note
    on stderr; the full names stay in the H5MD file. Raises OutputError for an existing ``path``
    (without ``overwrite``) or coordinates beyond PDB's columns.
    """
    trajectory.validate()
    if trajectory.n_particles == 0:
        raise OutputError(f"{path}: nothing to write (no particles)")
    to_angstrom = length_factor(trajectory.length_unit, "Angstrom") or 1.0
    positions = trajectory.positions.astype(np.float64) * to_angstrom
    check_coordinates(positions, path)
    columns, renamed = pdb_columns(trajectory)
    if trajectory.box is not None and not all(periodic_axes(trajectory.parameters, True)):
        log(
            f"warning: {path}: the box is periodic along some axes only "
            f"({trajectory.parameters[PERIODIC_AXES]}); PDB's CRYST1 cannot say so"
        )
    cells = (
        _cells(trajectory.box.astype(np.float64) * to_angstrom)
        if trajectory.box is not None
        else None
    )
    if bfactors is not None and np.shape(bfactors) != trajectory.positions.shape[:2]:
        raise ValueError(
            f"expected bfactors of shape {trajectory.positions.shape[:2]} (got {np.shape(bfactors)})"
        )
    lines, serials = atom_templates(columns, with_bfactors=bfactors is not None)
    template = "".join(lines)
    with_models = trajectory.n_frames > 1 or is_forecast is not None
    with atomic_output(path, overwrite=overwrite) as scratch:
        with open(scratch, "w", encoding="ascii", errors="replace") as out:
            out.write(f"REMARK   1 CREATED WITH DYNFORECAST {__version__}\n")
            out.write(forecast_remark(is_forecast))
            if cells is not None:
                out.write(cells[0])
            for frame in range(trajectory.n_frames):
                if with_models:
                    out.write(f"MODEL     {frame + 1:4d}\n")
                    if cells is not None:
                        out.write(cells[frame])
                values = positions[frame]
                if bfactors is not None:
                    values = np.concatenate([values, bfactors[frame][:, None]], axis=1)
                out.write(template % tuple(values.ravel().tolist()))
                if with_models:
                    out.write("ENDMDL\n")
            out.write(conect_records(columns, trajectory.bonds.astype(np.int64), serials))
            out.write("END\n")
    if renamed:
        log(
            f"{path}: note: {renamed} names longer than 4 characters were written as unique "
            f"4-character PDB names ({_renames(trajectory, columns)}); the full names stay in the "
            f"H5MD file"
        )


def _renames(trajectory: Trajectory, columns: AtomColumns, limit: int = 4) -> str:
    pairs = [
        f"{full} -> {short}"
        for full, short in zip(trajectory.names, columns.names.tolist(), strict=True)
        if full != short
    ]
    return ", ".join(pairs[:limit]) + (", ..." if len(pairs) > limit else "")


def _cells(box_angstrom: np.ndarray) -> list[str]:
    """CRYST1 records of cells [F, 3, 3] (Angstrom): one C-level format over all frames."""
    from mdtraj.utils import box_vectors_to_lengths_and_angles

    cell = box_vectors_to_lengths_and_angles(
        box_angstrom[:, 0], box_angstrom[:, 1], box_angstrom[:, 2]
    )
    values = np.stack(cell, axis=1)  # [F, 6]: a, b, c, alpha, beta, gamma
    return (CRYST1_FORMAT * len(values) % tuple(values.ravel().tolist())).splitlines(True)


def model_cells(path: str | Path) -> np.ndarray | None:
    """float32 [F, 3, 3] unit cells in nm from a CRYST1 of each of a PDB's F models, or None.

    Models are split as mdtraj splits them (`pdb_models.model_spans`: MODEL/ENDMDL, or
    single-model PDBs concatenated with END), each with the records before its atoms; a model's
    cell is the last CRYST1 in its range. None when any model has none (a plain PDB: mdtraj's
    one cell applies). Only CRYST1 lines reach Python.
    """
    from mdtraj.utils import lengths_and_angles_to_box_vectors

    from dynforecast.io.pdb_models import model_spans
    from dynforecast.io.pdb_records import read_pdb_bytes

    data = read_pdb_bytes(path)
    spans = model_spans(data)
    lines = []
    for span in spans:
        found = _CRYST1.findall(data, *span)
        if not found:
            return None
        lines.append(found[-1])
    if len(lines) < 2:
        return None  # one model: mdtraj's own cell
    try:  # mdtraj has parsed these records already (load_topology), so this rarely fails
        values = np.array([[float(line[a:b]) for a, b in _CRYST1_COLUMNS] for line in lines])
    except ValueError as exc:
        raise InputError(f"{path}: malformed PDB (CRYST1 record: {exc})") from None
    vectors = lengths_and_angles_to_box_vectors(*values.T)
    return (np.stack(vectors, axis=1) * 0.1).astype(np.float32)
