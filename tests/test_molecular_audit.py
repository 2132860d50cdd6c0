"""mdtraj inputs through `dynforecast ingest`: what mdtraj guesses, drops or reinterprets is
repaired or reported as a note, bad files exit 3 naming the file, and PDB round trips keep
insertion codes, alternate locations and HETATM records. Field cases: tests/data/field_cases."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from MDAnalysisTests import datafiles
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.elements import guess_element, guess_elements
from dynforecast.io.export import export_trajectory
from dynforecast.io.h5md import read_h5md
from dynforecast.io.notes import NOTES_PARAMETER, notes_from_json
from dynforecast.io.pdb_format import pdb_atom_names

FIELD = Path(__file__).parent / "data" / "field_cases"
ADK_PSF, ADK_DCD = datafiles.PSF, datafiles.DCD
NMR_PDB = str(Path(datafiles.PDB).parent / "nmr_neopetrosiamide.pdb")


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ingested(path: Path):
    (traj,) = read_h5md(path)
    return traj


def notes_of(traj) -> dict[str, object]:
    return {n.kind: n for n in notes_from_json(traj.parameters.get(NOTES_PARAMETER))}


def pdb_atom(serial, name, resname, resseq, xyz, element="", *, record="ATOM", alt=" ", icode=" "):
    field = f" {name:<3}" if len(name) < 4 else name
    x, y, z = xyz
    return (
        f"{record:<6}{serial:5d} {field}{alt}{resname:<4}A{resseq:4d}{icode}   "
        f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {element:>2}"
    )


# Elements guessed from names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "residue", "single", "element"),
    [
        ("POT", "POT", True, "K"),
        ("SOD", "SOD", True, "Na"),
        ("CLA", "CLA", True, "Cl"),
        ("CAL", "CAL", True, "Ca"),
        ("K+", "K+", True, "K"),
        ("Cl-", "Cl-", True, "Cl"),
        ("NA", "NA", True, "Na"),  # AMBER/GROMACS sodium
        ("NA", "HEM", False, "N"),  # heme nitrogen A
        ("FE", "HEM", False, "Fe"),
        ("CA", "ALA", False, "C"),  # alpha carbon
        ("CA", "CA", True, "Ca"),  # calcium ion
        ("CD2", "LEU", False, "C"),
        ("CD2", "CD2", True, "Cd"),
        ("1HB", "ALA", False, "H"),
        ("HG1", "THR", False, "H"),
        ("NE2", "HIS", False, "N"),
        ("SE", "MSE", False, "Se"),
        ("OW", "SOL", False, "O"),
        ("MW", "SOL", False, ""),  # TIP4P virtual site
        ("ZN", "ZN", True, "Zn"),
        ("NA1", "SOD", True, "Na"),
        ("", "UNK", False, ""),
    ],
)
def test_guess_element_follows_charmm_amber_and_protein_naming(name, residue, single, element):
    assert guess_element(name, residue, single) == element


def test_guess_elements_is_per_atom_and_knows_single_atom_residues():
    names = np.array(["CA", "CA", "N", "NA", "NA", "FE"])
    residues = np.array(["ALA", "CA", "ALA", "NA", "HEM", "HEM"])
    indices = np.array([0, 1, 0, 2, 3, 3])  # CA and NA alone in residues 1 and 2
    assert guess_elements(names, residues, indices).tolist() == ["C", "Ca", "N", "Na", "N", "Fe"]


def test_charmm_ions_become_k_cl_na_with_one_note(tmp_path):
    out = tmp_path / "ions.h5"
    result = run("ingest", FIELD / "charmm_ions.pdb", "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.species.tolist() == [19, 17, 11]
    assert traj.parameters["elements"].tolist() == ["K", "Cl", "Na"]
    note_lines = [line for line in result.stderr.splitlines() if ": note: " in line]
    assert note_lines == [
        f"{FIELD / 'charmm_ions.pdb'}: note: no element column (PDB columns 77-78): guessed the "
        "elements of 3 atoms from their names (POT -> K (1), CLA -> Cl (1), SOD -> Na (1))"
    ]
    note = notes_of(traj)["guessed_elements"]
    assert note.count == 3
    selected = tmp_path / "k.h5"
    result = run("ingest", FIELD / "charmm_ions.pdb", "--select", "element K", "-o", selected)
    assert result.exit_code == 0, result.stderr
    assert ingested(selected).species.tolist() == [19]


def test_pdb_with_element_columns_has_no_guess_note(tmp_path):
    out = tmp_path / "ins.h5"
    result = run("ingest", FIELD / "inscode_roundtrip.pdb", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "note:" not in result.stderr
    assert NOTES_PARAMETER not in ingested(out).parameters


GRO_TEXT = """ions in water
    5
    1SOL     OW    1   0.126   1.624   1.679
    1SOL    HW1    2   0.190   1.661   1.747
    1SOL    HW2    3   0.177   1.568   1.613
    2NA      NA    4   1.000   1.000   1.000
    3CL      CL    5   1.500   1.500   1.500
   3.00000   3.00000   3.00000
