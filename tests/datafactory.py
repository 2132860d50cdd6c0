"""Small synthetic `Trajectory` objects for the data tests (no files needed)."""

from __future__ import annotations

import numpy as np

from dynforecast.io.trajectory import Trajectory


def make_system(
    name: str,
    n_frames: int,
    n_particles: int,
    *,
    seed: int = 0,
    time_step: float = 0.5,
    bonds: np.ndarray | None = None,
    velocities: bool = False,
    charges: bool = False,
) -> Trajectory:
    """A system whose coordinates encode (frame, particle) so gathers can be checked exactly.

    positions[f, i] = (f, i, seed) + small random noise-free offsets: x = frame, y = particle,
    z = seed; velocities = -positions. Exactly representable in float32 for small values.
    """
    frame = np.arange(n_frames, dtype=np.float32)[:, None]
    particle = np.arange(n_particles, dtype=np.float32)[None, :]
    positions = np.stack(
        np.broadcast_arrays(frame, particle, np.full((1, 1), seed, dtype=np.float32)), axis=-1
    ).astype(np.float32)
    system = Trajectory(
        name=name,
        positions=positions,
        species=np.arange(1, n_particles + 1, dtype=np.int32),
        time=np.arange(n_frames, dtype=np.float64) * time_step,
        step=np.arange(n_frames, dtype=np.int64),
        length_unit="Angstrom",
        time_unit="fs",
        bonds=(np.zeros((0, 2), dtype=np.int32) if bonds is None else np.asarray(bonds, np.int32)),
        velocities=-positions if velocities else None,
        charges=(np.arange(n_particles, dtype=np.float32) % 2 * 2 - 1) if charges else None,
    )
    system.validate()
    return system


def chain_bonds(n_particles: int) -> np.ndarray:
    """Bonds of a linear chain 0-1-2-...-(n-1)."""
    first = np.arange(n_particles - 1)
    return np.stack([first, first + 1], axis=1)


def random_system(name: str, n_frames: int, n_particles: int, seed: int) -> Trajectory:
    """A system with random coordinates (for radius graphs)."""
    rng = np.random.default_rng(seed)
    positions = rng.uniform(0.0, 6.0, size=(n_frames, n_particles, 3)).astype(np.float32)
    return Trajectory(
        name=name,
        positions=positions,
        species=np.zeros(n_particles, dtype=np.int32),
        time=np.arange(n_frames, dtype=np.float64),
        step=np.arange(n_frames, dtype=np.int64),
        length_unit="Angstrom",
        time_unit="ps",
    )
