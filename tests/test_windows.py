"""Windows: index arithmetic, gathered values, mixed-size systems, velocities, time steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datafactory import chain_bonds, make_system

from dynforecast.data.graphs import GraphSpec
from dynforecast.data.loading import load_systems
from dynforecast.data.windows import PROTOCOLS, WindowDataset, WindowIndex, WindowSpec
from dynforecast.errors import InputError, UsageError


def brute_force_windows(frame_counts, spec):
    """Reference enumeration with plain loops (test only)."""
    rows = []
    for system, count in enumerate(frame_counts):
        for start in range(count):
            frames = [start + j * spec.spacing for j in range(spec.past_frames)]
            target = frames[-1] + spec.target_offset
            if target >= count:
                continue
            if spec.anchor_frame is not None and frames[-1] != spec.anchor_frame:
                continue
            rows.append((system, start))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


@pytest.mark.parametrize(
    "spec",
    [
        WindowSpec(past_frames=3, spacing=4),
        WindowSpec(past_frames=1, spacing=1, horizon=7),
        WindowSpec(past_frames=10, spacing=1, horizon=10),
        WindowSpec(past_frames=1, spacing=10, horizon=10, anchor_frame=30),
        WindowSpec(past_frames=3, spacing=2, horizon=5, anchor_frame=12),
    ],
)
def test_window_index_matches_brute_force(spec):
    counts = [49, 5, 0, 22, 41, 13, 35]
    index = WindowIndex(counts, spec)
    np.testing.assert_array_equal(index.array, brute_force_windows(counts, spec))
    assert index.array.dtype == np.int64


def test_window_frames_follow_estag_protocol():
    spec = PROTOCOLS["md17"]  # T=10, D=10: inputs s + 10j, target s + 100
    index = WindowIndex([250], spec)
    assert len(index) == 250 - 100
    np.testing.assert_array_equal(index.frames(np.array([7]))[0], np.arange(7, 108, 10))
    nbody = WindowIndex([49, 49], PROTOCOLS["nbody-standard"])
    np.testing.assert_array_equal(nbody.frames(), [[30, 40], [30, 40]])


def test_batch_gathers_the_right_frames_for_mixed_sizes():
    systems = [
        make_system("a", 20, 3, seed=1, velocities=True, charges=True),
        make_system("b", 16, 5, seed=2, velocities=True, charges=True),
    ]
    spec = WindowSpec(past_frames=3, spacing=2, horizon=3)
    data = WindowDataset(systems, spec, GraphSpec(kind="all_pairs"))
    assert len(data) == (20 - 8 + 1) + (16 - 8 + 1)
    ids = np.array([len(data) - 1, 0, 13, 5])  # system b, a, b, a
    batch = data.batch(ids)

    sizes = [5, 3, 5, 3]
    assert batch.num_graphs == 4 and batch.num_nodes == sum(sizes)
    np.testing.assert_array_equal(batch.node_graph.numpy(), np.repeat(np.arange(4), sizes))
    node = 0
    for window, size in zip(ids, sizes, strict=True):
        system, start = data.windows.array[window]
        past = start + np.array([0, 2, 4])
        block = slice(node, node + size)
        expected = np.stack(
            np.broadcast_arrays(
                past[None, :], np.arange(size)[:, None], np.full((1, 1), system + 1)
            ),
            axis=-1,
        )
        np.testing.assert_array_equal(batch.positions[block].numpy(), expected)
        np.testing.assert_array_equal(batch.velocities[block].numpy(), -expected)
        np.testing.assert_array_equal(batch.target[block, 0].numpy(), past[-1] + 3)
        np.testing.assert_array_equal(batch.species[block].numpy(), np.arange(1, size + 1))
        np.testing.assert_array_equal(
            batch.node_attrs[block, 0].numpy(), np.arange(size) % 2 * 2 - 1
        )
        node += size
    assert batch.past_dt == pytest.approx(1.0) and batch.target_dt == pytest.approx(1.5)
    assert batch.positions.dtype == torch.float32 and batch.species.dtype == torch.int64


def test_batch_without_velocities_or_charges():
    systems = [
        make_system("a", 12, 4, bonds=chain_bonds(4), velocities=True),
        make_system("b", 12, 4, bonds=chain_bonds(4)),
    ]
    data = WindowDataset(systems, WindowSpec(past_frames=2, spacing=1), dtype=torch.float64)
    batch = data.batch(np.arange(len(data)))
    assert batch.velocities is None and not data.has_velocities
    assert batch.node_attrs.shape == (batch.num_nodes, 0)
    assert batch.positions.dtype == torch.float64


def test_different_time_steps_are_refused():
    systems = [make_system("a", 12, 2, time_step=0.5), make_system("b", 12, 2, time_step=1.0)]
    with pytest.raises(InputError) as error:
        WindowDataset(systems, WindowSpec(past_frames=2, spacing=1), GraphSpec(kind="all_pairs"))
    assert str(error.value) == (
        "systems 'a' and 'b' have different time steps (0.5 and 1); "
        "windows of one data set need one time step"
    )


def test_non_uniform_time_is_refused():
    system = make_system("gappy", 12, 2)
    system.time[6:] += 10.0
    with pytest.raises(InputError) as error:
        WindowDataset([system], WindowSpec(past_frames=2, spacing=1), GraphSpec(kind="all_pairs"))
    assert str(error.value) == (
        "system 'gappy': time between frames must be positive and uniform (got 0.5..10.5 fs)"
    )


def test_bad_window_spec_and_ids():
    with pytest.raises(UsageError, match=r"^expected past_frames >= 1 \(got 0\)$"):
        WindowSpec(past_frames=0, spacing=1)
    data = WindowDataset(
        [make_system("a", 6, 2)], WindowSpec(past_frames=1, spacing=1), GraphSpec("all_pairs")
    )
    with pytest.raises(ValueError, match=r"^expected window ids in \[0, 5\) \(got 0\.\.5\)$"):
        data.batch(np.array([0, 5]))


def test_load_systems_errors(tmp_path):
    with pytest.raises(InputError) as error:
        load_systems(tmp_path / "missing.h5")
    assert str(error.value) == f"{tmp_path / 'missing.h5'}: no such file"
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError) as error:
        load_systems(text)
    assert str(error.value) == f"{text}: not an HDF5 file"