"""


def test_gro_elements_are_guessed_by_naming_convention_with_a_note(tmp_path):
    gro = tmp_path / "ions.gro"
    gro.write_text(GRO_TEXT)
    out = tmp_path / "gro.h5"
    result = run("ingest", gro, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.species.tolist() == [8, 1, 1, 11, 17]  # mdtraj alone: O H H N C
    assert (
        f"{gro}: note: topology {gro}: GRO files have no elements: guessed the elements of 5"
        in (result.stderr)
    )


def test_gro_names_are_kept_as_written_not_mdtrajs_pdb_renames(tmp_path):
    import mdtraj

    gro = tmp_path / "ions.gro"
    gro.write_text(GRO_TEXT)
    out = tmp_path / "gro.h5"
    result = run("ingest", gro, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.names == ["OW", "HW1", "HW2", "NA", "CL"]
    assert [a.name for a in mdtraj.load_topology(str(gro)).atoms][:3] == ["O", "H1", "H2"]
    assert traj.parameters["residue_names"].tolist() == ["SOL", "SOL", "SOL", "NA", "CL"]
    assert sorted(map(tuple, traj.bonds.tolist())) == [(0, 1), (0, 2)]  # mdtraj's water bonds
    assert "(OW -> O (1), HW1 -> H (1), HW2 -> H (1), NA -> Na (1), CL -> Cl (1))" in result.stderr
    assert "t=" not in result.stderr  # one frame needs no time: no untimed_frames note


def test_psf_elements_from_masses_are_noted(tmp_path):
    out = tmp_path / "adk.h5"
    result = run("ingest", ADK_DCD, "--topology", ADK_PSF, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert (
        f"{ADK_DCD}: note: topology {ADK_PSF}: PSF files have no elements: the elements of 3341 "
        "atoms were taken from their masses and CHARMM ion names" in result.stderr
    )
    assert notes_of(ingested(out))["elements_from_masses"].count == 3341


# PSF insertion codes and PDB trajectories with a topology ----------------------------------------


def _three_atom_trajectory(tmp_path: Path, extension: str) -> Path:
    import mdtraj

    top = mdtraj.load_psf(str(FIELD / "tiny.psf"))
    xyz = np.array([[[0, 0, 0.0119], [0, 0.0763, -0.0477], [0, -0.0763, -0.0477]]] * 4)
    xyz = (xyz + np.arange(4)[:, None, None] * 0.01).astype(np.float32)
    traj = mdtraj.Trajectory(xyz, top, time=np.arange(4.0))
    path = tmp_path / f"water{extension}"
    traj.save(str(path))
    return path


@pytest.mark.parametrize("extension", [".dcd", ".xtc", ".trr", ".pdb"])
def test_psf_residue_id_with_insertion_code_reads_with_any_trajectory(tmp_path, extension):
    trajectory = _three_atom_trajectory(tmp_path, extension)
    out = tmp_path / "w.h5"
    result = run("ingest", trajectory, "--topology", FIELD / "tiny_inscode.psf", "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert (traj.n_frames, traj.n_particles, traj.bonds.shape[0]) == (4, 3, 2)
    assert traj.parameters["residue_ids"].tolist() == [185, 185, 185]
    assert traj.parameters["insertion_codes"].tolist() == ["A", "A", "A"]


def test_multi_model_pdb_is_a_trajectory_for_a_psf_topology(tmp_path):
    out = tmp_path / "t.h5"
    result = run("ingest", FIELD / "tiny_traj.pdb", "--topology", FIELD / "tiny.psf", "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert (traj.n_frames, traj.n_particles) == (2, 3)
    assert sorted(map(tuple, traj.bonds.tolist())) == [(0, 1), (0, 2)]
    np.testing.assert_allclose(traj.positions[1, :, 0], [0.01, 0.01, 0.01], atol=1e-6)
    again = tmp_path / "u.h5"
    pdb_top = run(
        "ingest", FIELD / "tiny_traj.pdb", "--topology", FIELD / "tiny_traj.pdb", "-o", again
    )
    assert pdb_top.exit_code == 0, pdb_top.stderr
    assert ingested(again).n_frames == 2


def test_psf_with_insertion_codes_splits_residues_52_and_52a(tmp_path):
    lines = (FIELD / "tiny_inscode.psf").read_text().splitlines()
    lines = [line.replace("185A", "185 ", 1) if " H2 " in line else line for line in lines]
    psf = tmp_path / "split.psf"
    psf.write_text("\n".join(lines) + "\n")
    trajectory = _three_atom_trajectory(tmp_path, ".dcd")
    out = tmp_path / "s.h5"
    result = run("ingest", trajectory, "--topology", psf, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.parameters["insertion_codes"].tolist() == ["A", "A", ""]
    assert traj.parameters["residue_indices"].tolist() == [0, 0, 1]


# Bad input: exit 3 naming the file, one line ----------------------------------------------------

PSF_HEAD = "PSF\n\n       1 !NTITLE\n REMARKS bad\n\n"


@pytest.mark.parametrize(
    "text",
    [
        "not a psf\n",
        PSF_HEAD,  # ends before NATOM
        PSF_HEAD + "       2 !NATOM\n       1 W    1    TIP3 OH2  OT    -0.834  15.9994  0\n",
        PSF_HEAD + "       1 !NATOM\n       1 W    1    TIP3 OH2  OT    -0.834  heavy  0\n",
        PSF_HEAD + "       1 !NATOM\n       7 W    1    TIP3 OH2  OT    -0.834  15.9  0\n",
        PSF_HEAD + "       1 !NATOM\n       1 W    1X2  TIP3 OH2  OT    -0.834  15.9  0\n",
        PSF_HEAD + "     abc !NATOM\n",
    ],
)
def test_malformed_psf_exits_3_naming_the_file(tmp_path, text):
    psf = tmp_path / "bad.psf"
    psf.write_text(text)
    trajectory = _three_atom_trajectory(tmp_path, ".dcd")
    result = run("ingest", trajectory, "--topology", psf, "-o", tmp_path / "x.h5")
    assert result.exit_code == 3, (result.stderr, result.exception)
    assert result.stderr.startswith(f"error: {psf}: cannot read topology (")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("extension", [".psf", ".prmtop", ".parm7", ".mol2"])
def test_a_topology_alone_says_it_needs_a_trajectory(tmp_path, extension):
    topology = tmp_path / f"system{extension}"
    topology.write_text("")
    result = run("ingest", topology, "-o", tmp_path / "x.h5")
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: {topology}: a {extension} file is a topology (no frames); give a trajectory "
        f"with it: ingest TRAJECTORY --topology {topology}\n"
    )


def test_dcd_errors_are_the_only_line_on_stderr(tmp_path):
    broken = tmp_path / "broken.dcd"
    broken.write_bytes(Path(ADK_DCD).read_bytes()[:3000])
    command = [sys.executable, "-c", "from dynforecast.cli import app; app()"]
    args = ["ingest", str(broken), "--topology", ADK_PSF, "-o", str(tmp_path / "x.h5")]
    done = subprocess.run(command + args, capture_output=True, text=True, check=False)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: {broken}: cannot read trajectory (Could not open file: {broken})"
    ]


# Frames, cells and arrays mdtraj drops or reinterprets ------------------------------------------


def test_partial_last_dcd_frame_is_reported(tmp_path):
    data = Path(ADK_DCD).read_bytes()
    cut = tmp_path / "cut.dcd"
    cut.write_bytes(data[: len(data) - 5000])
    out = tmp_path / "cut.h5"
    result = run("ingest", cut, "--topology", ADK_PSF, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert ingested(out).n_frames == 97
    assert (
        f"{cut}: note: the file ends 35116 bytes into a frame after its last whole frame "
        "(a truncated write); that partial frame was dropped"
    ) in result.stderr.splitlines()
    whole = run("ingest", ADK_DCD, "--topology", ADK_PSF, "-o", tmp_path / "whole.h5")
    assert "partial frame" not in whole.stderr


def test_placeholder_cryst1_is_a_note_not_a_silent_drop(tmp_path):
    out = tmp_path / "nmr.h5"
    result = run("ingest", NMR_PDB, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.box is None
    assert notes_of(traj)["placeholder_cell"].detail == (
        "unit cell (CRYST1    1.000    1.000    1.000  90.00  90.00  90.00 P 1           1) "
        "too small for the atoms, treated as a placeholder: stored without a box"
    )


def test_trr_velocities_that_mdtraj_does_not_read_are_noted(tmp_path):
    out = tmp_path / "trr.h5"
    result = run("ingest", datafiles.TRR, "--topology", datafiles.GRO, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert notes_of(ingested(out))["unread_arrays"].detail == (
        "the file's velocities were not ingested (mdtraj reads positions, times and unit cells only)"
    )
    xtc = run("ingest", datafiles.XTC, "--topology", datafiles.GRO, "-o", tmp_path / "xtc.h5")
    assert "not ingested" not in xtc.stderr


def test_amber_topology_without_atomic_numbers_is_guessed_with_a_note(tmp_path):
    out = tmp_path / "bala.h5"
    result = run("ingest", datafiles.NCDF, "--topology", datafiles.PRMncdf, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    note = notes_of(traj)["guessed_elements"]
    assert note.count == traj.n_particles
    assert "no ATOMIC_NUMBER section" in note.detail
    assert "netCDF4" not in result.stderr


ALTLOC_PDB = "\n".join(
    [
        pdb_atom(1, "N", "SER", 5, (0, 0, 0), "N"),
        pdb_atom(2, "CA", "SER", 5, (1.4, 0, 0), "C"),
        pdb_atom(3, "CB", "SER", 5, (2, 1, 0), "C", alt="A"),
        pdb_atom(4, "CB", "SER", 5, (2, -1, 0), "C", alt="B"),
        pdb_atom(5, "OG", "SER", 5, (3, 1, 0), "O", alt="A"),
        pdb_atom(6, "OG", "SER", 5, (3, -1, 0), "O", alt="B"),
        pdb_atom(7, "C", "SER", 5, (2, 0, 1), "C"),
        pdb_atom(8, "O", "SER", 5, (2, 0, 2.2), "O"),
        pdb_atom(9, "C1", "LIG", 6, (5, 0, 0), "C", record="HETATM"),
        pdb_atom(10, "C2", "LIG", 6, (6.5, 0, 0), "C", record="HETATM"),
        pdb_atom(11, "O1", "LIG", 6, (7.2, 1, 0), "O", record="HETATM"),
        "CONECT    9   10",
        "CONECT   10    9   11",
        "CONECT   11   10",
        "END",
    ]
)


def test_alternate_locations_hetatm_and_conect_survive_a_round_trip(tmp_path):
    source = tmp_path / "alt.pdb"
    source.write_text(ALTLOC_PDB + "\n")
    first = tmp_path / "alt.h5"
    result = run("ingest", source, "-o", first)
    assert result.exit_code == 0, result.stderr
    traj = ingested(first)
    assert traj.n_particles == 9
    assert notes_of(traj)["dropped_altloc"].count == 2
    assert (
        f"{source}: note: dropped 2 atom records of alternate location(s) B; kept the first "
        "location of each atom (A), recorded in the altlocs parameter"
    ) in result.stderr
    assert traj.parameters["altlocs"].tolist() == ["", "", "A", "A", "", "", "", "", ""]
    assert traj.parameters["hetero"].tolist() == [0] * 6 + [1] * 3
    np.testing.assert_allclose(traj.positions[0, 2], [0.2, 0.1, 0.0], atol=1e-6)  # location A
    exported = tmp_path / "back.pdb"
    export_trajectory(traj, exported)
    records = [
        line for line in exported.read_text().splitlines() if line[:6] in ("ATOM  ", "HETATM")
    ]
    assert [line[:6] for line in records] == ["ATOM  "] * 6 + ["HETATM"] * 3
    assert [line[16] for line in records[:4]] == [" ", " ", "A", "A"]
    second = tmp_path / "again.h5"
    result = run("ingest", exported, "-o", second)
    assert result.exit_code == 0, result.stderr
    again = ingested(second)
    assert sorted(map(tuple, again.bonds.tolist())) == sorted(map(tuple, traj.bonds.tolist()))
    assert again.parameters["hetero"].tolist() == traj.parameters["hetero"].tolist()
    assert again.parameters["altlocs"].tolist() == traj.parameters["altlocs"].tolist()
    assert "dropped_altloc" not in notes_of(again)


def test_insertion_codes_round_trip_keeps_residues_and_bonds(tmp_path):
    first = tmp_path / "ins.h5"
    assert run("ingest", FIELD / "inscode_roundtrip.pdb", "-o", first).exit_code == 0
    traj = ingested(first)
    assert len(set(traj.parameters["residue_indices"].tolist())) == 2
    assert traj.bonds.shape[0] == 7
    exported = tmp_path / "ins_back.pdb"
    export_trajectory(traj, exported)
    assert [
        line[22:27] for line in exported.read_text().splitlines() if line.startswith("ATOM")
    ] == ["  52 "] * 4 + ["  52A"] * 4
    second = tmp_path / "ins_again.h5"
    result = run("ingest", exported, "-o", second)
    assert result.exit_code == 0, result.stderr
    again = ingested(second)
    assert len(set(again.parameters["residue_indices"].tolist())) == 2
    assert again.bonds.shape[0] == 7
    assert again.parameters["insertion_codes"].tolist() == [""] * 4 + ["A"] * 4
    np.testing.assert_allclose(again.positions, traj.positions, atol=1e-4)


def test_long_names_get_unique_four_character_pdb_names():
    names = np.array(["Hips", "LeftUpLeg", "LeftLeg", "LeftLeg_end", "Left"])
    short, changed = pdb_atom_names(names, np.zeros(5, dtype=int))
    assert changed == 3
    assert short.tolist() == ["Hips", "Lef0", "Lef1", "Lef2", "Left"]
    assert len(set(short.tolist())) == 5


BVH_TEXT = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT LeftUpLeg
  {
    OFFSET 1 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT LeftLowerLeg
    {
      OFFSET 0 -4 0
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 -4 0
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.1
0 10 0 0 0 0 0 0 0 0 0 0
0 11 0 0 0 0 0 0 0 10 0 0
"""


