"""A protein trajectory made offline with OpenMM, for the protein table's long-trajectory rows.

Run: ``python -m benchmarks.protein_openmm -o DIR [--nanoseconds 2] [--equilibration-steps N]``;
writes ``DIR/chignolin.pdb`` (the topology, hydrogens included) and ``DIR/chignolin.dcd``.

Why this system: issue 12 asks for a protein trajectory of a few thousand frames made here, in
implicit solvent. On the 2-core CI-class machine OpenMM's CPU platform runs Trp-cage (304 atoms,
GBn2, 2 fs) at about 14 ns/day on one thread, so a few nanoseconds would take hours; chignolin
(CLN025, YYDPETGTWY, 10 residues, 166 atoms; Honda et al., JACS 2008), the smallest fast-folding
mini-protein used in MD studies, runs at about 90 ns/day with hydrogen mass repartitioning and
4 fs steps, so 2 ns (4,000 frames) take about half an hour.

Protocol (every value is written to ``DIR/chignolin.json`` beside the trajectory):
* structure: PeptideBuilder's chain from the sequence with beta-strand backbone angles
  (phi -120, psi 130 degrees), C-terminal OXT, hydrogens added by OpenMM's Modeller at pH 7;
* force field: Amber ff14SB (``amber14-all.xml``) with the GBn2 implicit solvent
  (``implicit/gbn2.xml``; Nguyen, Roe and Simmerling, JCTC 2013), no cutoff;
* hydrogen bonds constrained, hydrogen mass 4 amu (repartitioned from the heavy atoms);
* energy minimisation, 20 ps of equilibration (not saved), then Langevin middle dynamics
  (friction 1/ps, 300 K, 4 fs steps), one frame every 0.5 ps (125 steps).

The run is resumable: it simulates in blocks of 200 frames, appending to the DCD and saving the
integrator state after each block, so a killed run continues where the last block ended.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

SEQUENCE = "YYDPETGTWY"
NAME = "chignolin"
TEMPERATURE_K = 300.0
FRICTION_PER_PS = 1.0
STEP_FS = 4.0
FRAME_STEPS = 125  # 0.5 ps per frame
EQUILIBRATION_STEPS = 5000  # 20 ps
BLOCK_FRAMES = 200
PHI, PSI = -120.0, 130.0


def _build(directory: Path):
    """The topology PDB with hydrogens (written once) and its OpenMM topology and positions."""
    from openmm import app

    pdb_path = directory / f"{NAME}.pdb"
    forcefield = app.ForceField("amber14-all.xml", "implicit/gbn2.xml")
    if not pdb_path.exists():
        import Bio.PDB
        import PeptideBuilder

        structure = PeptideBuilder.make_structure(
            SEQUENCE, [PHI] * len(SEQUENCE), [PSI] * len(SEQUENCE)
        )
        PeptideBuilder.add_terminal_OXT(structure)
        raw = directory / f".{NAME}-heavy.pdb"
        writer = Bio.PDB.PDBIO()
        writer.set_structure(structure)
        writer.save(str(raw))
        heavy = app.PDBFile(str(raw))
        modeller = app.Modeller(heavy.topology, heavy.positions)
        modeller.addHydrogens(forcefield, pH=7.0)
        scratch = pdb_path.with_name(f".{pdb_path.name}.tmp")
        with scratch.open("w") as handle:
            app.PDBFile.writeFile(modeller.topology, modeller.positions, handle)
        scratch.replace(pdb_path)
        raw.unlink()
    pdb = app.PDBFile(str(pdb_path))
    return forcefield, pdb


def _simulation(forcefield, pdb, threads: int):
    from openmm import LangevinMiddleIntegrator, Platform, app, unit

    system = forcefield.createSystem(
        pdb.topology,
        nonbondedMethod=app.NoCutoff,
        constraints=app.HBonds,
        hydrogenMass=4 * unit.amu,
    )
    integrator = LangevinMiddleIntegrator(
        TEMPERATURE_K * unit.kelvin, FRICTION_PER_PS / unit.picosecond, STEP_FS * unit.femtosecond
    )
    integrator.setRandomNumberSeed(2026)
    cpu = Platform.getPlatformByName("CPU")
    return app.Simulation(pdb.topology, system, integrator, cpu, {"Threads": str(threads)})


def _frames_in(dcd: Path) -> int:
    if not dcd.exists():
        return 0
    import mdtraj

    with mdtraj.formats.DCDTrajectoryFile(str(dcd)) as handle:
        return len(handle)


def simulate(
    directory: Path,
    frames: int,
    threads: int = 1,
    equilibration_steps: int = EQUILIBRATION_STEPS,
) -> tuple[Path, Path]:
    """Simulate until ``directory/chignolin.dcd`` holds ``frames`` frames; returns (pdb, dcd).

    ``equilibration_steps`` are run (not saved) after minimisation; the quick benchmark path
    shortens them.
    """
    from openmm import app

    directory.mkdir(parents=True, exist_ok=True)
    forcefield, pdb = _build(directory)
    dcd = directory / f"{NAME}.dcd"
    state = directory / f"{NAME}.state.xml"
    done = _frames_in(dcd) if state.exists() else 0
    if done >= frames:
        return directory / f"{NAME}.pdb", dcd
    simulation = _simulation(forcefield, pdb, threads)
    if done == 0:
        dcd.unlink(missing_ok=True)
        simulation.context.setPositions(pdb.positions)
        simulation.minimizeEnergy()
        simulation.context.setVelocitiesToTemperature(TEMPERATURE_K, 7)
        simulation.step(equilibration_steps)
    else:
        simulation.loadState(str(state))
    started, first = time.perf_counter(), done
    while done < frames:
        block = min(BLOCK_FRAMES, frames - done)
        reporter = app.DCDReporter(str(dcd), FRAME_STEPS, append=dcd.exists())
        simulation.reporters = [reporter]
        simulation.step(block * FRAME_STEPS)
        simulation.reporters = []
        del reporter  # its last reference: closes the DCD before the state is saved
        simulation.saveState(str(state))
        done += block
        rate = (
            (done - first) * FRAME_STEPS * STEP_FS * 1e-6 / max(time.perf_counter() - started, 1e-9)
        )
        print(f"{NAME}: {done}/{frames} frames ({rate * 86400:.0f} ns/day)", flush=True)
    _write_provenance(
        directory, frames, threads, equilibration_steps, time.perf_counter() - started
    )
    return directory / f"{NAME}.pdb", dcd


def _write_provenance(
    directory: Path, frames: int, threads: int, equilibration_steps: int, seconds: float
) -> None:
    import openmm

    record = {
        "system": f"{NAME} ({SEQUENCE}), PeptideBuilder phi {PHI} psi {PSI}, hydrogens at pH 7",
        "force_field": "amber14-all.xml (ff14SB) + implicit/gbn2.xml (GBn2), no cutoff",
        "constraints": "HBonds, hydrogen mass 4 amu",
        "integrator": f"LangevinMiddle {TEMPERATURE_K} K, {FRICTION_PER_PS}/ps, {STEP_FS} fs",
        "equilibration_steps": equilibration_steps,
        "frame_steps": FRAME_STEPS,
        "frame_time_ps": FRAME_STEPS * STEP_FS / 1000,
        "frames": frames,
        "openmm": openmm.__version__,
        "threads": threads,
        "seconds_last_leg": round(seconds, 1),
        "cpu": platform.processor() or platform.machine(),
    }
    (directory / f"{NAME}.json").write_text(json.dumps(record, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--nanoseconds", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--equilibration-steps", type=int, default=EQUILIBRATION_STEPS)
    args = parser.parse_args(argv)
    frame_ns = FRAME_STEPS * STEP_FS * 1e-6
    frames = round(args.nanoseconds / frame_ns)
    pdb, dcd = simulate(args.out, frames, args.threads, args.equilibration_steps)
    print(pdb, dcd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
