"""Splits: no shared frames (chronological), disjoint, deterministic, whole systems."""

from __future__ import annotations

import numpy as np
import pytest

from dynforecast.data.splits import md17_reference_starts, split_windows
from dynforecast.data.windows import WindowIndex, WindowSpec
from dynforecast.errors import UsageError

SPEC = WindowSpec(past_frames=4, spacing=3, horizon=5)  # span 15 frames
COUNTS = [400, 150, 10, 260]


def used_frames(index, ids):
    """Set of (system, frame) pairs touched by the windows ``ids`` (past frames and target)."""
    frames = index.frames(ids)
    systems = np.broadcast_to(index.system[ids][:, None], frames.shape)
    return set(zip(systems.ravel().tolist(), frames.ravel().tolist(), strict=True))


def test_chronological_splits_share_no_frame():
    index = WindowIndex(COUNTS, SPEC)
    splits = split_windows(index)
    parts = [splits[name] for name in ("train", "val", "test")]
    for first in range(3):
        for second in range(first + 1, 3):
            assert not set(parts[first]) & set(parts[second])
            assert not used_frames(index, parts[first]) & used_frames(index, parts[second])
    # Blocks are contiguous in time: per system train < val < test, and only the gaps are lost.
    for system in np.unique(index.system):
        starts = [index.start[p[index.system[p] == system]] for p in parts]
        assert starts[0].max() < starts[1].min() and starts[1].max() < starts[2].min()
    lost = len(index) - sum(len(p) for p in parts)
    assert lost == 3 * 2 * (SPEC.span - 1)  # three systems with windows, two cuts each
    train_frames = used_frames(index, splits["train"])
    assert (0, 319) in train_frames and (0, 320) not in train_frames  # 0.8 * 400 = 320


def test_random_split_is_disjoint_complete_and_seeded():
    index = WindowIndex(COUNTS, SPEC)
    first = split_windows(index, "random", seed=7)
    again = split_windows(index, "random", seed=7)
    other = split_windows(index, "random", seed=8)
    everything = np.concatenate([first["train"], first["val"], first["test"]])
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(index)))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["test"], other["test"])
    assert len(first["train"]) == round(0.8 * len(index))
    # The documented leak: random test windows share frames with training windows.
    assert used_frames(index, first["test"]) & used_frames(index, first["train"])


def test_system_splits_keep_systems_whole():
    index = WindowIndex([30] * 10, WindowSpec(past_frames=2, spacing=1))
    splits = split_windows(index, "systems", fractions=(0.6, 0.2, 0.2))
    systems = {name: set(index.system[ids].tolist()) for name, ids in splits.items()}
    assert systems == {"train": {0, 1, 2, 3, 4, 5}, "val": {6, 7}, "test": {8, 9}}
    shuffled = split_windows(index, "random_systems", fractions=(0.6, 0.2, 0.2), seed=3)
    again = split_windows(index, "random_systems", fractions=(0.6, 0.2, 0.2), seed=3)
    for name in shuffled:
        np.testing.assert_array_equal(shuffled[name], again[name])
    groups = [set(index.system[ids].tolist()) for ids in shuffled.values()]
    assert sorted(len(g) for g in groups) == [2, 2, 6] and not groups[0] & groups[1]


def test_bad_fractions_and_empty_splits_are_usage_errors():
    index = WindowIndex([100], SPEC)
    with pytest.raises(UsageError) as error:
        split_windows(index, fractions=(0.5, 0.5, 0.5))
    assert str(error.value) == (
        "split fractions must be three non-negative numbers (train, val, test) summing to 1 "
        "(got [0.5, 0.5, 0.5])"
    )
    with pytest.raises(UsageError) as error:
        split_windows(index)  # 10-frame val and test blocks cannot hold a 15-frame window
    assert str(error.value) == (
        "split 'chronological' with fractions [0.8, 0.1, 0.1] leaves no val windows "
        "(86 windows of span 15 frames in 1 system); use longer data, other fractions "
        "or another split mode"
    )
    with pytest.raises(UsageError, match=r"^split mode must be one of chronological, random"):
        split_windows(index, "shuffled")


def test_md17_reference_split_reproduces_estag_starts():
    train, val, test = md17_reference_starts(211_762)  # aspirin's frame count
    np.testing.assert_array_equal(train[:5], [78845, 12943, 13421, 97777, 31657])
    np.testing.assert_array_equal(test[:5], [91374, 75502, 185641, 39544, 191315])
    assert [len(train), len(val), len(test)] == [500, 2000, 2000]
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    index = WindowIndex([211_762], WindowSpec(past_frames=10, spacing=10))
    splits = split_windows(index, "md17_reference")
    np.testing.assert_array_equal(index.start[splits["train"]], np.sort(train))
    np.testing.assert_array_equal(index.start[splits["test"]], np.sort(test))


def test_adk_reference_split_reproduces_estag_boundaries():
    index = WindowIndex([4187], WindowSpec(past_frames=10, spacing=5))
    splits = split_windows(index, "adk_reference")
    ranges = {k: (index.start[v].min(), index.start[v].max(), len(v)) for k, v in splits.items()}
    assert ranges == {
        "train": (0, 2481, 2482),
        "val": (2482, 3308, 827),
        "test": (3309, 4135, 827),
    }
