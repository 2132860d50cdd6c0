"""XYZ velocities and frame times: a trajectory written by ase's own MD must be stored with
velocities and frame times in one time unit, so that a velocity extrapolation fits the positions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dynforecast.cli import app
from dynforecast.io.h5md import read_h5md
from dynforecast.models.baselines import ConstantVelocity, FileVelocity, Stay
from dynforecast.models.batch import WindowBatch

MD_STEP_FS = 0.5
FRAMES = 12


def run_md(path: Path, *, interval: int = 1, info: dict | None = None) -> None:
    """Velocity Verlet of a 32-atom periodic Cu crystal (EMT) at 0.5 fs, written by ase.io.write
    every ``interval`` steps as extended XYZ (momenta, forces, energy, Lattice, no time key)."""
    import ase.io
    from ase import units
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md import velocitydistribution
    from ase.md.verlet import VelocityVerlet

    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.calc = EMT()
    # thermalize_momenta (ase >= 3.29) replaces the deprecated MaxwellBoltzmannDistribution
    thermalize = getattr(
        velocitydistribution,
        "thermalize_momenta",
        velocitydistribution.MaxwellBoltzmannDistribution,
    )
    thermalize(atoms, temperature_K=600, rng=np.random.default_rng(3))
    dynamics = VelocityVerlet(atoms, timestep=MD_STEP_FS * units.fs)

    def write() -> None:
        atoms.info.update(info or {})
        ase.io.write(path, atoms, format="extxyz", append=True)

    dynamics.attach(write, interval=interval)
    dynamics.run(interval * (FRAMES - 1))


@pytest.fixture(scope="module")
def md_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("md") / "cu.extxyz"
    run_md(path)
    return path


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def extrapolation_errors(system) -> tuple[float, float]:
    """MSE (Angstrom^2) of the constant-velocity and stay baselines, one frame ahead, over all
    frames: the baselines' own forward on one-frame windows with the data's velocities."""
    frames, atoms = system.n_frames - 1, system.n_particles
    positions = torch.from_numpy(system.positions[:-1].reshape(-1, 1, 3)).double()
    velocities = torch.from_numpy(system.velocities[:-1].reshape(-1, 1, 3)).double()
    target = torch.from_numpy(system.positions[1:].reshape(-1, 3)).double()
    batch = WindowBatch(
        positions=positions,
        species=torch.zeros(frames * atoms, dtype=torch.int64),
        node_attrs=torch.zeros(frames * atoms, 0),
        edge_src=torch.zeros(0, dtype=torch.int64),
        edge_dst=torch.zeros(0, dtype=torch.int64),
        node_graph=torch.arange(frames).repeat_interleave(atoms),
        num_graphs=frames,
        target_dt=float(system.time[1] - system.time[0]),
        velocities=velocities,
    )
    moving = float(((ConstantVelocity()(batch) - target) ** 2).mean())
    staying = float(((Stay()(batch) - target) ** 2).mean())
    return moving, staying


def test_md_velocities_without_frame_times_need_a_time_step(run, md_file, tmp_path):
    out = tmp_path / "cu.h5"
    result = run("ingest", md_file, "-o", out)
    assert result.exit_code == 3
    assert result.stderr == (
        f"error: {md_file}: the file has velocities (Angstrom fs-1) but no frame times (for "
        "XYZ: no time=, timestep= or dt= key); give --time-step (--time-step '0.5 fs' is what "
        "the velocities imply)\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", ["0.5 fs", "0.0005 ps"])
def test_with_the_time_step_the_velocity_baseline_fits_the_positions(run, md_file, tmp_path, given):
    out = tmp_path / "cu.h5"
    result = run("ingest", md_file, "-o", out, "--time-step", given)
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(out)
    # stored in the velocities' unit, so that velocity x time step is a length
    assert (system.time_unit, system.parameters["velocity_unit"]) == ("fs", "Angstrom fs-1")
    np.testing.assert_allclose(system.time, MD_STEP_FS * np.arange(FRAMES), rtol=1e-12)
    moving, staying = extrapolation_errors(system)
    assert moving < 0.01 * staying
    assert "velocity_time_mismatch" not in system.parameters.get("ingest_notes", "")
    # what ase wrote besides positions and momenta is reported, not silently dropped
    notes = [line for line in result.stderr.splitlines() if ": note: " in line]
    assert notes == [
        f"{md_file}: note: per-atom energies, forces not kept",
        f"{md_file}: note: comment-line values energy, free_energy, stress of 12 frames not kept",
    ]


def test_a_time_step_the_velocities_contradict_is_noted(run, md_file, tmp_path):
    result = run("ingest", md_file, "-o", tmp_path / "cu.h5", "--time-step", "5 fs")
    assert result.exit_code == 0, result.stderr
    assert (
        f"{md_file}: note: the velocities imply about 0.5 fs between frames, but --time-step "
        "give 5 fs; check the time step"
    ) in result.stderr.splitlines()


def test_timestep_key_with_a_step_counter_gives_the_frame_times(run, tmp_path):
    """Frames saved every 4 MD steps with timestep= and step= keys: time = step x timestep."""
    path = tmp_path / "cu_every4.extxyz"
    steps = iter(range(0, 4 * FRAMES, 4))
    import ase.io

    run_md(path, interval=4, info={"timestep": MD_STEP_FS})
    text = path.read_text().replace("timestep=0.5", "timestep=0.5 step=STEP")
    text = "".join(
        part + (str(next(steps)) if k < FRAMES else "") for k, part in enumerate(text.split("STEP"))
    )
    path.write_text(text)
    assert len(ase.io.read(path, index=":")) == FRAMES
    result = run("ingest", path, "-o", tmp_path / "cu.h5")
    assert result.exit_code == 0, result.stderr
    (system,) = read_h5md(tmp_path / "cu.h5")
    np.testing.assert_allclose(system.time, 4 * MD_STEP_FS * np.arange(FRAMES))
    assert system.time_unit == "fs"
    assert f"{path}: note: frame times are step x timestep=0.5, timestep taken as fs" in (
        result.stderr.splitlines()
    )
    assert "velocities imply" not in result.stderr
    moving, staying = extrapolation_errors(system)
    assert moving < 0.1 * staying


def test_timestep_key_alone_is_one_step_per_frame_and_the_velocities_catch_a_wrong_guess(
    run, tmp_path
):
    path = tmp_path / "cu_every4.extxyz"
    run_md(path, interval=4, info={"timestep": MD_STEP_FS})
    result = run("ingest", path, "-o", tmp_path / "cu.h5")
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert (
        f"{path}: note: frame times are frame index x timestep=0.5, taken as fs, one MD step "
        "per frame (no step/md_step/nstep key); give --time-step if frames were saved less often"
    ) in lines
    assert (
        f"{path}: note: the velocities imply about 2 fs between frames, but the file's frame "
        "times give 0.5 fs; check the time step"
    ) in lines
    fixed = run("ingest", path, "-o", tmp_path / "fixed.h5", "--time-step", "2 fs")
    assert fixed.exit_code == 0 and "velocities imply" not in fixed.stderr


def test_file_velocity_baseline_moves_the_last_frame_by_the_stored_velocities():
    positions = torch.randn(5, 4, 3, dtype=torch.float64)  # [nodes, past frames, 3]
    velocities = torch.randn(5, 4, 3, dtype=torch.float64)
    nodes = dict(
        species=torch.zeros(5, dtype=torch.long),
        node_attrs=torch.zeros(5, 0, dtype=torch.float64),
        edge_src=torch.zeros(0, dtype=torch.long),
        edge_dst=torch.zeros(0, dtype=torch.long),
        node_graph=torch.zeros(5, dtype=torch.long),
        num_graphs=1,
        past_dt=1.0,
        target_dt=2.5,
    )
    batch = WindowBatch(positions=positions, velocities=velocities, **nodes)
    torch.testing.assert_close(FileVelocity()(batch), positions[:, -1] + 2.5 * velocities[:, -1])
    with pytest.raises(ValueError, match="expected velocities in the data for file_velocity"):
        FileVelocity()(WindowBatch(positions=positions, **nodes))


def test_evaluate_reports_the_file_velocity_baseline_where_the_file_has_velocities(
    run, md_file, tmp_path
):
    data = tmp_path / "cu.h5"
    assert run("ingest", md_file, "-o", data, "--time-step", "0.5 fs").exit_code == 0
    settings = ["--set", "data.window.past_frames=3", "--set", "data.split.mode=random"]
    trained = run("train", data, "--epochs", "1", "--out", tmp_path / "run", *settings)
    assert trained.exit_code == 0, trained.stderr
    result = run("evaluate", tmp_path / "run", data, "--split", "all", "--json")
    assert result.exit_code == 0, result.stderr
    baselines = json.loads(result.stdout)["baselines"]
    # a 0.5 fs velocity Verlet: the stored velocities extrapolate about as well as differences
    assert baselines["file_velocity"] < 0.05 * baselines["stay"]
    assert baselines["file_velocity"] < 2 * baselines["constant_velocity"]
