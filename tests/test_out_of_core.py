"""Frames read from the H5MD file on demand give the same windows as frames held in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynforecast.data.frame_store import CachedFileFrames, MemoryFrames
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.loading import load_systems
from dynforecast.data.splits import split_windows
from dynforecast.data.windows import WindowDataset, WindowSpec
from dynforecast.io import h5md
from dynforecast.io.h5md import write_h5md
from dynforecast.io.h5md_frames import FileFrames
from dynforecast.io.trajectory import Trajectory
from dynforecast.train.distributed import DistContext, shard

SIZES = ((7, 23), (3, 40), (11, 17), (7, 31))  # (particles, frames): mixed sizes and lengths


def system(name: str, particles: int, frames: int, seed: int) -> Trajectory:
    rng = np.random.default_rng(seed)
    return Trajectory(
        name=name,
        positions=rng.normal(size=(frames, particles, 3)).astype(np.float32),
        velocities=rng.normal(size=(frames, particles, 3)).astype(np.float32),
        species=rng.integers(1, 9, size=particles).astype(np.int32),
        charges=rng.normal(size=particles).astype(np.float32),
        time=np.arange(frames) * 0.5,
        step=np.arange(frames, dtype=np.int64),
        length_unit="nm",
        time_unit="ps",
    )


@pytest.fixture
def data_file(tmp_path, monkeypatch):
    """Systems written in chunks of a few frames, so that windows cross chunk boundaries."""
    monkeypatch.setattr(h5md, "_CHUNK_BYTES", 12 * 7 * 4)  # 4 frames of 7 particles per chunk
    path = tmp_path / "data.h5"
    write_h5md(path, [system(f"s{i}", n, f, i) for i, (n, f) in enumerate(SIZES)])
    return path


def assert_batches_equal(a, b) -> None:
    for field in ("positions", "velocities", "target", "species", "node_attrs", "edge_src",
                  "edge_dst", "node_graph"):  # fmt: skip
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        assert torch.equal(x, y), field  # bit for bit
    assert (a.past_dt, a.target_dt, a.num_graphs) == (b.past_dt, b.target_dt, b.num_graphs)


SPECS = (
    WindowSpec(past_frames=4, spacing=1),
    WindowSpec(past_frames=3, spacing=3, horizon=2),
    WindowSpec(past_frames=1, spacing=5, horizon=5, anchor_frame=9),
    WindowSpec(past_frames=2, spacing=7),
)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("graph", [GraphSpec("all_pairs"), GraphSpec("radius", cutoff=1.5)])
def test_file_windows_equal_memory_windows_bit_for_bit(data_file, spec, graph):
    memory = WindowDataset(load_systems(data_file, lazy=False), spec, graph)
    on_file = WindowDataset(load_systems(data_file, lazy=True), spec, graph)
    assert isinstance(memory._positions, MemoryFrames)
    assert isinstance(on_file._positions, CachedFileFrames)
    assert np.array_equal(memory.windows.array, on_file.windows.array)
    rng = np.random.default_rng(0)
    ids = rng.permutation(len(memory))
    for chunk in np.array_split(ids, 3):
        assert_batches_equal(memory.batch(chunk), on_file.batch(chunk))


@pytest.mark.parametrize("mode", ["chronological", "random", "systems"])
@pytest.mark.parametrize("cache", [0, 12 * 7 * 4 * 3, None])  # none, a few blocks, default
def test_splits_and_ddp_shards_are_equal_and_read_only_their_blocks(data_file, mode, cache):
    spec = WindowSpec(past_frames=3, spacing=2)
    graph = GraphSpec("all_pairs")
    memory = WindowDataset(load_systems(data_file, lazy=False), spec, graph)
    on_file = WindowDataset(load_systems(data_file, lazy=True), spec, graph)
    on_file._positions = CachedFileFrames([s.positions for s in on_file.systems], cache_limit=cache)
    splits = split_windows(memory.windows, mode, (0.5, 0.25, 0.25), seed=3, spec=spec)
    for rank in range(2):
        context = DistContext(rank=rank, world_size=2, launched=True)
        mine = shard(splits["train"], context)
        for start in range(0, len(mine), 5):
            assert_batches_equal(memory.batch(mine[start : start + 5]), on_file.batch(mine[start : start + 5]))  # fmt: skip
    if mode == "systems":  # whole systems held out: their frames were never read
        train_systems = set(np.unique(memory.windows.system[splits["train"]]).tolist())
        assert on_file._positions.systems_read == train_systems
        assert len(train_systems) < len(SIZES)


def test_cache_stays_within_its_bound_and_rereads_nothing_it_holds(data_file):
    sources = load_systems(data_file, lazy=True)
    block_bytes = 4 * 7 * 3 * 4
    store = CachedFileFrames([s.positions for s in sources], cache_limit=5 * block_bytes)
    frames = np.arange(8)[None, :].repeat(7, axis=0)  # system 0, frames 0..7: 2 blocks
    node = np.arange(7)
    system0 = np.zeros(7, dtype=np.int64)
    first = store.gather(system0, frames, node)
    assert store.reads == 2
    np.testing.assert_array_equal(store.gather(system0, frames, node), first)
    assert store.reads == 2  # both blocks cached
    for s in range(len(SIZES)):
        n = SIZES[s][0]
        store.gather(np.full(n, s), np.arange(SIZES[s][1])[None].repeat(n, 0), np.arange(n))
    assert store._cached_bytes <= 5 * block_bytes


def test_file_frames_index_like_the_array(data_file):
    lazy = load_systems(data_file, lazy=True)[1]
    eager = load_systems(data_file, lazy=False)[1]
    assert isinstance(lazy.positions, FileFrames)
    assert lazy.positions.shape == eager.positions.shape and lazy.n_frames == eager.n_frames
    for key in (0, -1, 5, slice(3, 9), slice(None, None, 4), np.array([[7, 2], [2, 30]])):
        np.testing.assert_array_equal(lazy.positions[key], eager.positions[key])
    np.testing.assert_array_equal(np.asarray(lazy.velocities), eager.velocities)
    with pytest.raises(IndexError):
        lazy.positions[40]


def test_size_decides_unless_the_environment_says(data_file, monkeypatch):
    monkeypatch.setenv("DYNFORECAST_FRAMES", "file")
    assert isinstance(load_systems(data_file)[0].positions, FileFrames)
    monkeypatch.setenv("DYNFORECAST_FRAMES", "memory")
    assert isinstance(load_systems(data_file)[0].positions, np.ndarray)
    monkeypatch.setenv("DYNFORECAST_FRAMES", "auto")
    assert isinstance(load_systems(data_file)[0].positions, np.ndarray)  # a few KB: in memory
    monkeypatch.setattr("dynforecast.data.frame_store.available_memory", lambda: 1000)
    assert isinstance(load_systems(data_file)[0].positions, FileFrames)
