"""Periodic unit cells from mdtraj and ase through H5MD, MDAnalysis, and PDB/XYZ export."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from MDAnalysisTests import datafiles

from dynforecast.errors import InputError
from dynforecast.io.export import export_trajectory
from dynforecast.io.h5md import read_h5md
from dynforecast.io.ingest import ingest
from dynforecast.io.readers import read_trajectory
from dynforecast.io.trajectory import Trajectory

NMR_PDB = os.path.join(os.path.dirname(datafiles.PDB), "nmr_neopetrosiamide.pdb")
OPLS_GRO, OPLS_XTC = datafiles.GRO, datafiles.XTC  # 47681 atoms, 10 frames, NPT box
CA = "protein and name CA"


def mdtraj_load(*args, **kwargs):
    import warnings

    import mdtraj

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mdtraj.load(*args, **kwargs)


@pytest.fixture(scope="module")
def npt_h5(tmp_path_factory) -> str:
    """The C-alpha atoms of the GRO + XTC pair (a triclinic box that changes every frame)."""
    out = tmp_path_factory.mktemp("npt") / "adk.h5"
    ingest([OPLS_XTC], out, topology=OPLS_GRO, select=CA)
    return str(out)


def lengths_and_angles(box: np.ndarray) -> np.ndarray:
    """[F, 6] a, b, c, alpha, beta, gamma of box vectors [F, 3, 3] (rows)."""
    from mdtraj.utils import box_vectors_to_lengths_and_angles

    box = box.astype(np.float64)
    return np.stack(box_vectors_to_lengths_and_angles(box[:, 0], box[:, 1], box[:, 2]), axis=1)


def test_ingested_box_is_mdtrajs_unit_cell(npt_h5):
    (stored,) = read_h5md(npt_h5)
    reference = mdtraj_load(OPLS_XTC, top=OPLS_GRO)
    assert stored.box.dtype == np.float32 and stored.box.shape == (10, 3, 3)
    np.testing.assert_array_equal(stored.box, reference.unitcell_vectors)
    assert len({tuple(row) for row in lengths_and_angles(stored.box)[:, :3]}) > 1  # NPT
    with h5py.File(npt_h5, "r") as h5:
        box = h5["particles/adk_oplsaa/box"]
        assert list(box.attrs["boundary"]) == ["periodic"] * 3
        assert box["edges/value"].attrs["unit"] == "nm"


def test_info_json_and_text_show_the_first_frames_box(tmp_path):
    from typer.testing import CliRunner

    from dynforecast.cli import app

    out = tmp_path / "adk.h5"
    runner = CliRunner()
    ingest_args = [OPLS_XTC, "--topology", OPLS_GRO, "--select", CA, "-o", str(out)]
    assert runner.invoke(app, ["ingest", *ingest_args]).exit_code == 0
    result = runner.invoke(app, ["info", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    (system,) = json.loads(result.stdout)["systems"]
    reference = mdtraj_load(OPLS_XTC, top=OPLS_GRO)
    assert system["periodic"] is True
    np.testing.assert_allclose(system["box_lengths"], reference.unitcell_lengths[0], rtol=1e-6)
    np.testing.assert_allclose(system["box_angles"], reference.unitcell_angles[0], atol=1e-4)
    text = runner.invoke(app, ["info", str(out)]).stdout

    def shown(values) -> str:
        return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"

    lengths, angles = shown(reference.unitcell_lengths[0]), shown(reference.unitcell_angles[0])
    line = f"  box          periodic, first frame a b c {lengths} nm, angles {angles} deg"
    assert line in text.splitlines()


def test_mdanalysis_reads_the_xtcs_dimensions_from_our_file(npt_h5, tmp_path):
    import MDAnalysis

    theirs = MDAnalysis.Universe(OPLS_GRO, OPLS_XTC)
    selection = theirs.select_atoms(CA)
    selection.write(str(tmp_path / "ca.gro"))
    ours = MDAnalysis.Universe(str(tmp_path / "ca.gro"), npt_h5, format="H5MD")
    assert len(ours.trajectory) == len(theirs.trajectory) == 10
    for ts_ours, ts_theirs in zip(ours.trajectory, theirs.trajectory, strict=True):
        # Both convert float32 nm to Angstrom; the angles come from the same vectors.
        np.testing.assert_allclose(ts_ours.dimensions, ts_theirs.dimensions, rtol=1e-6)
        np.testing.assert_allclose(ours.atoms.positions, selection.positions, atol=2e-5)


def test_pdb_round_trip_keeps_every_frames_box_to_cryst1_precision(npt_h5, tmp_path):
    import MDAnalysis

    (original,) = read_h5md(npt_h5)
    export_trajectory(original, tmp_path / "back.pdb")
    text = (tmp_path / "back.pdb").read_text()
    assert text.count("\nCRYST1") == original.n_frames + 1  # the header's and one per MODEL
    again = read_trajectory(tmp_path / "back.pdb")
    want = lengths_and_angles(original.box)
    got = lengths_and_angles(again.box)
    # CRYST1 stores Angstrom with 3 decimals (nm: 5e-5) and degrees with 2.
    np.testing.assert_allclose(got[:, :3], want[:, :3], atol=5e-5 + 1e-6)
    np.testing.assert_allclose(got[:, 3:], want[:, 3:], atol=5e-3 + 1e-4)
    strided = read_trajectory(tmp_path / "back.pdb", stride=3, chunk_frames=2)
    np.testing.assert_array_equal(strided.box, again.box[::3])
    universe = MDAnalysis.Universe(str(tmp_path / "back.pdb"))
    dimensions = np.array([ts.dimensions.copy() for ts in universe.trajectory])
    np.testing.assert_allclose(dimensions[:, :3], want[:, :3] * 10, atol=5e-4 + 1e-5)


def test_extxyz_round_trip_keeps_the_box_in_angstrom(npt_h5, tmp_path):
    (original,) = read_h5md(npt_h5)
    export_trajectory(original, tmp_path / "back.extxyz")
    comments = (tmp_path / "back.extxyz").read_text().splitlines()[1 :: original.n_particles + 2]
    assert len(comments) == original.n_frames
    assert all('Lattice="' in line and line.endswith('pbc="T T T"') for line in comments)
    again = read_trajectory(tmp_path / "back.extxyz")
    assert again.length_unit == "Angstrom"
    # nm -> Angstrom rounds once more, as positions do (test_ingest_molecular); then exact.
    np.testing.assert_allclose(again.box, original.box * 10, rtol=1e-6, atol=1e-6)
    export_trajectory(again, tmp_path / "twice.extxyz")
    np.testing.assert_array_equal(read_trajectory(tmp_path / "twice.extxyz").box, again.box)


def test_a_file_without_a_box_stays_without_one(tmp_path):
    out = tmp_path / "nmr.h5"
    ingest([NMR_PDB], out)  # its CRYST1 is the 1 Angstrom NMR placeholder, no crystal
    (stored,) = read_h5md(out)
    assert stored.box is None
    with h5py.File(out, "r") as h5:
        box = h5["particles/nmr_neopetrosiamide/box"]
        assert list(box.attrs["boundary"]) == ["none"] * 3 and "edges" not in box
    export_trajectory(stored, tmp_path / "nmr.xyz")
    export_trajectory(stored, tmp_path / "nmr.pdb")
    xyz = (tmp_path / "nmr.xyz").read_text()
    assert "Lattice=" not in xyz and xyz.count('pbc="F F F"') == stored.n_frames
    assert "CRYST1" not in (tmp_path / "nmr.pdb").read_text()
    assert read_trajectory(tmp_path / "nmr.xyz").box is None
    assert read_trajectory(tmp_path / "nmr.pdb").box is None


def frame_text(lattice: str | None, x: float) -> str:
    cell = f'Lattice="{lattice}" ' if lattice is not None else ""
    return f"1\n{cell}Properties=species:S:1:pos:R:3\nH {x} 0 0\n"


@pytest.mark.parametrize("chunk_frames", [1, None])
def test_frames_with_and_without_a_box_are_an_input_error(tmp_path, chunk_frames):
    cube = "10 0 0 0 10 0 0 0 10"
    lost = tmp_path / "lost.extxyz"
    lost.write_text(frame_text(cube, 0) + frame_text(cube, 1) + frame_text(None, 2))
    gained = tmp_path / "gained.extxyz"
    gained.write_text(frame_text(None, 0) + frame_text(cube, 1))
    broken = tmp_path / "broken.extxyz"
    broken.write_text(frame_text(cube, 0) + frame_text("10 0 0 0 nan 0 0 0 10", 1))
    cases = [
        (lost, f"{lost}: frame 2 has no unit cell (frame 0 has one)"),
        (gained, f"{gained}: frame 1 has a unit cell (frame 0 has none)"),
        (broken, f"{broken}: non-finite (NaN or inf) unit cell in frame 1"),
    ]
    for path, message in cases:
        with pytest.raises(InputError) as caught:
            read_trajectory(path, chunk_frames=chunk_frames)
        assert str(caught.value) == message


def test_a_lattice_marked_non_periodic_is_no_box(tmp_path):
    path = tmp_path / "cluster.extxyz"
    path.write_text(
        '1\nLattice="10 0 0 0 10 0 0 0 10" pbc="F F F" Properties=species:S:1:pos:R:3\nH 0 0 0\n'
    )
    assert read_trajectory(path).box is None


def test_a_slab_keeps_its_periodic_axes_through_h5md_and_export(tmp_path, capsys):
    source = tmp_path / "slab.extxyz"
    frames = [
        f'2\nLattice="5 0 0 0 6 0 0 0 30" pbc="T T F" Properties=species:S:1:pos:R:3\n'
        f"O 1 2 {z}\nO 2 3 {z + 1.5}\n"
        for z in (10.0, 10.25, 10.5)
    ]
    source.write_text("".join(frames))
    out = tmp_path / "slab.h5"
    ingest([source], out)
    capsys.readouterr()  # ingest's notes (an untimed_frames one): the export's warning is tested
    with h5py.File(out, "r") as h5:
        assert list(h5["particles/slab/box"].attrs["boundary"]) == ["periodic", "periodic", "none"]
    (stored,) = read_h5md(out)
    np.testing.assert_array_equal(stored.box[0], np.diag([5.0, 6.0, 30.0]))
    export_trajectory(stored, tmp_path / "back.extxyz")
    text = (tmp_path / "back.extxyz").read_text()
    assert text.count('pbc="T T F"') == 3 and 'pbc="T T T"' not in text
    again = read_trajectory(tmp_path / "back.extxyz")
    np.testing.assert_array_equal(again.box, stored.box)
    assert again.parameters["periodic_axes"] == "T T F"
    export_trajectory(stored, tmp_path / "slab.pdb")
    assert capsys.readouterr().err == (
        f"warning: {tmp_path / 'slab.pdb'}: the box is periodic along some axes only (T T F); "
        "PDB's CRYST1 cannot say so\n"
    )


def test_unitless_box_exports_as_if_in_angstrom(tmp_path):
    box = np.broadcast_to(np.diag([4.0, 5.0, 6.0]).astype(np.float32), (2, 3, 3)).copy()
    system = Trajectory(
        name="toy",
        positions=np.ones((2, 1, 3), dtype=np.float32),
        species=np.array([1], dtype=np.int32),
        time=np.arange(2.0),
        step=np.arange(2),
        length_unit="1",
        time_unit="1",
        box=box,
    )
    export_trajectory(system, tmp_path / "toy.extxyz")
    export_trajectory(system, tmp_path / "toy.pdb")
    np.testing.assert_array_equal(read_trajectory(tmp_path / "toy.extxyz").box, box)
    np.testing.assert_allclose(read_trajectory(tmp_path / "toy.pdb").box * 10, box, atol=1e-5)
