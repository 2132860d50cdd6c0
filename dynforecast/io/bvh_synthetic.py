"""Random BVH skeletons and motions, for tests and benchmarks that must not ship data files.

The skeletons exercise what real files contain: mixed channel orders, 6-channel joints below the
root, branching joints and end sites.
"""

from __future__ import annotations

import numpy as np

from dynforecast.io.bvh_kinematics import POSITION_CHANNELS, ROTATION_CHANNELS, BvhSkeleton


def random_skeleton(
    rng: np.random.Generator, n_joints: int, *, six_channel_fraction: float = 0.1
) -> BvhSkeleton:
    """A random tree of ``n_joints`` joints plus an End Site under every leaf.

    Each joint gets a random rotation order; the root and about ``six_channel_fraction`` of the
    other joints also carry position channels. Offsets are 1-10 units long.
    """
    if n_joints < 1:
        raise ValueError(f"expected n_joints >= 1 (got {n_joints})")
    tree_parents = [-1] + [int(rng.integers(0, j)) for j in range(1, n_joints)]
    names, parents, channels, end_site = [], [], [], []
    new_index: dict[int, int] = {}

    def visit(joint: int) -> None:  # depth-first so that the order is a valid file order
        new_index[joint] = len(names)
        names.append(f"j{joint}")
        parents.append(new_index[tree_parents[joint]] if joint else -1)
        rotations = [ROTATION_CHANNELS[a] for a in rng.permutation(3)]
        moves = joint == 0 or rng.random() < six_channel_fraction
        channels.append(tuple(POSITION_CHANNELS) * moves + tuple(rotations))
        end_site.append(False)
        children = [c for c in range(1, n_joints) if tree_parents[c] == joint]
        for child in children:
            visit(child)
        if not children:
            names.append(f"j{joint}_end")
            parents.append(new_index[joint])
            channels.append(())
            end_site.append(True)

    visit(0)
    count = len(names)
    directions = rng.normal(size=(count, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    offsets = directions * rng.uniform(1.0, 10.0, size=(count, 1))
    offsets[0] = rng.normal(size=3)
    return BvhSkeleton(
        names=tuple(names),
        parents=np.array(parents, dtype=np.int64),
        offsets=offsets,
        channels=tuple(channels),
        end_site=np.array(end_site, dtype=bool),
    )


def random_motion(rng: np.random.Generator, skeleton: BvhSkeleton, n_frames: int) -> np.ndarray:
    """Motion channels float64 [F, C]: angles uniform in (-180, 180) degrees, positions in
    (-50, 50) for the root and (-2, 2) for other joints' position channels."""
    motion = rng.uniform(-180.0, 180.0, size=(n_frames, skeleton.n_channels))
    root_columns = skeleton.position_columns[0]
    other = skeleton.position_columns[1:]
    motion[:, other[other >= 0]] = rng.uniform(-2.0, 2.0, size=(n_frames, int((other >= 0).sum())))
    motion[:, root_columns[root_columns >= 0]] = rng.uniform(-50.0, 50.0, size=(n_frames, 3))
    return motion
