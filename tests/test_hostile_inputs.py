"""Odd but valid files from mdtraj's, MDAnalysis's and ase's writers, read as a hostile user would
feed them: each is read with its data kept or noted, or refused with one line (exit 3)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.h5md import read_h5md
from dynforecast.io.notes import NOTES_PARAMETER, notes_from_json

FIELD = Path(__file__).parent / "data" / "field_cases"
WATER_GRO = """water t= 0.0
    3
    1SOL     OW    1   0.126   1.624   1.679
    1SOL    HW1    2   0.190   1.661   1.747
    1SOL    HW2    3   0.177   1.568   1.613
   3.00000   3.00000   3.00000
"""


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def ingested(path: Path):
    (traj,) = read_h5md(path)
    return traj


def notes_of(traj) -> dict[str, object]:
    return {n.kind: n for n in notes_from_json(traj.parameters.get(NOTES_PARAMETER))}


@pytest.fixture
def gro(tmp_path) -> Path:
    path = tmp_path / "water.gro"
    path.write_text(WATER_GRO)
    return path


def _xtc(path: Path, boxes: np.ndarray) -> Path:
    import mdtraj

    xyz = np.random.default_rng(0).uniform(0, 2, (boxes.shape[0], 3, 3)).astype(np.float32)
    with mdtraj.formats.XTCTrajectoryFile(str(path), "w") as handle:
        handle.write(xyz, time=np.arange(len(xyz), dtype=np.float32), box=boxes.astype(np.float32))
    return path


def test_an_xtc_box_that_changes_every_frame_is_kept_per_frame(tmp_path, gro):
    boxes = np.stack([np.eye(3) * (3 + 0.1 * k) for k in range(4)])
    xtc = _xtc(tmp_path / "npt.xtc", boxes)
    out = tmp_path / "npt.h5"
    result = run("ingest", xtc, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    np.testing.assert_allclose(ingested(out).box, boxes, atol=1e-6)


@pytest.mark.parametrize(
    ("empty", "problem"),
    [
        (2, "frame 2 has no unit cell (frame 0 has one)"),
        (0, "frame 1 has a unit cell (frame 0 has none)"),
    ],
)
def test_an_xtc_frame_with_a_zero_box_is_a_frame_without_a_cell_not_a_nan_one(
    tmp_path, gro, empty, problem
):
    # mdtraj turns a zero box into NaN vectors; the error must say what the file holds
    boxes = np.stack([np.eye(3) * 3.0] * 4)
    boxes[empty] = 0.0
    xtc = _xtc(tmp_path / "gap.xtc", boxes)
    out = tmp_path / "gap.h5"
    result = run("ingest", xtc, "--topology", gro, "-o", out)
    assert result.exit_code == 3
    assert result.stderr == f"error: {xtc}: {problem}\n"
    assert not out.exists()


def test_a_trr_with_velocities_in_some_frames_keeps_positions_steps_and_notes_them(tmp_path, gro):
    import MDAnalysis

    trr = tmp_path / "some.trr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        universe = MDAnalysis.Universe(str(gro))
        with MDAnalysis.Writer(str(trr), 3) as writer:
            for k in range(4):
                ts = universe.trajectory.ts
                universe.atoms.positions = universe.atoms.positions + 0.1  # Angstrom
                ts.has_velocities = k % 2 == 0
                if ts.has_velocities:
                    universe.atoms.velocities = np.full((3, 3), float(k))
                ts.data["step"], ts.time = 10 * k, 0.5 * k
                writer.write(universe)
    out = tmp_path / "some.h5"
    result = run("ingest", trr, "--topology", gro, "-o", out)
    assert result.exit_code == 0, result.stderr
    detail = (
        "the file's velocities were not ingested (mdtraj reads positions, times and unit cells "
        "only)"
    )
    assert f"{trr}: note: {detail}" in result.stderr.splitlines()
    traj = ingested(out)
    assert traj.step.tolist() == [0, 10, 20, 30] and traj.time.tolist() == [0.0, 0.5, 1.0, 1.5]
    np.testing.assert_allclose(traj.positions[:, 0, 0], 0.126 + 0.01 * np.arange(1, 5), atol=1e-6)


def test_extxyz_frames_with_different_properties_are_each_noted(tmp_path):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(0)
    frames = []
    for k in range(4):
        atoms = Atoms("H2O", positions=rng.uniform(0, 2, (3, 3)))
        atoms.info["time"] = float(k)
        if k == 1:
            atoms.calc = SinglePointCalculator(atoms, forces=np.ones((3, 3)), energy=1.0)
        if k == 2:
            atoms.set_initial_charges([0.1, 0.2, -0.3])
        if k == 3:
            atoms.info["temperature"] = 300.0
        frames.append(atoms)
    xyz = tmp_path / "props.extxyz"
    write(xyz, frames, format="extxyz")
    out = tmp_path / "props.h5"
    result = run("ingest", xyz, "-o", out)
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert f"{xyz}: note: per-atom forces, initial_charges not kept" in lines
    assert f"{xyz}: note: comment-line values energy, temperature of 2 frames not kept" in lines
    traj = ingested(out)
    assert set(notes_of(traj)) == {"dropped_properties", "dropped_values"}
    np.testing.assert_allclose(traj.positions, np.stack([a.positions for a in frames]), atol=1e-6)


def test_a_multi_model_pdb_whose_models_differ_in_atom_count_names_the_model(tmp_path):
    one = (FIELD / "inscode_roundtrip.pdb").read_text()  # 10 lines: 8 ATOM, TER, END
    fewer = "".join([line for line in one.splitlines(True) if line.startswith("ATOM")][:6])
    pdb = tmp_path / "fewer.pdb"
    pdb.write_text(one + one + fewer + "END\n")
    out = tmp_path / "fewer.h5"
    result = run("ingest", pdb, "-o", out)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: {pdb}: model 3 of 3 (from line 21) has 6 ATOM/HETATM records, the first model "
        "8; every model must hold the same atoms (split the file into trajectories of equal "
        "models)\n"
    )
    assert not out.exists()


def test_a_bvh_with_crlf_and_tabs_reads_as_the_plain_one(tmp_path):
    from data_kinds import write_arm_clip

    plain = write_arm_clip(tmp_path / "arm.bvh", n_frames=10)
    text = plain.read_text()
    tabs = tmp_path / "tabs.bvh"
    tabs.write_bytes(re.sub(r" +", "\t", text).replace("\n", "\r\n").encode())
    mixed = tmp_path / "mixed.bvh"
    mixed.write_bytes(re.sub(r"(?m)^ +", "\t\t", text).replace("\n", " \t\r\n").encode())
    want = tmp_path / "plain.h5"
    assert run("ingest", plain, "-o", want).exit_code == 0
    for odd in (tabs, mixed):
        out = tmp_path / f"{odd.stem}.h5"
        result = run("ingest", odd, "-o", out)
        assert result.exit_code == 0, result.stderr
        assert ": note: " not in result.stderr
        got, reference = ingested(out), ingested(want)
        np.testing.assert_array_equal(got.positions, reference.positions)
        assert got.names == reference.names
        assert got.parameters["bvh_frame_time"] == reference.parameters["bvh_frame_time"]
