"""PDB writing (reading is mdtraj's, in molecular.py).

The topology is rebuilt from what `molecular.topology_fields` stored (atom names, residue names,
ids and indices, chain ids, elements), so an ingested PDB comes back with its residues and chains.
Systems without residue data (XYZ, skeletons) become one residue "UNK" in chain A with atom names
from ``Trajectory.names`` (or element symbols). PDB stores Angstrom with three decimals: positions
are converted from the recorded unit (unitless positions are written as if in Angstrom), so a
PDB -> H5MD -> PDB -> H5MD round trip reproduces the positions to float32 precision. Bonds are kept
as CONECT records where mdtraj writes them (bonds outside standard residue templates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynforecast.errors import OutputError
from dynforecast.io.atomic import atomic_output
from dynforecast.io.quiet import stdout_to_stderr
from dynforecast.io.trajectory import Trajectory
from dynforecast.io.units import length_factor

PDB_EXTENSIONS = (".pdb",)


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


def write_pdb(trajectory: Trajectory, path: str | Path, *, overwrite: bool = False) -> None:
    """Write ``trajectory`` as a PDB (one MODEL per frame), atomically."""
    import mdtraj

    trajectory.validate()
    if trajectory.n_particles == 0:
        raise OutputError(f"{path}: nothing to write (no particles)")
    to_nm = length_factor(trajectory.length_unit, "nm") or 0.1
    frames = mdtraj.Trajectory(
        xyz=trajectory.positions.astype(np.float64) * to_nm, topology=build_topology(trajectory)
    )
    with atomic_output(path, overwrite=overwrite) as scratch, stdout_to_stderr():
        frames.save_pdb(str(scratch))
