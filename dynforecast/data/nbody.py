"""The charged N-body system of EGNN (the built-in data set), specification: nbody.md.

Five unit-mass particles with charges +-1 interact by Coulomb forces (like charges repel), each
force component clipped at +-100, integrated by kick-drift (symplectic Euler) with dt = 0.001 for
5000 steps; every 100th state is recorded, so frame k is the state after step 100(k+1), at time
t = 0.1(k+1), and the initial state never appears.

Random numbers come from ONE legacy ``np.random.RandomState(seed)`` stream, consumed per
trajectory in EGNN's order (charges, positions, velocities, then two zero-variance noise arrays
that change nothing but must still be drawn). Trajectory j of a seed is therefore the same
whatever the split sizes, and ``first_index`` skips ahead by drawing and discarding.

Two modes share the draws and the arithmetic (float64, the spec's formulas in the spec's order):
"exact" integrates one trajectory at a time with (3, n) arrays, as EGNN does (bit-exact);
"fast" integrates all trajectories at once with (S, 3, n) arrays (batched matrix products may
round differently, so it is tested against "exact" to a tolerance).

Array layout is EGNN's: loc, vel (S, 49, 3, n) (frame, xyz, particle); edges (S, n, n) = q q^T;
charges (S, n, 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError, UsageError, describe_path
from dynforecast.io.atomic import create_directory
from dynforecast.io.trajectory import Trajectory

N_PARTICLES = 5
DIMENSIONS = 3
TIME_STEP = 0.001
N_STEPS = 5000
RECORD_EVERY = 100
N_FRAMES = N_STEPS // RECORD_EVERY - 1  # 49: slot 0 is overwritten at step 100
STRENGTH = 1.0
MAX_FORCE = 0.1 / TIME_STEP
POSITION_SCALE = 1.0 * (N_PARTICLES / 5.0) ** (1.0 / 3.0)
INITIAL_SPEED = 0.5
BOX_HALF_WIDTH = 5.0
NOISE_VARIANCE = 0.0
#: EGNN draws charges from three values; the middle one has probability 0. Changing the value
#: set or the probabilities changes how a uniform maps to a charge, hence the whole stream.
CHARGE_VALUES = np.array([-1.0, 0.0, 1.0])
CHARGE_PROBABILITIES = [0.5, 0.0, 0.5]
MODES = ("exact", "fast")
#: Trajectories integrated together in fast mode (bounds temporary memory).
FAST_CHUNK = 2048


@dataclass
class NBodyArrays:
    """Trajectories in EGNN's layout (float64) and where they come from in the stream.

    Fields:
        loc, vel: [S, 49, 3, n] positions and recorded (half-step) velocities.
        edges: [S, n, n] charge products q_i q_j (diagonal meaningless).
        charges: [S, n, 1] +-1.
        seed, first_index: the stream and the stream index of trajectory 0.
        mode: "exact" or "fast".
        indices: int64 [S] stream index of every trajectory when they are not consecutive
            (an EGNN recipe); None means first_index, first_index + 1, ...
    """

    loc: np.ndarray
    vel: np.ndarray
    edges: np.ndarray
    charges: np.ndarray
    seed: int = 43
    first_index: int = 0
    mode: str = "exact"
    indices: np.ndarray | None = None

    @property
    def n_trajectories(self) -> int:
        return int(self.loc.shape[0])

    @property
    def stream_indices(self) -> np.ndarray:
        """int64 [S]: the stream index of each trajectory."""
        if self.indices is not None:
            return np.asarray(self.indices, dtype=np.int64)
        return self.first_index + np.arange(self.n_trajectories, dtype=np.int64)


@dataclass
class InitialStates:
    """Draws of S trajectories before integration: loc, vel [S, 3, n]; charges [S, n, 1]."""

    loc: np.ndarray
    vel: np.ndarray
    charges: np.ndarray


def _draw_one(rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consume one trajectory's random numbers in EGNN's order; return charges, loc, vel draws."""
    charges = rng.choice(CHARGE_VALUES, size=(N_PARTICLES, 1), p=CHARGE_PROBABILITIES)
    loc = rng.randn(DIMENSIONS, N_PARTICLES) * POSITION_SCALE
    vel = rng.randn(DIMENSIONS, N_PARTICLES)
    # Observation noise: drawn after integration in EGNN; integration draws nothing, so drawing
    # it here consumes the stream identically. Its variance is 0, so it is discarded.
    rng.randn(N_FRAMES, DIMENSIONS, N_PARTICLES)
    rng.randn(N_FRAMES, DIMENSIONS, N_PARTICLES)
    return charges, loc, vel


