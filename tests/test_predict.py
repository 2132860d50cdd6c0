"""Rollout: frame bookkeeping, finite-difference velocities, batches equal to training batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynforecast.data.graphs import GraphSpec
from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel, create_model
from dynforecast.predict import SingleSystemBatcher, rollout

DT = 0.25


def linear_system(n_frames: int = 30, n_particles: int = 4, seed: int = 0) -> Trajectory:
    """Particles in uniform straight-line motion (velocities exact), time step DT, step 10."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(n_particles, 3))
    velocity = rng.normal(size=(n_particles, 3))
    time = DT * np.arange(n_frames)
    positions = start[None] + velocity[None] * time[:, None, None]
    return Trajectory(
        name="line",
        positions=positions.astype(np.float32),
        species=np.full(n_particles, 6, np.int32),
        time=time,
        step=10 * np.arange(n_frames, dtype=np.int64) + 100,
        length_unit="nm",
        time_unit="ps",
        velocities=np.broadcast_to(velocity, positions.shape).astype(np.float32).copy(),
        charges=np.ones(n_particles, np.float32),
    )


def _truth(system: Trajectory, frames: np.ndarray) -> np.ndarray:
    """Exact positions at (possibly future) frame numbers."""
    start, velocity = system.positions[0], system.velocities[0]  # type: ignore[index]
    return start[None] + velocity[None] * (DT * frames)[:, None, None]


@pytest.mark.parametrize(
    ("spec", "velocities", "grid", "given"),
    [
        (WindowSpec(past_frames=2, spacing=2), False, 2, 2),  # ESTAG-like: H = D
        (WindowSpec(1, 1, horizon=3), True, 3, 1),  # N-body standard-like: T = 1
        (WindowSpec(3, 1, horizon=4), False, 1, 6),  # "nbody-multiframe"-like: 4 per step
        (WindowSpec(3, 2, horizon=3), False, 1, 7),  # gcd grid: D = 2, H = 3
    ],
)
def test_constant_velocity_rollout_continues_straight_lines(spec, velocities, grid, given):
    """Each window's linear extrapolation is exact for straight lines, so the rollout must follow
    them: this pins the frame arithmetic of every rollout plan; with T = 1 the later steps use
    the finite-difference velocity, which must equal the true one."""
    system = linear_system()
    steps = 6
    result = rollout(
        create_model("constant_velocity"),
        system,
        spec,
        GraphSpec("all_pairs"),
        start=14,
        steps=steps,
        use_velocities=velocities,
    )
    frames = 14 + grid * np.arange(1 - given, steps + 1)
    out = result.trajectory
    assert result.predicted == steps and result.divergence is None
    assert result.is_forecast.tolist() == [0] * given + [1] * steps
    np.testing.assert_allclose(out.positions, _truth(system, frames), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out.time, DT * frames)
    np.testing.assert_array_equal(out.step, 100 + 10 * frames)
    np.testing.assert_allclose(out.velocities, system.velocities[: len(frames)], atol=1e-4)  # type: ignore[index]
    assert out.names == system.names and out.length_unit == "nm" and out.box is None


def test_rollout_batches_equal_training_batches():
    """A rollout step sees exactly the batch the data set builds for the same window."""
    system = linear_system()
    spec = WindowSpec(past_frames=3, spacing=2)
    for graph in (GraphSpec("all_pairs"), GraphSpec("radius", cutoff=1.5)):
        reference = WindowDataset([system], spec, graph).batch(np.array([5]))
        batcher = SingleSystemBatcher(
            system,
            graph,
            node_attr_width=1,
            past_dt=reference.past_dt,
            target_dt=reference.target_dt,
            device=torch.device("cpu"),
            dtype=torch.float32,
        )
        frames = np.array([[5, 7, 9], [6, 8, 10]])
        expected = WindowDataset([system], spec, graph).batch(np.array([5, 6]))
        positions = torch.from_numpy(system.positions[frames]).transpose(1, 2)
        velocities = torch.from_numpy(system.velocities[frames]).transpose(1, 2)  # type: ignore[index]
        batch = batcher(positions, velocities)
        for field in ("positions", "velocities", "species", "node_attrs", "node_graph"):
            assert torch.equal(getattr(batch, field), getattr(expected, field)), field
        pairs = lambda b: sorted(zip(b.edge_src.tolist(), b.edge_dst.tolist(), strict=True))  # noqa: E731
        assert pairs(batch) == pairs(expected)
        assert (batch.past_dt, batch.target_dt) == (expected.past_dt, expected.target_dt)


class _NaNAfter(ForecastModel):
    """Moves particles by +1 in x, then returns NaN from the given call on."""

    def __init__(self, good_steps: int) -> None:
        super().__init__()
        self.calls, self.good_steps = 0, good_steps

    def forward(self, batch):
        self.calls += 1
        out = batch.positions[:, -1] + torch.tensor([1.0, 0.0, 0.0])
        return out if self.calls <= self.good_steps else out * float("nan")


def test_rollout_stops_at_nan_and_keeps_earlier_frames():
    result = rollout(
        _NaNAfter(3), linear_system(), WindowSpec(2, 1), GraphSpec("all_pairs"), start=5, steps=9
    )
    assert result.predicted == 3
    assert result.divergence == "step 4 of 9 gave non-finite coordinates"
    assert result.trajectory.n_frames == 5 and np.isfinite(result.trajectory.positions).all()


def test_rollout_stops_at_runaway_coordinates():
    system = linear_system()
    result = rollout(
        _NaNAfter(10**6), system, WindowSpec(2, 1), GraphSpec("all_pairs"), start=5, steps=500,
        divergence_factor=3.0,
    )  # fmt: skip
    assert 0 < result.predicted < 500
    assert result.divergence.startswith(f"step {result.predicted + 1} of 500 gave a particle ")
    assert "beyond 3 x the initial extent" in result.divergence
