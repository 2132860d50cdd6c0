"""Write an ASF skeleton's bone-tip positions as a BVH file (the skeleton converted).

BVH joints sit at bone *bases*: the root (with position channels), then one joint per ASF bone
at its parent's tip, whose OFFSET is its parent bone (length x direction); a leaf bone gets an
End Site at its own tip. Bones that share a parent therefore share a position, as in the usual
ASF-to-BVH converters. Rotations come from `io.bvh`'s inverse kinematics, so the written file
reproduces the tips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynforecast.io.amc_write import skeleton_of
from dynforecast.io.asf import AsfSkeleton
from dynforecast.io.atomic import atomic_output, check_output_path
from dynforecast.io.bvh import _frame_time, _writable, encode_motion, format_bvh
from dynforecast.io.bvh_kinematics import BvhSkeleton
from dynforecast.io.trajectory import Trajectory

_ROTATIONS = ("Zrotation", "Yrotation", "Xrotation")


def asf_to_bvh(skeleton: AsfSkeleton) -> tuple[BvhSkeleton, np.ndarray]:
    """The BVH hierarchy of ``skeleton`` and, per BVH joint, the particle it sits at [J]."""
    children = [np.flatnonzero(skeleton.parents == p).tolist() for p in range(skeleton.n_particles)]
    names, parents, offsets, channels, end, source = [], [], [], [], [], []
    bone_vector = skeleton.lengths[:, None] * skeleton.directions

    def add(name, parent, offset, chans, is_end, particle) -> int:
        names.append(name)
        parents.append(parent)
        offsets.append(offset)
        channels.append(chans)
        end.append(is_end)
        source.append(particle)
        return len(names) - 1

    root = add(
        "root", -1, np.zeros(3), ("Xposition", "Yposition", "Zposition", *_ROTATIONS), False, 0
    )
    stack = [(b, root) for b in reversed(children[0])]
    while stack:  # static, once per bone
        bone, parent_joint = stack.pop()
        parent = int(skeleton.parents[bone])
        joint = add(
            skeleton.names[bone], parent_joint, bone_vector[parent], _ROTATIONS, False, parent
        )
        if not children[bone]:
            add(f"{skeleton.names[bone]}_end", joint, bone_vector[bone], (), True, bone)
        stack += [(c, joint) for c in reversed(children[bone])]
    bvh = BvhSkeleton(
        names=tuple(names),
        parents=np.array(parents, dtype=np.int64),
        offsets=np.array(offsets, dtype=np.float64),
        channels=tuple(channels),
        end_site=np.array(end, dtype=bool),
    )
    return bvh, np.array(source, dtype=np.int64)


def write_asf_bvh(traj: Trajectory, path: Path, *, overwrite: bool = False) -> None:
    """Write an ASF/AMC system (or its forecast) as BVH; UsageError without an ASF skeleton."""
    path = Path(path)
    check_output_path(path, overwrite=overwrite)
    bvh, source = asf_to_bvh(skeleton_of(traj, path))
    bvh = _writable(bvh)
    positions = np.asarray(traj.positions, dtype=np.float64)[:, source]
    motion = encode_motion(bvh, positions)
    text = format_bvh(bvh, motion, _frame_time(traj, path))
    with atomic_output(path, overwrite=overwrite) as scratch:
        scratch.write_text(text, encoding="utf-8")
