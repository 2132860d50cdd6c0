"""The charged N-body generator (nbody.md section 8) and the data path it feeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynforecast.data import nbody
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.nbody import (
    coulomb_forces,
    draw_initial_states,
    integrate,
    load_egnn_npy,
    nbody_energy,
    nbody_trajectories,
    save_egnn_npy,
    simulate_nbody,
)
from dynforecast.data.windows import PROTOCOLS, WindowDataset
from dynforecast.errors import InputError, UsageError
from dynforecast.models.base import create_model


@pytest.fixture(scope="module")
def exact3():
    return simulate_nbody(3, seed=43, mode="exact")


def test_shapes_and_values(exact3):
    assert exact3.loc.shape == exact3.vel.shape == (3, 49, 3, 5)
    assert exact3.edges.shape == (3, 5, 5) and exact3.charges.shape == (3, 5, 1)
    assert set(np.unique(exact3.charges).tolist()) <= {-1.0, 1.0}
    np.testing.assert_array_equal(exact3.edges, exact3.charges @ exact3.charges.swapaxes(1, 2))
    assert exact3.loc.dtype == np.float64


def test_frame_k_is_the_state_after_step_100_k_plus_1():
    initial = draw_initial_states(np.random.RandomState(5), 1)
    x0, v0, q = initial.loc[0], initial.vel[0], initial.charges[0]
    edges = q @ q.T
    # Reference: a plain kick-drift loop that keeps the state after EVERY step (the debug hook).
    x, v = x0.copy(), v0.copy()
    v += nbody.TIME_STEP * coulomb_forces(x, edges)
    after_step = {}
    for step in range(1, nbody.N_STEPS):
        x += nbody.TIME_STEP * v
        after_step[step] = (x.copy(), v.copy())
        v += nbody.TIME_STEP * coulomb_forces(x, edges)
    loc, vel = integrate(x0, v0, edges)
    assert loc.shape == (49, 3, 5)
    for k in range(49):
        np.testing.assert_array_equal(loc[k], after_step[100 * (k + 1)][0])
        np.testing.assert_array_equal(vel[k], after_step[100 * (k + 1)][1])
    assert not np.any(np.all(loc == x0, axis=(1, 2)))  # the initial state never appears
    every, _ = integrate(x0, v0, edges, n_steps=301, record_every=1)
    np.testing.assert_array_equal(every[99], loc[0])


def test_initial_speeds_are_one_half():
    initial = draw_initial_states(np.random.RandomState(43), 50)
    speeds = np.linalg.norm(initial.vel, axis=1)
    np.testing.assert_allclose(speeds, 0.5, rtol=0, atol=1e-12)


def test_seed_reproducibility():
    first = simulate_nbody(2, seed=43, mode="fast")
    again = simulate_nbody(2, seed=43, mode="fast")
    other = simulate_nbody(2, seed=44, mode="fast")
    for name in ("loc", "vel", "edges", "charges"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.loc, other.loc)


def test_stream_property_and_skip_ahead():
    whole = simulate_nbody(8, seed=43, mode="fast")
    train = simulate_nbody(5, seed=43, mode="fast")
    valid = simulate_nbody(3, seed=43, mode="fast", first_index=5)
    for name in ("loc", "vel", "edges", "charges"):
        joined = np.concatenate([getattr(train, name), getattr(valid, name)])
        np.testing.assert_array_equal(joined, getattr(whole, name))
    assert valid.first_index == 5


def test_force_directions_momentum_and_clipping():
    pair = np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])  # particles at x=0 and x=1
    like = coulomb_forces(pair, np.array([[1.0, 1.0], [1.0, 1.0]]))
    unlike = coulomb_forces(pair, np.array([[1.0, -1.0], [-1.0, 1.0]]))
    np.testing.assert_allclose(like[:, 0], [-1.0, 0, 0])  # pushed away from x=1
    np.testing.assert_allclose(unlike[:, 0], [1.0, 0, 0])  # pulled towards it
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(3, 5)) * 2
    q = rng.choice([-1.0, 1.0], size=(5, 1))
    free = coulomb_forces(loc, q @ q.T, clip=False)
    assert np.abs(free.sum(axis=1)).max() <= 1e-12 * np.abs(free).max()
    close = np.array([[0.0, 0.005], [0.0, 0.05], [0.0, 0.0]])  # |dx| small, |dy| larger
    unclipped = coulomb_forces(close, np.ones((2, 2)), clip=False)
    clipped = coulomb_forces(close, np.ones((2, 2)))
    assert abs(unclipped[1, 0]) > 100 and abs(unclipped[0, 0]) < 100  # y huge, x not
    np.testing.assert_array_equal(clipped[1], np.clip(unclipped[1], -100, 100))
    np.testing.assert_array_equal(clipped[0], unclipped[0])  # the clip is per component


def test_fast_mode_agrees_with_exact_mode(exact3):
    fast = simulate_nbody(3, seed=43, mode="fast")
    # Stated tolerance 1e-9; on this machine the two are bit-identical.
    np.testing.assert_allclose(fast.loc, exact3.loc, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.vel, exact3.vel, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(fast.charges, exact3.charges)


def test_energy_of_trajectory_0(exact3):
    energy = nbody_energy(exact3.loc[0], exact3.vel[0], exact3.charges[0])
    assert energy.shape == (49,)
    assert energy.min() == pytest.approx(1.5973, abs=1e-4)
    assert energy.max() == pytest.approx(1.8612, abs=1e-4)
    assert energy.std() == pytest.approx(0.097, abs=1e-3)


def test_trajectories_layout(exact3):
    systems = nbody_trajectories(exact3)
    assert [s.name for s in systems] == ["traj00000", "traj00001", "traj00002"]
    first = systems[0]
    first.validate()
    assert first.positions.shape == (49, 5, 3) and first.positions.dtype == np.float32
    np.testing.assert_allclose(first.positions, exact3.loc[0].swapaxes(1, 2), rtol=1e-6)
    np.testing.assert_allclose(first.velocities, exact3.vel[0].swapaxes(1, 2), rtol=1e-6)
    np.testing.assert_allclose(first.time, 0.1 * np.arange(1, 50))
    np.testing.assert_array_equal(first.step, 100 * np.arange(1, 50))
    np.testing.assert_array_equal(first.charges, exact3.charges[0, :, 0])
    assert (first.length_unit, first.time_unit) == ("1", "1")
    assert not first.species.any()


def test_egnn_npy_round_trip(tmp_path, exact3):
    paths = save_egnn_npy(tmp_path, "train", exact3, suffix="small")
    assert paths[0].name == "loc_train_charged5_initvel1small.npy"
    loaded = load_egnn_npy(tmp_path, "train", suffix="small")
    np.testing.assert_array_equal(loaded.loc, exact3.loc)
    np.testing.assert_array_equal(loaded.charges, exact3.charges)
    with pytest.raises(InputError) as error:
        load_egnn_npy(tmp_path, "test")
    assert str(error.value) == f"{tmp_path}/loc_test_charged5_initvel1.npy: no such file"
    np.save(tmp_path / "vel_train_charged5_initvel1small.npy", exact3.vel[:, :10])
    with pytest.raises(InputError, match=r"vel_train_charged5_initvel1small.npy: expected shape"):
        load_egnn_npy(tmp_path, "train", suffix="small")


def test_bad_mode_is_a_usage_error():
    with pytest.raises(UsageError) as error:
        simulate_nbody(1, mode="turbo")
    assert str(error.value) == "--mode must be one of exact, fast (got 'turbo')"


def baseline_mses(arrays):
    """Stay-still and constant-velocity MSE of frames 30 -> 40 through the whole data path."""
    data = WindowDataset(
        nbody_trajectories(arrays), PROTOCOLS["nbody-standard"], GraphSpec("all_pairs")
    )
    batch = data.batch(np.arange(len(data)))
    assert batch.num_graphs == arrays.n_trajectories and batch.num_edges == 20 * len(data)
    assert batch.target_dt == pytest.approx(1.0) and batch.node_attrs.shape[1] == 1
    with torch.no_grad():
        return [
            float(((create_model(name)(batch) - batch.target) ** 2).mean())
            for name in ("stay", "constant_velocity")
        ]


def test_baselines_through_the_data_path_200_trajectories():
    stay, constant_velocity = baseline_mses(simulate_nbody(200, seed=43, mode="fast"))
    assert stay == pytest.approx(0.2675, abs=0.03)
    assert constant_velocity == pytest.approx(0.1122, abs=0.025)
    assert constant_velocity < 0.5 * stay


@pytest.mark.slow
def test_regression_1000_exact_trajectories():
    arrays = simulate_nbody(1000, seed=43, mode="exact")
    x30, x40, v30 = arrays.loc[:, 30], arrays.loc[:, 40], arrays.vel[:, 30]
    step = x40 - x30
    scale = (step * v30).sum() / (v30**2).sum()
    assert round(float((step**2).mean()), 4) == 0.2675
    assert round(float(((step - v30) ** 2).mean()), 4) == 0.1122
    assert round(float(scale), 3) == 0.724
    assert round(float(((step - scale * v30) ** 2).mean()), 4) == 0.0856
    assert round(float(np.sqrt((x30**2).sum(axis=1).mean())), 3) == 2.891
    assert round(float(np.linalg.norm(v30, axis=1).mean()), 3) == 0.911
    assert round(float((arrays.charges > 0).mean()), 3) == 0.506
    stay, constant_velocity = baseline_mses(arrays)  # float32 data path: 4 decimals still hold
    assert round(stay, 4) == 0.2675 and round(constant_velocity, 4) == 0.1122


def test_recipes_concatenate_skipped_stream_ranges(monkeypatch):
    assert nbody.EGNN_RECIPES["nbody_small"] == ((0, 3000), (10_000, 2000), (12_000, 2000))
    monkeypatch.setitem(nbody.EGNN_RECIPES, "tiny", ((0, 2), (10, 1), (12, 1)))
    arrays = nbody.simulate_recipe("tiny", mode="fast")
    np.testing.assert_array_equal(arrays.stream_indices, [0, 1, 10, 12])
    calls = []
    nbody.simulate_recipe("tiny", mode="exact", progress=calls.append)
    assert calls == [1, 2, 3, 4]
    np.testing.assert_array_equal(arrays.loc[2], simulate_nbody(1, first_index=10).loc[0])
    names = [s.name for s in nbody_trajectories(arrays)]
    assert names == ["traj00000", "traj00001", "traj00010", "traj00012"]
    with pytest.raises(UsageError, match=r"^--recipe must be one of nbody_small, shortcut"):
        nbody.simulate_recipe("big")
