"""PDB writing (reading is mdtraj's, in molecular.py) and per-MODEL unit cells.

The topology is rebuilt from what `molecular.topology_fields` stored (atom names, residue names,
ids and indices, chain ids, elements), so an ingested PDB comes back with its residues and chains.
Systems without residue data (XYZ, skeletons) become one residue "UNK" in chain A with atom names
from ``Trajectory.names`` (or element symbols). PDB stores Angstrom with three decimals: positions
are converted from the recorded unit (unitless positions are written as if in Angstrom), so a
PDB -> H5MD -> PDB -> H5MD round trip reproduces the positions to float32 precision. Bonds are kept
as CONECT records where mdtraj writes them (bonds outside standard residue templates).

Unit cells: mdtraj writes one CRYST1 (frame 0's) in the header and reads one per file, which would
lose a changing (NPT) box. The writer therefore also puts each frame's CRYST1 inside its MODEL,
where MDAnalysis reads a cell per frame, and `model_cells` reads them back for molecular.py. CRYST1
holds lengths in Angstrom with three decimals and angles in degrees with two.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from dynforecast.console import log
from dynforecast.errors import InputError, OutputError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.quiet import stdout_to_stderr
from dynforecast.io.trajectory import PERIODIC_AXES, Trajectory, periodic_axes
from dynforecast.io.units import length_factor

PDB_EXTENSIONS = (".pdb",)

#: mdtraj's CRYST1 layout (lengths a b c in Angstrom, angles alpha beta gamma in degrees).
CRYST1_FORMAT = "CRYST1%9.3f%9.3f%9.3f%7.2f%7.2f%7.2f P 1           1 \n"
#: Column slices of CRYST1's six numbers (PDB format v3.3, columns 7-54).
_CRYST1_COLUMNS = ((6, 15), (15, 24), (24, 33), (33, 40), (40, 47), (47, 54))
_MODEL_OR_CRYST1 = re.compile(rb"^(?:MODEL|CRYST1).*$", re.MULTILINE)
_MODEL_LINE = re.compile(r"^MODEL .*\n", re.MULTILINE)


def _column(trajectory: Trajectory, key: str, default: np.ndarray) -> np.ndarray:
    value = trajectory.parameters.get(key)
    if isinstance(value, np.ndarray) and value.shape == (trajectory.n_particles,):
        return value
    return default


def build_topology(trajectory: Trajectory):  # -> mdtraj.Topology
    """mdtraj Topology from the trajectory's names, species, bonds and residue parameters.

    Building it is one Python pass over atoms (mdtraj's Topology is made of Python objects).
    """
    import mdtraj
    from mdtraj.core import element as elements

    n = trajectory.n_particles
    zeros = np.zeros(n, dtype=np.int64)
    residue_index = _column(trajectory, "residue_indices", zeros)
    residue_names = _column(trajectory, "residue_names", np.full(n, "UNK"))
    residue_ids = _column(trajectory, "residue_ids", residue_index + 1)
    chain_ids = _column(trajectory, "chain_ids", np.full(n, "A"))
    segment_ids = _column(trajectory, "segment_ids", np.full(n, ""))
    names = trajectory.names or [
        elements.Element.getByAtomicNumber(int(z)).symbol if z > 0 else "X"
        for z in trajectory.species
    ]

    topology = mdtraj.Topology()
    chains: dict[str, object] = {}
    residues: dict[int, object] = {}
    for i in range(n):
        chain_id = str(chain_ids[i]) or "A"
        if chain_id not in chains:
            chains[chain_id] = topology.add_chain(chain_id=chain_id)
        key = int(residue_index[i])
        if key not in residues:
            residues[key] = topology.add_residue(
                str(residue_names[i]),
                chains[chain_id],
                resSeq=int(residue_ids[i]),
                segment_id=str(segment_ids[i]),
            )
        species = int(trajectory.species[i])
        element = elements.Element.getByAtomicNumber(species) if species > 0 else elements.virtual
        topology.add_atom(str(names[i]), element, residues[key])
    atoms = list(topology.atoms)
    for first, second in trajectory.bonds.tolist():
        topology.add_bond(atoms[first], atoms[second])
    return topology


def write_pdb(
    trajectory: Trajectory,
    path: str | Path,
    *,
    overwrite: bool = False,
    bfactors: np.ndarray | None = None,
) -> None:
    """Write ``trajectory`` as a PDB (one MODEL per frame), atomically.

    ``bfactors`` [F, N] fill the B-factor column (PDB's field holds -9.99..99.99; callers clip).
    """
    import mdtraj

    trajectory.validate()
    if trajectory.n_particles == 0:
        raise OutputError(f"{path}: nothing to write (no particles)")
    to_nm = length_factor(trajectory.length_unit, "nm") or 0.1
    frames = mdtraj.Trajectory(
        xyz=trajectory.positions.astype(np.float64) * to_nm, topology=build_topology(trajectory)
    )
    if trajectory.box is not None:
        frames.unitcell_vectors = trajectory.box.astype(np.float64) * to_nm  # header CRYST1
        if not all(periodic_axes(trajectory.parameters, True)):
            log(
                f"warning: {path}: the box is periodic along some axes only "
                f"({trajectory.parameters[PERIODIC_AXES]}); PDB's CRYST1 cannot say so"
            )
    with atomic_output(path, overwrite=overwrite) as scratch, stdout_to_stderr():
        frames.save_pdb(str(scratch), bfactors=bfactors)
        if trajectory.box is not None:
            _add_model_cells(Path(scratch), trajectory.box.astype(np.float64) * to_nm * 10)


def _add_model_cells(path: Path, box_angstrom: np.ndarray) -> None:
    """Insert frame k's CRYST1 after the k-th MODEL record of the PDB mdtraj wrote at ``path``.

    All records are formatted by one C-level string format; the insertion is one regex pass.
    """
    from mdtraj.utils import box_vectors_to_lengths_and_angles

    cell = box_vectors_to_lengths_and_angles(
        box_angstrom[:, 0], box_angstrom[:, 1], box_angstrom[:, 2]
    )
    values = np.stack(cell, axis=1)  # [F, 6]: a, b, c, alpha, beta, gamma
    records = iter((CRYST1_FORMAT * len(values) % tuple(values.ravel().tolist())).splitlines(True))
    text = path.read_text()
    path.write_text(_MODEL_LINE.sub(lambda model: model.group(0) + next(records), text))


def model_cells(path: str | Path) -> np.ndarray | None:
    """float32 [F, 3, 3] unit cells in nm from a CRYST1 inside each of a PDB's F MODELs, or None.

    None when any MODEL lacks its own CRYST1 (a plain PDB: mdtraj's one cell applies). One regex
    scan over the file finds the records; only MODEL and CRYST1 lines reach Python.
    """
    from mdtraj.utils import lengths_and_angles_to_box_vectors

    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as stream:
        records = _MODEL_OR_CRYST1.findall(stream.read())
    is_model = np.array([record.startswith(b"MODEL") for record in records], dtype=bool)
    model = np.cumsum(is_model) - 1  # the MODEL each record belongs to (-1: the header)
    inside = ~is_model & (model >= 0)
    n_models = int(is_model.sum())
    if n_models == 0 or not (np.bincount(model[inside], minlength=n_models) == 1).all():
        return None
    lines = [records[k] for k in np.flatnonzero(inside)]
    try:  # mdtraj has parsed these records already (load_topology), so this rarely fails
        values = np.array([[float(line[a:b]) for a, b in _CRYST1_COLUMNS] for line in lines])
    except ValueError as exc:
        raise InputError(f"{path}: malformed PDB (CRYST1 record: {exc})") from None
    vectors = lengths_and_angles_to_box_vectors(*values.T)
    return (np.stack(vectors, axis=1) * 0.1).astype(np.float32)