def draw_initial_states(rng: np.random.RandomState, count: int) -> InitialStates:
    """The initial states of the next ``count`` trajectories of the stream.

    The loop over trajectories only consumes random numbers (legacy RandomState interleaves
    uniforms and cached normals, so the draws cannot be batched); the arithmetic on them,
    speed normalisation and the box reflection, is vectorised.
    """
    draws = [_draw_one(rng) for _ in range(count)]
    charges = np.stack([d[0] for d in draws]) if draws else np.zeros((0, N_PARTICLES, 1))
    loc = np.stack([d[1] for d in draws]) if draws else np.zeros((0, DIMENSIONS, N_PARTICLES))
    vel = np.stack([d[2] for d in draws]) if draws else np.zeros((0, DIMENSIONS, N_PARTICLES))
    speed = np.sqrt((vel**2).sum(axis=-2, keepdims=True))
    vel = vel * INITIAL_SPEED / speed
    loc, vel = reflect_into_box(loc, vel)
    return InitialStates(loc=loc, vel=vel, charges=charges)


def reflect_into_box(loc: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror coordinates outside [-5, 5] back inside, velocities pointing inwards (initial only)."""
    loc, vel = loc.copy(), vel.copy()
    over = loc > BOX_HALF_WIDTH
    loc[over] = 2 * BOX_HALF_WIDTH - loc[over]
    vel[over] = -np.abs(vel[over])
    under = loc < -BOX_HALF_WIDTH
    loc[under] = -2 * BOX_HALF_WIDTH - loc[under]
    vel[under] = np.abs(vel[under])
    return loc, vel


def coulomb_forces(loc: np.ndarray, edges: np.ndarray, clip: bool = True) -> np.ndarray:
    """Clipped Coulomb forces (= accelerations, unit masses).

    F_i = sum_j k q_i q_j (x_i - x_j) / |x_i - x_j|^3, each component clipped to +-100. The
    squared distances are |a_i|^2 + |a_j|^2 - 2 a_i.a_j and cubed via power 1.5, the spec's
    arithmetic, which bit-exactness with EGNN depends on.

    Shapes: loc [..., 3, n], edges [..., n, n] -> [..., 3, n].
    """
    points = np.swapaxes(loc, -1, -2)  # [..., n, 3]
    norms = (points**2).sum(axis=-1)
    squared = norms[..., :, None] + norms[..., None, :] - 2 * (points @ np.swapaxes(points, -1, -2))
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = STRENGTH * edges / np.power(squared, 1.5)
    diagonal = np.arange(loc.shape[-1])
    strength[..., diagonal, diagonal] = 0.0
    differences = loc[..., :, :, None] - loc[..., :, None, :]  # [..., 3, n, n]: x_i - x_j
    forces = (strength[..., None, :, :] * differences).sum(axis=-1)
    if clip:  # elementwise, per Cartesian component
        np.clip(forces, -MAX_FORCE, MAX_FORCE, out=forces)
    return forces


def integrate(
    loc: np.ndarray,
    vel: np.ndarray,
    edges: np.ndarray,
    n_steps: int = N_STEPS,
    record_every: int = RECORD_EVERY,
) -> tuple[np.ndarray, np.ndarray]:
    """Kick-drift integration recording (x, v) after every ``record_every``-th drift.

    One kick at the initial state, then for i = 1 .. n_steps-1: drift, record if i is a multiple
    of ``record_every``, kick. With the defaults: 49 frames, frame k after step 100(k+1).
    ``record_every=1`` records every step (the test hook for the frame <-> step mapping).

    Shapes: loc, vel [..., 3, n], edges [..., n, n] -> loc, vel [..., F, 3, n],
    F = (n_steps - 1) // record_every.
    """
    x, v = loc.copy(), vel.copy()
    n_records = (n_steps - 1) // record_every
    frames_x = np.zeros((*x.shape[:-2], n_records, *x.shape[-2:]))
    frames_v = np.zeros_like(frames_x)
    v += TIME_STEP * coulomb_forces(x, edges)
    for step in range(1, n_steps):  # a loop over time steps: each depends on the previous
        x += TIME_STEP * v
        if step % record_every == 0 and step // record_every <= n_records:
            frames_x[..., step // record_every - 1, :, :] = x
            frames_v[..., step // record_every - 1, :, :] = v
        v += TIME_STEP * coulomb_forces(x, edges)
    return frames_x, frames_v


def _skip(rng: np.random.RandomState, count: int) -> None:
    """Skip-ahead: consume ``count`` trajectories' random numbers without integrating them."""
    for _ in range(count):
        _draw_one(rng)


def simulate_nbody(
    n_trajectories: int,
    seed: int = 43,
    *,
    mode: str = "exact",
    first_index: int = 0,
    progress: Callable[[int], None] | None = None,
) -> NBodyArrays:
    """Trajectories ``first_index .. first_index + n_trajectories - 1`` of the seed's stream.

    ``progress(done)`` is called with the number of trajectories integrated so far.
    """
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)} (got {mode!r})")
    if n_trajectories < 0 or first_index < 0:
        raise UsageError(
            f"--trajectories and the first index must be >= 0 (got {n_trajectories}, {first_index})"
        )
    rng = np.random.RandomState(seed)
    _skip(rng, first_index)
    initial = draw_initial_states(rng, n_trajectories)
    edges = initial.charges @ np.swapaxes(initial.charges, -1, -2)
    loc = np.zeros((n_trajectories, N_FRAMES, DIMENSIONS, N_PARTICLES))
    vel = np.zeros_like(loc)
    if mode == "exact":
        for s in range(n_trajectories):  # EGNN's per-trajectory arithmetic, for bit-exactness
            loc[s], vel[s] = integrate(initial.loc[s], initial.vel[s], edges[s])
            if progress is not None:
                progress(s + 1)
    else:
        for first in range(0, n_trajectories, FAST_CHUNK):  # chunks of thousands, not samples
            part = slice(first, first + FAST_CHUNK)
            loc[part], vel[part] = integrate(initial.loc[part], initial.vel[part], edges[part])
            if progress is not None:
                progress(min(first + FAST_CHUNK, n_trajectories))
    return NBodyArrays(loc, vel, edges, initial.charges, seed, first_index, mode)


