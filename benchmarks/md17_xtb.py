"""MD17-style trajectories of the eight MD17 molecules, simulated with GFN2-xTB (tblite + ase).

MD17 itself (Chmiel et al., Sci. Adv. 2017) cannot be downloaded on the machines this project is
built on, so the benchmark simulates its own: the energies and forces are **GFN2-xTB** (tblite),
not MD17's PBE+vdW-TS DFT, and the numbers are not comparable to published MD17 tables except in
kind. The protocol follows MD17's sampling: 500 K, 0.5 fs time step, every step saved.

* Start: a 3D structure embedded from SMILES by RDKit (ETKDG, seed 1), Maxwell-Boltzmann
  velocities at 500 K (seeded), then ``EQUILIBRATION_STEPS`` unsaved Langevin steps.
* Production: Langevin dynamics (ase.md.langevin, friction ``FRICTION_PER_FS``), 500 K, 0.5 fs,
  ``steps`` steps, every step written (``steps + 1`` frames with the start).
* Output: extended XYZ with ``time=`` (fs) and momenta per frame (ase's units), which
  ``dynforecast ingest`` reads with velocities in Angstrom/fs.

Resumable: frames are appended to ``<out>.part`` in blocks of ``BLOCK_STEPS`` and the dynamics'
state (positions, momenta, random generator state, step) is saved beside it after every block; a
rerun continues from the last complete block and renames the file into place when done. Only
xTB's SCF restarts from a fresh guess after a resume, so the frames that follow agree with an
uninterrupted run to the SCF's convergence (about 1e-7 Angstrom), not bit for bit.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks.md17_xtb aspirin -o aspirin.extxyz [--steps N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

#: MD17's eight molecules as SMILES (hydrogens added by RDKit).
MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "benzene": "c1ccccc1",
    "ethanol": "CCO",
    "malonaldehyde": "O=CCC=O",
    "naphthalene": "c1ccc2ccccc2c1",
    "salicylic_acid": "OC(=O)c1ccccc1O",
    "toluene": "Cc1ccccc1",
    "uracil": "O=C1C=CNC(=O)N1",
}
TEMPERATURE_K = 500.0
TIME_STEP_FS = 0.5
FRICTION_PER_FS = 0.01
EQUILIBRATION_STEPS = 2000
BLOCK_STEPS = 1000
DEFAULT_STEPS = 50_000


def embed(molecule: str, seed: int = 1):
    """ase.Atoms of ``molecule`` (a key of MOLECULES) from RDKit's ETKDG embedding, Angstrom."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(MOLECULES[molecule]))
    if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
        raise RuntimeError(f"RDKit could not embed {molecule}")
    AllChem.MMFFOptimizeMolecule(mol)
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    return Atoms(symbols, positions=mol.GetConformer().GetPositions())


def _calculator():
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0)


def _langevin(atoms, rng):
    from ase import units
    from ase.md.langevin import Langevin

    return Langevin(
        atoms,
        TIME_STEP_FS * units.fs,
        temperature_K=TEMPERATURE_K,
        friction=FRICTION_PER_FS / units.fs,
        fixcm=False,
        rng=rng,
    )


def _state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state")


def _append_block(part: Path, frames: list) -> None:
    from ase.io import write

    with open(part, "a", encoding="utf-8") as handle:
        write(handle, frames, format="extxyz")


def simulate(
    molecule: str,
    out: Path,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    *,
    equilibration_steps: int = EQUILIBRATION_STEPS,
    block_steps: int = BLOCK_STEPS,
) -> Path:
    """Write ``steps + 1`` frames of ``molecule`` to ``out`` (extended XYZ); resumes a partial run.

    Returns ``out``. Each block of BLOCK_STEPS frames is flushed with the state needed to
    continue, so an interrupted run loses at most one block.
    """
    from ase.constraints import FixCom
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

    out = Path(out)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    part, state_file = out.with_name(out.name + ".part"), _state_path(out)
    atoms = embed(molecule)
    atoms.calc = _calculator()
    atoms.set_constraint(FixCom())  # no drift of the centre of mass (ase's advice over fixcm)
    rng = np.random.default_rng(seed)
    done = -1  # last saved step
    if part.exists() and state_file.exists():
        state = pickle.loads(state_file.read_bytes())
        atoms.set_positions(state["positions"])
        atoms.set_momenta(state["momenta"])
        rng.bit_generator.state = state["rng"]
        done = state["step"]
    else:
        part.unlink(missing_ok=True)
        thermalize_momenta(atoms, temperature_K=TEMPERATURE_K, rng=rng)
        Stationary(atoms)
        ZeroRotation(atoms)
        _langevin(atoms, rng).run(equilibration_steps)
    dynamics = _langevin(atoms, rng)
    block: list = []

    def snapshot(step: int):
        frame = atoms.copy()
        frame.calc = None
        frame.info = {"time": step * TIME_STEP_FS, "step": step}
        frame.set_momenta(atoms.get_momenta())
        return frame

    if done < 0:
        block.append(snapshot(0))
        done = 0
    started = time.perf_counter()
    for step in range(done + 1, steps + 1):
        dynamics.run(1)
        block.append(snapshot(step))
        if len(block) >= block_steps or step == steps:
            _append_block(part, block)
            block = []
            state = {
                "positions": atoms.get_positions(),
                "momenta": atoms.get_momenta(),
                "rng": rng.bit_generator.state,
                "step": step,
            }
            state_file.write_bytes(pickle.dumps(state))
            rate = (step - done) / (time.perf_counter() - started)
            print(f"{molecule}: step {step}/{steps} ({rate:.0f} steps/s)", file=sys.stderr)
    os.replace(part, out)
    state_file.unlink(missing_ok=True)
    _write_provenance(out, molecule, steps, seed, equilibration_steps)
    return out


def _write_provenance(
    out: Path, molecule: str, steps: int, seed: int, equilibration_steps: int
) -> None:
    from importlib.metadata import version

    import ase

    info = {
        "molecule": molecule,
        "smiles": MOLECULES[molecule],
        "method": "GFN2-xTB (tblite)",
        "tblite": version("tblite"),
        "ase": ase.__version__,
        "temperature_K": TEMPERATURE_K,
        "time_step_fs": TIME_STEP_FS,
        "friction_per_fs": FRICTION_PER_FS,
        "equilibration_steps": equilibration_steps,
        "steps": steps,
        "seed": seed,
    }
    out.with_name(out.name + ".json").write_text(json.dumps(info, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("molecule", choices=sorted(MOLECULES))
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    simulate(args.molecule, args.out, args.steps, args.seed)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