def test_skeleton_export_to_pdb_writes_unique_names_and_notes_them(tmp_path, capsys):
    bvh = tmp_path / "leg.bvh"
    bvh.write_text(BVH_TEXT)
    data = tmp_path / "leg.h5"
    assert run("ingest", bvh, "-o", data).exit_code == 0
    skeleton = ingested(data)
    capsys.readouterr()
    exported = tmp_path / "leg.pdb"
    export_trajectory(skeleton, exported)
    err = capsys.readouterr().err
    assert (
        f"{exported}: note: 3 names longer than 4 characters were written as unique 4-character "
        "PDB names (LeftUpLeg -> Left, LeftLowerLeg -> Lef0, LeftLowerLeg_end -> Lef1); the full "
        "names stay in the H5MD file"
    ) in err
    text = exported.read_text().splitlines()
    assert [line for line in text if line.startswith("MODEL")] == [
        "MODEL        1",
        "MODEL        2",
    ]
    names = [line[12:16].strip() for line in text if line.startswith("ATOM")][:4]
    assert names == ["Hips", "Left", "Lef0", "Lef1"]


def test_ingest_notes_parameter_is_json_with_kind_count_detail(tmp_path):
    out = tmp_path / "ions.h5"
    assert run("ingest", FIELD / "charmm_ions.pdb", "-o", out).exit_code == 0
    raw = json.loads(ingested(out).parameters[NOTES_PARAMETER])
    assert raw[0]["kind"] == "guessed_elements" and raw[0]["count"] == 3