#: EGNN's data-set recipes (nbody.md section 4.1): (first stream index, count) of train,
#: validation and test. "nbody_small" is EGNN's exact data (train = the first 3000 of 10,000
#: generated); "shortcut" has the same training set but validation and test are stream
#: trajectories 3000-6999, statistically comparable, not identical, to EGNN's.
EGNN_RECIPES: dict[str, tuple[tuple[int, int], ...]] = {
    "nbody_small": ((0, 3000), (10_000, 2000), (12_000, 2000)),
    "shortcut": ((0, 3000), (3000, 2000), (5000, 2000)),
}


def simulate_recipe(
    recipe: str,
    seed: int = 43,
    *,
    mode: str = "exact",
    progress: Callable[[int], None] | None = None,
) -> NBodyArrays:
    """The train, validation and test trajectories of an EGNN recipe, concatenated in that order.

    Unused stream trajectories are skipped, not simulated. With the "systems" split and
    fractions (3/7, 2/7, 2/7) the three parts are exactly the recipe's splits.
    """
    if recipe not in EGNN_RECIPES:
        raise UsageError(f"--recipe must be one of {', '.join(EGNN_RECIPES)} (got {recipe!r})")
    parts = []
    done = 0
    for first, count in EGNN_RECIPES[recipe]:  # three ranges
        report = None if progress is None else (lambda n, before=done: progress(before + n))
        parts.append(simulate_nbody(count, seed, mode=mode, first_index=first, progress=report))
        done += count
    return NBodyArrays(
        loc=np.concatenate([p.loc for p in parts]),
        vel=np.concatenate([p.vel for p in parts]),
        edges=np.concatenate([p.edges for p in parts]),
        charges=np.concatenate([p.charges for p in parts]),
        seed=seed,
        first_index=0,
        mode=mode,
        indices=np.concatenate([p.stream_indices for p in parts]),
    )


def nbody_energy(loc: np.ndarray, vel: np.ndarray, charges: np.ndarray) -> np.ndarray:
    """Total energy 1/2 sum |v|^2 + sum_{i<j} k q_i q_j / r_ij (diagnostics; not conserved).

    Shapes: loc, vel [..., 3, n], charges [..., n, 1] (broadcast over frames) -> [...].
    """
    points = np.swapaxes(loc, -1, -2)
    distance = np.linalg.norm(points[..., :, None, :] - points[..., None, :, :], axis=-1)
    pair = charges[..., :, 0][..., :, None] * charges[..., :, 0][..., None, :]
    upper = np.triu(np.ones(distance.shape[-2:], dtype=bool), k=1)
    potential = (STRENGTH * pair / np.where(upper, distance, 1.0) * upper).sum(axis=(-1, -2))
    return 0.5 * (vel**2).sum(axis=(-1, -2)) + potential


