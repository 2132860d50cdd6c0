"""Bond inference (io/bond_inference.py): the same bonds as ase's neighbor_list where ase is right,
a brute-force check with periodic images, linear memory, and ingest through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import ase
import numpy as np
import pytest
from ase.data import covalent_radii
from ase.neighborlist import natural_cutoffs, neighbor_list
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.bond_inference import covalent_bonds
from dynforecast.io.h5md import read_h5md
from dynforecast.io.xyz import BOND_SCALE, infer_bonds

SPECIES = np.array([1, 6, 7, 8, 16, 18, 0, 55])


def ase_bonds(atoms: ase.Atoms) -> np.ndarray:
    first, second = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=BOND_SCALE))
    pairs = np.stack([first, second], axis=1)
    return np.unique(pairs[pairs[:, 0] < pairs[:, 1]], axis=0).reshape(-1, 2)


def brute_force_bonds(positions, numbers, cell, periodic) -> np.ndarray:
    """All pairs over periodic images -4..4 along periodic axes (cells here are >= 3 A wide)."""
    radii = covalent_radii[numbers] * BOND_SCALE
    ranges = [np.arange(-4, 5) if p else np.zeros(1, int) for p in periodic]
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3) @ cell
    delta = positions[None, :, None] - positions[:, None, None] + shifts[None, None]  # [N,N,S,3]
    close = (np.linalg.norm(delta, axis=-1) < (radii[:, None] + radii[None, :])[..., None]).any(-1)
    i, j = np.nonzero(np.triu(close, 1))
    return np.stack([i, j], axis=1)


@pytest.mark.parametrize(
    "periodic", [(False,) * 3, (True,) * 3, (True, True, False), (True, False, False)]
)
def test_same_bonds_as_ase_and_brute_force_on_random_frames(periodic):
    rng = np.random.default_rng(sum(periodic))
    for trial in range(25):
        n = int(rng.integers(2, 60))
        numbers = rng.choice(SPECIES, n)
        cell = np.diag(rng.uniform(3.0, 10.0, 3))
        if trial % 2:
            cell += np.triu(rng.uniform(-1.5, 1.5, (3, 3)), 1)  # triclinic
        positions = rng.uniform(-1.0, 9.0, (n, 3))
        atoms = ase.Atoms(numbers=numbers, positions=positions, cell=cell, pbc=periodic)
        found = infer_bonds(atoms)
        assert found.dtype == np.int32
        np.testing.assert_array_equal(found, ase_bonds(atoms))
        np.testing.assert_array_equal(found, brute_force_bonds(positions, numbers, cell, periodic))


def test_no_atoms_one_atom_and_an_atom_bonded_to_its_own_image():
    assert covalent_bonds(np.zeros((0, 3)), np.zeros(0, int), BOND_SCALE).shape == (0, 2)
    assert covalent_bonds(np.zeros((1, 3)), np.array([6]), BOND_SCALE).shape == (0, 2)
    # a 1.4 A periodic cell: carbon touches its own images (dropped) and its neighbour once
    pairs = covalent_bonds(
        np.array([[0.0, 0, 0], [0.7, 0, 0]]),
        np.array([6, 6]),
        BOND_SCALE,
        np.eye(3) * 1.4,
        [True] * 3,
    )
    np.testing.assert_array_equal(pairs, [[0, 1]])


def test_a_periodic_frame_without_a_lattice_is_open_where_ase_bonded_distant_atoms():
    # ase's neighbor_list with pbc=True and no cell bonds two H 4.7 A apart; no box means open
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 4.7]], pbc=True)
    assert len(ase_bonds(atoms)) == 1
    assert infer_bonds(atoms).shape == (0, 2)


def test_ingest_infers_bonds_through_the_cli(tmp_path):
    # ethanol-like chain C-C-O with one H on each heavy atom, plus an argon far away
    rows = [("C", 0, 0, 0), ("C", 1.52, 0, 0), ("O", 2.95, 0, 0), ("H", -1.09, 0, 0),
            ("H", 1.52, 1.09, 0), ("H", 2.95, 0.96, 0), ("Ar", 10, 10, 10)]  # fmt: skip
    frame = f"{len(rows)}\n\n" + "".join(f"{s} {x} {y} {z}\n" for s, x, y, z in rows)
    source = tmp_path / "mol.xyz"
    source.write_text(frame * 3)
    out = tmp_path / "mol.h5"
    result = CliRunner().invoke(app, ["ingest", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(out)
    np.testing.assert_array_equal(system.bonds, [[0, 1], [0, 3], [1, 2], [1, 4], [2, 5]])


MEMORY_PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from dynforecast.io.bond_inference import covalent_bonds
    n = int(sys.argv[1])
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    positions = grid * 1.5 + np.random.default_rng(0).normal(0, 0.05, grid.shape)
    numbers = np.full(n, 6)
    covalent_bonds(positions[:10], numbers[:10], 1.2)  # imports and first-call allocations
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bonds = covalent_bonds(positions, numbers, 1.2)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024, len(bonds))
    """
)


def peak_growth_mib(n_atoms: int) -> tuple[float, int]:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(n_atoms)],
        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    growth, bonds = done.stdout.split()
    return float(growth), int(bonds)


def test_bond_inference_memory_grows_linearly_with_the_atom_count():
    small, small_bonds = peak_growth_mib(16_000)
    large, large_bonds = peak_growth_mib(64_000)
    assert (
        small_bonds > 2.5 * 16_000 and large_bonds > 2.5 * 64_000
    )  # a carbon lattice: about 3 bonds per atom
    # 4x the atoms: at most ~4x the peak growth (1 MiB floor for RSS granularity); ase's
    # all-pairs search of a cell-less frame would need tens of GB here
    assert large <= 6 * max(small, 1.0), (small, large)
    assert large < 200, large