def test_other_mdtraj_warnings_become_one_library_warning_note_each():
    from dynforecast.io.molecular_audit import warning_notes

    cell = "Unlikely unit cell vectors detected in PDB file likely resulting from a dummy CRYST1"
    notes = warning_notes(["odd residue", cell, "odd residue"], "CRYST1    1.000    1.000")
    assert [(n.kind, n.count, n.detail) for n in notes] == [
        ("library_warning", 1, "mdtraj: odd residue"),
        (
            "placeholder_cell",
            1,
            "unit cell (CRYST1    1.000    1.000) too small for the atoms, treated as a "
            "placeholder: stored without a box",
        ),
    ]


def _moved(pdb_text: str, dx: float) -> str:
    """``pdb_text`` with every ATOM record's x moved by ``dx`` Angstrom."""
    out = []
    for line in pdb_text.splitlines(True):
        if line.startswith(("ATOM  ", "HETATM")):
            line = f"{line[:30]}{float(line[30:38]) + dx:8.3f}{line[38:]}"
        out.append(line)
    return "".join(out)


def test_pdbs_concatenated_with_end_are_frames_that_keep_their_columns(tmp_path):
    # Two single-model PDBs catted, each closed by END (no MODEL/ENDMDL), each with its CRYST1:
    # mdtraj reads two frames; the columns of the first are kept, each frame gets its own cell.
    one = (FIELD / "inscode_roundtrip.pdb").read_text()
    both = tmp_path / "cat.pdb"
    cell = "CRYST1   {0:6.3f}   30.000   30.000  90.00  90.00  90.00 P 1           1\n"
    both.write_text(cell.format(30.0) + one + cell.format(31.0) + _moved(one, 0.5))
    out = tmp_path / "cat.h5"
    result = run("ingest", both, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if ": note: " in line] == [
        f"{both}: note: the file stores no times; time is the frame index (give --time-step, "
        "e.g. --time-step '2 ps')"
    ]
    traj = ingested(out)
    assert traj.n_frames == 2 and traj.n_particles == 8
    assert traj.parameters["insertion_codes"].tolist() == [""] * 4 + ["A"] * 4
    assert traj.parameters["elements"].tolist() == ["N", "C", "C", "O"] * 2
    np.testing.assert_allclose(traj.positions[:, 0, 0], [0.1, 0.15], atol=1e-6)
    np.testing.assert_allclose(traj.box[:, 0, 0], [3.0, 3.1], atol=1e-6)
    assert set(notes_of(traj)) == {"untimed_frames"}