#: Trajectory.parameters key naming the window protocol a data set was made for (see
#: dynforecast.data.windows.PROTOCOLS); `train` uses it when no protocol is configured.
RECOMMENDED_PROTOCOL_KEY = "window_protocol"


def nbody_trajectories(arrays: NBodyArrays, names_prefix: str = "traj") -> list[Trajectory]:
    """One `Trajectory` per simulated trajectory, named by its stream index (zero-padded).

    Positions [49, 5, 3] float32 (the EGNN layout with the last two axes swapped), velocities
    likewise, charges [5], species 0; frame k has step 100(k+1) and time 0.1(k+1). The system is
    dimensionless: units are written as "1".
    """
    frames = np.arange(N_FRAMES)
    time = (frames + 1) * (RECORD_EVERY * TIME_STEP)
    step = ((frames + 1) * RECORD_EVERY).astype(np.int64)
    indices = arrays.stream_indices
    width = max(5, len(str(int(indices.max())))) if indices.size else 5
    positions = np.swapaxes(arrays.loc, -1, -2).astype(np.float32)
    velocities = np.swapaxes(arrays.vel, -1, -2).astype(np.float32)
    charges = arrays.charges[..., 0].astype(np.float32)
    systems = []
    for s in range(arrays.n_trajectories):  # one record per trajectory (a container, not math)
        index = int(indices[s])
        systems.append(
            Trajectory(
                name=f"{names_prefix}{index:0{width}d}",
                positions=positions[s],
                species=np.zeros(N_PARTICLES, dtype=np.int32),
                time=time.copy(),
                step=step.copy(),
                length_unit="1",
                time_unit="1",
                velocities=velocities[s],
                charges=charges[s],
                parameters={
                    "generator": "charged N-body (EGNN), dynforecast.data.nbody",
                    # train picks this window protocol when none is configured.
                    RECOMMENDED_PROTOCOL_KEY: "nbody-multiframe",
                    "mode": arrays.mode,
                    "seed": np.array(arrays.seed, dtype=np.int64),
                    "stream_index": np.array(index, dtype=np.int64),
                },
                source=f"dynforecast generate nbody --seed {arrays.seed}",
            )
        )
    return systems


# EGNN .npy files (nbody.md section 4.2) ---------------------------------------------------------

EGNN_ARRAYS = ("loc", "vel", "edges", "charges")
EGNN_SPLITS = ("train", "valid", "test")


def egnn_file_name(array: str, split: str, suffix: str = "") -> str:
    """EGNN's name, e.g. ``loc_train_charged5_initvel1small.npy`` (suffix "small") or no suffix."""
    return f"{array}_{split}_charged{N_PARTICLES}_initvel1{suffix}.npy"


def save_egnn_npy(directory: Path, split: str, arrays: NBodyArrays, suffix: str = "") -> list[Path]:
    """Write the four EGNN arrays of one split (float64) into ``directory``; returns the paths."""
    directory = Path(directory)
    create_directory(directory)
    paths = []
    for name in EGNN_ARRAYS:
        path = directory / egnn_file_name(name, split, suffix)
        np.save(path, getattr(arrays, name))
        paths.append(path)
    return paths


def load_egnn_npy(directory: Path, split: str, suffix: str = "") -> NBodyArrays:
    """Read one split written by EGNN's generator (or `save_egnn_npy`); InputError if malformed."""
    loaded = {}
    for name in EGNN_ARRAYS:
        path = Path(directory) / egnn_file_name(name, split, suffix)
        if not path.is_file():
            raise InputError(f"{describe_path(path)}: no such file")
        loaded[name] = np.load(path, allow_pickle=False).astype(np.float64)
    count = loaded["loc"].shape[0]
    expected = {
        "loc": (count, N_FRAMES, DIMENSIONS, N_PARTICLES),
        "vel": (count, N_FRAMES, DIMENSIONS, N_PARTICLES),
        "edges": (count, N_PARTICLES, N_PARTICLES),
        "charges": (count, N_PARTICLES, 1),
    }
    for name, shape in expected.items():
        if loaded[name].shape != shape:
            path = Path(directory) / egnn_file_name(name, split, suffix)
            raise InputError(
                f"{describe_path(path)}: expected shape {shape} (got {loaded[name].shape})"
            )
    return NBodyArrays(**loaded, seed=-1, first_index=0, mode="file")
