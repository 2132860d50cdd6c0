"""`--select` on XYZ (io/selection.py): the shared keywords mean on an XYZ what mdtraj makes them
mean on a PDB of the same molecule, and every bad selection is one line naming the token."""

from __future__ import annotations

import numpy as np
import pytest
from MDAnalysisTests import datafiles
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.errors import UsageError
from dynforecast.io.export import export_trajectory
from dynforecast.io.h5md import read_h5md
from dynforecast.io.readers import read_trajectory
from dynforecast.io.selection import Particles, select

PDB = datafiles.PDB_small  # adenylate kinase, 3341 atoms with hydrogens


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


@pytest.fixture(scope="module")
def pdb_and_xyz(tmp_path_factory):
    """The PDB and an XYZ of the same molecule (our exporter: Angstrom, element symbols)."""
    directory = tmp_path_factory.mktemp("adk")
    xyz = directory / "adk.xyz"
    export_trajectory(read_trajectory(PDB), xyz)
    return PDB, xyz


@pytest.mark.parametrize(
    "selection",
    [
        "not element H",
        "element O or index 10 to 20",
        "(element C or element N) and not index 0 to 99",
        "element S",
        "index 0 2 4 and not element H",
        "not element H and index < 50",
        "all",
    ],
)
def test_shared_keywords_select_the_same_atoms_on_pdb_and_xyz(
    run, tmp_path, pdb_and_xyz, selection
):
    pdb, xyz = pdb_and_xyz
    out_pdb, out_xyz = tmp_path / "pdb.h5", tmp_path / "xyz.h5"
    for source, out in ((pdb, out_pdb), (xyz, out_xyz)):
        result = run("ingest", source, "-o", out, "--select", selection)
        assert result.exit_code == 0, result.stderr
    (from_pdb,) = read_h5md(out_pdb)
    (from_xyz,) = read_h5md(out_xyz)
    assert from_xyz.n_particles == from_pdb.n_particles
    np.testing.assert_array_equal(from_xyz.species, from_pdb.species)
    np.testing.assert_allclose(from_xyz.positions, from_pdb.positions * 10, atol=1e-4)
    assert from_xyz.parameters["selection"] == selection


def test_selection_keeps_bonds_between_kept_atoms_and_their_velocities(run, tmp_path):
    import ase.io
    from ase.build import molecule

    ethanol = molecule("CH3CH2OH")
    ethanol.set_momenta(np.random.default_rng(1).normal(size=(9, 3)))
    ethanol.info["time"] = 0.0
    ase.io.write(tmp_path / "eth.extxyz", ethanol, format="extxyz")
    full = read_trajectory(tmp_path / "eth.extxyz")
    heavy = np.flatnonzero(full.species != 1)
    result = run(
        "ingest", tmp_path / "eth.extxyz", "-o", tmp_path / "h.h5", "--select", "not element H"
    )
    assert result.exit_code == 0, result.stderr
    (kept,) = read_h5md(tmp_path / "h.h5")
    assert kept.names == ["C", "C", "O"]
    np.testing.assert_array_equal(kept.positions, full.positions[:, heavy])
    np.testing.assert_array_equal(kept.velocities, full.velocities[:, heavy])
    renumber = {int(old): new for new, old in enumerate(heavy)}
    expected = [
        [renumber[a], renumber[b]] for a, b in full.bonds if a in renumber and b in renumber
    ]
    assert sorted(map(sorted, kept.bonds.tolist())) == sorted(map(sorted, expected))
    assert len(expected) == 2  # C-C and C-O


@pytest.mark.parametrize(
    ("selection", "problem"),
    [
        ("element Xx", "unknown element 'Xx'"),
        ("element h", "unknown element 'h' (did you mean 'H'?)"),
        (
            "resname ALA",
            "unknown keyword 'resname' (XYZ selections know all, none, element, name, index; "
            "with and, or, not and parentheses)",
        ),
        ("(element H", "missing ')'"),
        ("element H)", "unmatched ')'"),
        ("element", "'element' needs at least one value"),
        ("not", "unexpected end after 'not'"),
        ("index 1 to x", "'index 1 to' expects a non-negative integer, got 'x'"),
        ("index -1", "'index' expects a non-negative integer, got '-1'"),
        ("index 5 to 2", "empty range 'index 5 to 2'"),
        ("index < 1 2", "'index <' takes one number, got '1 2'"),
        ("name 'C", "unclosed quote ' at character 6"),
        ("element H element O", "unexpected 'element' (expected 'and', 'or' or the end)"),
        ("name CA", "matches no atoms"),
    ],
)
def test_bad_selections_are_one_line_usage_errors_naming_the_token(
    run, tmp_path, selection, problem
):
    source = tmp_path / "h2o.xyz"
    source.write_text("3\n\nO 0 0 0\nH 0 0.96 0\nH 0.93 -0.24 0\n")
    result = run("ingest", source, "-o", tmp_path / "out.h5", "--select", selection)
    assert result.exit_code == 2
    assert result.stderr == f"error: --select {selection!r}: {problem}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h2o.xyz"]


def test_precedence_and_quoting():
    particles = Particles(["O", "H", "H", "Left Arm"], np.array([8, 1, 1, 6]))
    assert select("element H or index 0 and index 1", particles).tolist() == [1, 2]
    assert select("not element H and not index 3", particles).tolist() == [0]
    assert select("not (element H or index 3)", particles).tolist() == [0]
    assert select('name "Left Arm" O', particles).tolist() == [0, 3]
    assert select("index 2 to 99", particles).tolist() == [2, 3]
    assert select("index >= 1 and index <= 2", particles).tolist() == [1, 2]
    with pytest.raises(UsageError):
        select("none", particles)
