"""The five data kinds a user trains on with no options (issue 9), built from PyPI packages.

AdK C-alpha (MDAnalysisTests PSF + DCD, ingested with --select "name CA"), a small molecule XYZ
trajectory (ase, EMT), one BVH arm clip of 120 frames at 30 fps, four clips of one skeleton, and
the built-in N-body set (generated into a temporary cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynforecast.io.bvh import format_bvh
from dynforecast.io.bvh_kinematics import BvhSkeleton
from dynforecast.io.bvh_synthetic import random_skeleton
from dynforecast.io.ingest import ingest

ROTATIONS = ("Zrotation", "Xrotation", "Yrotation")
KINDS = ("adk", "molecule", "clip", "clips", "nbody")


def smooth_motion(rng: np.random.Generator, skeleton: BvhSkeleton, n_frames: int) -> np.ndarray:
    """Channels [F, C] as sums of slow sines (0.2-1 Hz at 30 fps, 5-40 degrees or units)."""
    t = np.arange(n_frames)[:, None] / 30.0
    frequency = rng.uniform(0.2, 1.0, skeleton.n_channels)
    phase = rng.uniform(0.0, 2 * np.pi, skeleton.n_channels)
    amplitude = rng.uniform(5.0, 40.0, skeleton.n_channels)
    return amplitude * np.sin(2 * np.pi * frequency * t + phase)


def arm_skeleton() -> BvhSkeleton:
    """Shoulder / Elbow / Wrist + End Site (bones 25, 22 and 8 units)."""
    return BvhSkeleton(
        names=("Shoulder", "Elbow", "Wrist", "Wrist_end"),
        parents=np.array([-1, 0, 1, 2]),
        offsets=np.array([[0.0, 0, 0], [25.0, 0, 0], [22.0, 0, 0], [8.0, 0, 0]]),
        channels=(("Xposition", "Yposition", "Zposition", *ROTATIONS), ROTATIONS, ROTATIONS, ()),
        end_site=np.array([False, False, False, True]),
    )


def write_arm_clip(path: Path, n_frames: int = 120) -> Path:
    skeleton = arm_skeleton()
    motion = smooth_motion(np.random.default_rng(1), skeleton, n_frames)
    motion[:, :3] = 0.0  # the shoulder stays put
    path.write_text(format_bvh(skeleton, motion, 1 / 30))
    return path


def write_clips(folder: Path, n_clips: int = 4, n_frames: int = 150) -> list[Path]:
    skeleton = random_skeleton(np.random.default_rng(2), 8, six_channel_fraction=0.0)
    paths = []
    for clip in range(n_clips):
        motion = smooth_motion(np.random.default_rng(10 + clip), skeleton, n_frames)
        motion[:, :3] *= 0.5
        path = folder / f"clip{clip}.bvh"
        path.write_text(format_bvh(skeleton, motion, 1 / 30))
        paths.append(path)
    return paths


def write_molecule_xyz(path: Path, n_frames: int = 300) -> Path:
    """Ethanol under EMT, velocity Verlet at 0.5 fs, every 2nd step kept (1 fs apart), 500 K."""
    import ase.io
    from ase import units
    from ase.build import molecule
    from ase.calculators.emt import EMT
    from ase.md.verlet import VelocityVerlet

    atoms = molecule("CH3CH2OH")
    atoms.calc = EMT()
    rng = np.random.default_rng(0)
    masses = atoms.get_masses()[:, None]
    sigma = np.sqrt(500.0 * units.kB / masses)  # Maxwell-Boltzmann at 500 K
    atoms.set_momenta(masses * rng.normal(size=(len(atoms), 3)) * sigma)
    dynamics = VelocityVerlet(atoms, 0.5 * units.fs)
    frames = []
    for k in range(n_frames):
        dynamics.run(2)
        frame = atoms.copy()
        frame.info["time"] = float(k + 1)
        frames.append(frame)
    ase.io.write(path, frames, format="extxyz")
    return path


def make_kind(kind: str, folder: Path) -> Path | None:
    """The H5MD file of one data kind (None for the built-in N-body set: `train` with no file)."""
    out = folder / f"{kind}.h5"
    if kind == "adk":
        from MDAnalysisTests.datafiles import DCD, PSF

        ingest([Path(DCD)], out, topology=Path(PSF), select="name CA")
    elif kind == "molecule":
        ingest([write_molecule_xyz(folder / "ethanol.xyz")], out)
    elif kind == "clip":
        ingest([write_arm_clip(folder / "arm.bvh")], out)
    elif kind == "clips":
        ingest(write_clips(folder), out)
    elif kind == "nbody":
        return None
    else:
        raise ValueError(f"expected one of {KINDS} (got {kind!r})")
    return out