def test_a_pdb_with_model_but_no_endmdl_records_reads_aligned(tmp_path):
    atoms = [line for line in (FIELD / "inscode_roundtrip.pdb").read_text().splitlines(True)]
    atoms = "".join(line for line in atoms if line.startswith("ATOM"))
    pdb = tmp_path / "noend.pdb"
    pdb.write_text(f"MODEL        1\n{atoms}MODEL        2\n{_moved(atoms, 1.0)}END\n")
    out = tmp_path / "noend.h5"
    result = run("ingest", pdb, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert "unaligned_records" not in notes_of(traj)
    assert traj.parameters["insertion_codes"].tolist() == [""] * 4 + ["A"] * 4
    np.testing.assert_allclose(traj.positions[:, 0, 0], [0.1, 0.2], atol=1e-6)


def test_models_whose_names_differ_from_the_first_are_one_differing_models_note(tmp_path):
    one = (FIELD / "inscode_roundtrip.pdb").read_text()
    other = one.replace(" CA  GLY A  52A", " CB  GLY A  52A").replace("  52A ", "  53A ")
    pdb = tmp_path / "differ.pdb"
    pdb.write_text(one + one + other)
    out = tmp_path / "differ.h5"
    result = run("ingest", pdb, "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "1 of 3 models differ from the first in atom names, residue numbers (the first: model "
        "3, line 25); mdtraj reads them as coordinates of the first model's atoms, whose names "
        "and columns are stored"
    )
    assert f"{pdb}: note: {detail}" in result.stderr.splitlines()
    traj = ingested(out)
    note = notes_of(traj)["differing_models"]
    assert (note.count, note.detail) == (1, detail)
    assert traj.names[5] == "CA" and traj.parameters["residue_ids"].tolist()[5] == 52


def test_records_mdtraj_reads_differently_are_an_unaligned_records_note():
    # A topology of another atom count than the file's first model (a layout mdtraj read
    # differently from the column scan): the columns cannot be matched to atoms, and say so.
    import mdtraj

    from dynforecast.io.molecular import topology_fields
    from dynforecast.io.molecular_audit import audit_pdb

    path = FIELD / "inscode_roundtrip.pdb"
    topology = mdtraj.load_topology(str(FIELD / "charmm_ions.pdb"))
    notes = {n.kind: n for n in audit_pdb(path, topology, topology_fields(topology))}
    detail = (
        f"8 ATOM/HETATM records in the first MODEL but mdtraj made {topology.n_atoms} atoms; "
        "insertion codes, alternate locations, HETATM flags and element columns were not kept"
    )
    assert notes["unaligned_records"].detail == detail


# GRO trajectories: times from the title lines, velocities mdtraj does not read ------------------


def _gro_frames(titles: list[str], velocities: bool = False) -> str:
    """A three-atom water GRO trajectory, one frame per title line, moving 0.01 nm a frame."""
    lines = []
    for frame, title in enumerate(titles):
        lines += [title, "    3"]
        for serial, (name, x) in enumerate([("OW", 0.126), ("HW1", 0.190), ("HW2", 0.177)], 1):
            v = "  0.1000 -0.2000  0.3000" if velocities else ""
            lines.append(f"    1SOL{name:>7}{serial:5d}{x + 0.01 * frame:8.3f}   1.600   1.700{v}")
        lines.append("   3.00000   3.00000   3.00000")
    return "\n".join(lines) + "\n"


def test_gro_velocities_that_mdtraj_does_not_read_are_noted(tmp_path):
    gro = tmp_path / "moving.gro"
    gro.write_text(_gro_frames(["w t= 1.0", "w t= 2.0"], velocities=True))
    out = tmp_path / "v.h5"
    result = run("ingest", gro, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "the file's velocities were not ingested (mdtraj reads positions, times and unit cells "
        "only)"
    )
    assert f"{gro}: note: {detail}" in result.stderr.splitlines()
    traj = ingested(out)
    assert notes_of(traj)["unread_arrays"].detail == detail
    assert traj.velocities is None
    still = tmp_path / "still.gro"
    still.write_text(_gro_frames(["w t= 1.0", "w t= 2.0"]))
    plain = run("ingest", still, "--topology", still, "-o", tmp_path / "p.h5")
    assert plain.exit_code == 0, plain.stderr
    assert "not ingested" not in plain.stderr


@pytest.mark.parametrize(
    ("titles", "which"),
    [
        (["w", "w", "w"], "the title lines have no t="),
        (["w t= 1.0", "w", "w t= 3.0"], "1 of 3 frames have no t= in their title line"),
    ],
)
def test_gro_frames_without_t_are_frame_indices_with_a_note(tmp_path, titles, which):
    gro = tmp_path / "untimed.gro"
    gro.write_text(_gro_frames(titles))
    out = tmp_path / "u.h5"
    result = run("ingest", gro, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        f"{which}, so the file stores no usable times; time is the frame index "
        "(give --time-step, e.g. --time-step '2 ps')"
    )
    assert f"{gro}: note: {detail}" in result.stderr.splitlines()
    assert "the file stores no times" not in result.stderr  # ingest's generic note: not twice
    traj = ingested(out)
    assert traj.time_unit == "1" and traj.time.tolist() == [0.0, 1.0, 2.0]
    note = notes_of(traj)["untimed_frames"]
    assert (note.count, note.detail) == (3, detail)
    strided = tmp_path / "s.h5"
    assert run("ingest", gro, "--topology", gro, "--stride", 2, "-o", strided).exit_code == 0
    assert ingested(strided).time.tolist() == [0.0, 2.0]  # file frame indices, not 0, 1


def test_gro_times_come_from_every_title_line(tmp_path):
    gro = tmp_path / "timed.gro"
    gro.write_text(_gro_frames(["w t= 10.0 step= 5", "w t= 2.5e1", "w t= 40.00000"]))
    out = tmp_path / "t.h5"
    result = run("ingest", gro, "--topology", gro, "--stride", 2, "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.time_unit == "ps" and traj.time.tolist() == [10.0, 40.0]
    assert "untimed_frames" not in notes_of(traj)
    every = tmp_path / "e.h5"
    assert run("ingest", gro, "--topology", gro, "-o", every).exit_code == 0
    assert ingested(every).time.tolist() == [10.0, 25.0, 40.0]  # mdtraj alone reads 2.5


def _amber_netcdf(path: Path, *, velocities: bool, forces: bool = False) -> Path:
    """A 3-atom, 3-frame AMBER NetCDF trajectory (convention 1.0), written with scipy."""
    from scipy.io import netcdf_file

    xyz = np.array([[0, 0, 0.119], [0, 0.763, -0.477], [0, -0.763, -0.477]], dtype=np.float32)
    with netcdf_file(str(path), "w", version=2) as handle:
        handle.Conventions, handle.ConventionVersion = b"AMBER", b"1.0"
        handle.program, handle.programVersion = b"dynforecast-tests", b"1"
        handle.createDimension("frame", None)
        handle.createDimension("spatial", 3)
        handle.createDimension("atom", 3)
        spatial = handle.createVariable("spatial", "c", ("spatial",))
        spatial[:] = np.array(list(b"xyz"), dtype="S1")
        time = handle.createVariable("time", "f", ("frame",))
        time.units = b"picosecond"
        coordinates = handle.createVariable("coordinates", "f", ("frame", "atom", "spatial"))
        coordinates.units = b"angstrom"
        coordinates[:] = xyz[None] + 0.1 * np.arange(3, dtype=np.float32)[:, None, None]
        time[:] = [1.0, 2.0, 3.0]
        if velocities:
            moving = handle.createVariable("velocities", "f", ("frame", "atom", "spatial"))
            moving.units, moving.scale_factor = b"angstrom/picosecond", 20.455
            moving[:] = np.full((3, 3, 3), 0.005, dtype=np.float32)
        if forces:
            pushed = handle.createVariable("forces", "f", ("frame", "atom", "spatial"))
            pushed.units = b"kilocalorie/mole/angstrom"
            pushed[:] = np.ones((3, 3, 3), dtype=np.float32)
    return path


def test_amber_netcdf_velocities_that_mdtraj_does_not_read_are_noted(tmp_path):
    nc = _amber_netcdf(tmp_path / "water.nc", velocities=True)
    out = tmp_path / "nc.h5"
    result = run("ingest", nc, "--topology", FIELD / "tiny.psf", "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "the file's velocities were not ingested (mdtraj reads positions, times and unit cells "
        "only)"
    )
    assert f"{nc}: note: {detail}" in result.stderr.splitlines()
    traj = ingested(out)
    assert notes_of(traj)["unread_arrays"].detail == detail
    assert traj.time.tolist() == [1.0, 2.0, 3.0] and traj.velocities is None
    still = _amber_netcdf(tmp_path / "still.nc", velocities=False)
    plain = run("ingest", still, "--topology", FIELD / "tiny.psf", "-o", tmp_path / "p.h5")
    assert plain.exit_code == 0, plain.stderr
    assert "not ingested" not in plain.stderr


# PDB columns that are not stored ---------------------------------------------------------------


def _with_columns(line: str, occupancy: str, bfactor: str, charge: str = "") -> str:
    """A PDB ATOM line with columns 55-60, 61-66 and 79-80 replaced."""
    return f"{line[:54]}{occupancy:>6}{bfactor:>6}{line[66:78]:<12}{charge:>2}"


def test_non_default_occupancy_bfactor_and_charge_are_one_dropped_columns_note(tmp_path):
    atoms = [
        pdb_atom(1, "N", "GLY", 1, (0, 0, 0), "N"),
        pdb_atom(2, "CA", "GLY", 1, (1.4, 0, 0), "C"),
        pdb_atom(3, "C", "GLY", 1, (2, 1.3, 0), "C"),
        pdb_atom(4, "O", "GLY", 1, (1.4, 2.3, 0), "O"),
    ]
    atoms[0] = _with_columns(atoms[0], "0.50", "0.00")
    atoms[1] = _with_columns(atoms[1], "1.00", "12.30")
    atoms[2] = _with_columns(atoms[2], "1.00", "0.00", "1-")
    atoms[3] = _with_columns(atoms[3], "1.00", "0.00", "0")  # an explicit zero charge is none
    pdb = tmp_path / "columns.pdb"
    pdb.write_text("\n".join(atoms) + "\nEND\n")
    out = tmp_path / "c.h5"
    result = run("ingest", pdb, "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "PDB columns not stored: occupancy not 1 in 1, B-factor not 0 in 1, formal charge not 0 "
        "in 1 of the 4 ATOM/HETATM records (all MODELs)"
    )
    assert [line for line in result.stderr.splitlines() if ": note: " in line] == [
        f"{pdb}: note: {detail}"
    ]
    note = notes_of(ingested(out))["dropped_columns"]
    assert (note.count, note.detail) == (3, detail)


def test_a_pdb_trajectory_reports_its_own_dropped_columns(tmp_path):
    lines = (FIELD / "tiny_traj.pdb").read_text().splitlines()
    last_model = max(i for i, line in enumerate(lines) if line.startswith("ATOM"))
    lines[last_model] = _with_columns(lines[last_model], "1.00", "35.00")
    trajectory = tmp_path / "bfactor.pdb"
    trajectory.write_text("\n".join(lines) + "\n")
    out = tmp_path / "t.h5"
    result = run("ingest", trajectory, "--topology", FIELD / "tiny.psf", "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = "PDB columns not stored: B-factor not 0 in 1 of the 6 ATOM/HETATM records (all MODELs)"
    assert f"{trajectory}: note: {detail}" in result.stderr.splitlines()
    assert notes_of(ingested(out))["dropped_columns"].detail == detail
    again = tmp_path / "plain.h5"
    plain = run("ingest", FIELD / "tiny_traj.pdb", "--topology", FIELD / "tiny.psf", "-o", again)
    assert plain.exit_code == 0, plain.stderr
    assert "PDB columns not stored" not in plain.stderr


def test_dropped_values_counts_unreadable_columns_and_blank_ones_are_defaults(tmp_path):
    from dynforecast.io.pdb_records import DroppedValues, dropped_values

    atom = pdb_atom(1, "CA", "ALA", 1, (0, 0, 0), "C")
    pdb = tmp_path / "odd.pdb"
    pdb.write_text(
        "\n".join([_with_columns(atom, "abc", ""), _with_columns(atom, "", "0.00", "2+")]) + "\n"
    )
    found = dropped_values(pdb)
    assert found == DroppedValues(records=2, occupancy=1, bfactor=0, charge=1, any=2)


def test_amber_netcdf_velocities_and_forces_are_one_unread_arrays_note(tmp_path):
    nc = _amber_netcdf(tmp_path / "both.nc", velocities=True, forces=True)
    out = tmp_path / "both.h5"
    result = run("ingest", nc, "--topology", FIELD / "tiny.psf", "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "the file's velocities and forces were not ingested (mdtraj reads positions, times and "
        "unit cells only)"
    )
    assert f"{nc}: note: {detail}" in result.stderr.splitlines()
    note = notes_of(ingested(out))["unread_arrays"]
    assert (note.count, note.detail) == (2, detail)


@pytest.mark.parametrize(
    ("titles", "times"),
    [
        (["t= 1", "t= 2"], [1.0, 2.0]),  # mdtraj: IndexError (list index out of range)
        (["t= 0.0", "t=-5.0"], [0.0, -5.0]),
        (["t= 0.0", "t= 1e3"], [0.0, 1000.0]),
        (["t=  1.5 (NVT) step= 10", "t=3 lambda= 0"], [1.5, 3.0]),
    ],
)
@pytest.mark.parametrize("alone", [True, False])
def test_a_gro_title_time_mdtraj_cannot_parse_is_read_with_the_titles_times(
    tmp_path, titles, times, alone
):
    gro = tmp_path / "t.gro"
    frames = [GRO_TEXT.replace("ions in water", f"ions in water {t}") for t in titles]
    frames[1] = frames[1].replace("0.126", "0.136")  # the second frame moves one atom
    gro.write_text("".join(frames))
    out = tmp_path / "t.h5"
    result = run("ingest", gro, *([] if alone else ["--topology", gro]), "-o", out)
    assert result.exit_code == 0, result.stderr
    traj = ingested(out)
    assert traj.time_unit == "ps" and traj.time.tolist() == times
    assert traj.positions[:, 0, 0].tolist() == pytest.approx([0.126, 0.136])
    assert traj.names == ["OW", "HW1", "HW2", "NA", "CL"]
    assert traj.box is not None and traj.box[1, 0, 0] == pytest.approx(3.0)
    assert "untimed_frames" not in notes_of(traj)
    assert not list(Path(tempfile.gettempdir()).glob("dynforecast-gro-*"))  # the copy is gone


def test_a_gro_topology_whose_title_mdtraj_cannot_parse_reads_with_its_trajectory(tmp_path):
    import mdtraj

    gro = tmp_path / "top.gro"
    gro.write_text(GRO_TEXT.replace("ions in water", "ions in water t= 0"))
    xyz = np.random.default_rng(0).uniform(0, 2, (3, 5, 3)).astype(np.float32)
    xtc = tmp_path / "traj.xtc"
    with mdtraj.formats.XTCTrajectoryFile(str(xtc), "w") as handle:
        handle.write(xyz, time=[0.0, 1.0, 2.0])
    out = tmp_path / "x.h5"
    result = run("ingest", xtc, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(ingested(out).positions, xyz, atol=1e-3)


def test_a_gro_alone_is_its_own_topology(tmp_path):
    gro = tmp_path / "ions.gro"
    gro.write_text(GRO_TEXT.replace("ions in water", "ions in water t= 2.0") * 2)
    alone, paired = tmp_path / "alone.h5", tmp_path / "paired.h5"
    assert run("ingest", gro, "-o", alone).exit_code == 0
    assert run("ingest", gro, "--topology", gro, "-o", paired).exit_code == 0
    first, second = read_h5md(alone)[0], read_h5md(paired)[0]
    assert first.n_frames == 2 and first.names == ["OW", "HW1", "HW2", "NA", "CL"]
    np.testing.assert_array_equal(first.positions, second.positions)
    np.testing.assert_array_equal(first.species, second.species)
    np.testing.assert_array_equal(first.time, second.time)
