"""BVH skeletons and their rotation math: channel rotations, forward kinematics, Euler angles.

Convention (the one used by Biovision's format description, Blender's importer and Lawrence's
MOCAP toolbox ``bvh2xyz``), with column vectors:

* A joint's rotation channels are applied in the order listed, as intrinsic rotations:
  ``R_local = R_c1 @ R_c2 @ R_c3``; ``Zrotation Xrotation Yrotation`` gives ``Rz @ Rx @ Ry``.
  Angles are in degrees; ``R_x(t)`` carries +y towards +z (right-handed).
* A joint's position channels add to its OFFSET: ``local = OFFSET + (Xposition, Yposition,
  Zposition)``; this holds for the root as for 6-channel joints below it.
* ``global_R[j] = global_R[parent] @ R_local[j]`` and
  ``global_p[j] = global_p[parent] + global_R[parent] @ local[j]``; the root's parent frame is
  the identity at the origin. End sites are joints without channels.

Everything is vectorised over frames; forward kinematics loops only over tree depth levels.

Shapes: F frames, J joints (end sites included), C channels in total.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")

# Cross-product matrices of the unit axes x, y, z and their squares, for Rodrigues' formula.
_AXIS_CROSS = np.array(
    [
        [[0, 0, 0], [0, 0, -1], [0, 1, 0]],
        [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
        [[0, -1, 0], [1, 0, 0], [0, 0, 0]],
    ],
    dtype=np.float64,
)
_AXIS_CROSS_SQ = _AXIS_CROSS @ _AXIS_CROSS

#: Below this |cos(middle angle)| an Euler decomposition is treated as gimbal-locked.
GIMBAL_EPS = 1e-7


@dataclass(frozen=True)
class BvhSkeleton:
    """A BVH hierarchy in depth-first (file) order; end sites are joints without channels.

    Fields:
        names: joint names [J] (end sites named ``<parent>_end``).
        parents: int [J], parent index, -1 for the root; parents precede children.
        offsets: float64 [J, 3], OFFSET of each joint in its parent's frame.
        channels: per joint, the channel names in file order (empty for end sites).
        end_site: bool [J], True for ``End Site`` entries.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    end_site: np.ndarray

    def __post_init__(self) -> None:
        j = len(self.names)
        if self.parents.shape != (j,) or self.offsets.shape != (j, 3) or len(self.channels) != j:
            raise ValueError(
                f"expected parents [{j}], offsets [{j}, 3] and {j} channel lists "
                f"(got {self.parents.shape}, {self.offsets.shape}, {len(self.channels)})"
            )
        if self.end_site.shape != (j,):
            raise ValueError(f"expected end_site [{j}] (got {self.end_site.shape})")
        if j == 0 or self.parents[0] != -1 or np.any(self.parents[1:] >= np.arange(1, j)):
            raise ValueError(f"expected parents before children, root first (got {self.parents})")

    @property
    def n_joints(self) -> int:
        return len(self.names)

    @cached_property
    def channel_starts(self) -> np.ndarray:
        """int [J]: column of each joint's first channel in a motion row."""
        counts = np.array([len(c) for c in self.channels], dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    @property
    def n_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    @cached_property
    def depth_levels(self) -> list[np.ndarray]:
        """Joint indices grouped by depth (roots first): each group only needs earlier ones."""
        depth = np.zeros(self.n_joints, dtype=np.int64)
        for j in range(1, self.n_joints):  # parents precede children: one pass suffices
            depth[j] = depth[self.parents[j]] + 1 if self.parents[j] >= 0 else 0
        return [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]

    @cached_property
    def position_columns(self) -> np.ndarray:
        """int [J, 3]: motion column of X/Y/Zposition per joint, -1 where absent."""
        return self._columns(POSITION_CHANNELS)[0]

    @cached_property
    def rotation_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(columns int [J, K], axes int [J, K]) of rotation channels in order, -1 padded.

        K is the most rotation channels of any joint (3 in practice); padding has axis 0 and
        column -1, which the callers read as a zero angle.
        """
        return self._columns(ROTATION_CHANNELS)[1:]

    def _columns(self, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        positions = np.full((self.n_joints, 3), -1, dtype=np.int64)
        rotations = [[] for _ in range(self.n_joints)]
        for j, names in enumerate(self.channels):
            for k, channel in enumerate(names):
                column = int(self.channel_starts[j]) + k
                if channel in POSITION_CHANNELS:
                    positions[j, POSITION_CHANNELS.index(channel)] = column
                else:
                    rotations[j].append((column, ROTATION_CHANNELS.index(channel)))
        width = max(1, max(len(r) for r in rotations))
        columns = np.full((self.n_joints, width), -1, dtype=np.int64)
        axes = np.zeros((self.n_joints, width), dtype=np.int64)
        for j, pairs in enumerate(rotations):
            for k, (column, axis) in enumerate(pairs):
                columns[j, k], axes[j, k] = column, axis
        return positions, columns, axes


def axis_rotations(axes: np.ndarray | int, angles_rad: np.ndarray) -> np.ndarray:
    """Rotation matrices about coordinate axes (0=x, 1=y, 2=z), right-handed (Rodrigues).

    Shapes: axes [...] (broadcast against angles), angles_rad [...] -> [..., 3, 3].
    """
    sin = np.sin(angles_rad)[..., None, None]
    cos = np.cos(angles_rad)[..., None, None]
    return np.eye(3) + sin * _AXIS_CROSS[axes] + (1.0 - cos) * _AXIS_CROSS_SQ[axes]


# Quaternions below are stored components first, [4, ...] = (w, x, y, z), so that every
# operation is a few whole-array multiplications (Hamilton product, R(p q) = R(p) R(q)).


def quaternion_multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product p q. Shapes: [4, ...], [4, ...] -> [4, ...]."""
    pw, px, py, pz = p
    qw, qx, qy, qz = q
    return np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ]
    )


def quaternion_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors by unit quaternions: v + w t + u x t with t = 2 u x v, u = (x, y, z).

    Shapes: q [4, ...], v [3, ...] -> [3, ...].
    """
    u = q[1:]
    t = 2.0 * np.cross(u, v, axis=0)
    return v + q[0] * t + np.cross(u, t, axis=0)


def channel_quaternions(skeleton: BvhSkeleton, motion_t: np.ndarray) -> np.ndarray:
    """Each joint's local rotation as a unit quaternion, channels composed in file order.

    Joints without rotation channels (end sites) get the identity without any arithmetic.

    Shapes: motion_t [C, F] (channels first) -> [4, J, F].
    """
    columns, axes = skeleton.rotation_columns
    rotating = np.flatnonzero((columns >= 0).any(axis=1))
    columns, axes = columns[rotating], axes[rotating]
    half = 0.5 * np.deg2rad(_gather_channels(motion_t, columns))  # [R, K, F]
    axis_onehot = (axes.T[:, None, :] == np.arange(3)[None, :, None]).astype(np.float64)
    quaternion = np.zeros((4, skeleton.n_joints, motion_t.shape[1]))
    quaternion[0] = 1.0
    composed = None
    for k in range(half.shape[1]):  # one step per channel slot, all joints and frames at once
        sin = np.sin(half[:, k])  # [R, F]
        step = np.concatenate([np.cos(half[:, k])[None], axis_onehot[k][:, :, None] * sin[None]])
        composed = step if composed is None else quaternion_multiply(composed, step)
    if composed is not None:
        quaternion[:, rotating] = composed
    return quaternion


def _gather_channels(motion_t: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """motion_t[columns] with 0 where a column is -1. Shapes: [C, F], [...] -> [..., F]."""
    values = motion_t[np.maximum(columns, 0)]
    return np.where((columns >= 0)[..., None], values, 0.0)


def forward_kinematics(skeleton: BvhSkeleton, motion: np.ndarray) -> np.ndarray:
    """Global joint positions from motion channels (float64, BVH units).

    Loops over tree depth levels only: all joints of one depth are placed together, for all
    frames at once. Rotations are composed as quaternions (fewer operations than 3x3 matrices)
    in a joints-first, frames-last layout so that gathering parents copies contiguous rows.

    Shapes: motion [F, C] -> positions [F, J, 3].
    """
    motion_t = np.ascontiguousarray(np.asarray(motion, dtype=np.float64).T)  # [C, F]
    local_rot = channel_quaternions(skeleton, motion_t)  # [4, J, F]
    # OFFSET plus position channels, [3, J, F]
    local_pos = skeleton.offsets.T[:, :, None] + np.moveaxis(
        _gather_channels(motion_t, skeleton.position_columns), 1, 0
    )
    global_rot = np.empty_like(local_rot)
    global_pos = np.empty_like(local_pos)
    for level in skeleton.depth_levels:
        parents = skeleton.parents[level]
        is_root = parents < 0
        roots, children, of = level[is_root], level[~is_root], parents[~is_root]
        global_rot[:, roots] = local_rot[:, roots]
        global_pos[:, roots] = local_pos[:, roots]
        if children.size:
            parent_rot = global_rot[:, of]
            global_rot[:, children] = quaternion_multiply(parent_rot, local_rot[:, children])
            global_pos[:, children] = global_pos[:, of] + quaternion_rotate(
                parent_rot, local_pos[:, children]
            )
    return np.transpose(global_pos, (2, 1, 0))


def euler_angles(rotations: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Intrinsic Euler angles (degrees) with ``R = R_a0(t0) @ R_a1(t1) @ R_a2(t2)``.

    ``orders`` holds three distinct axes per joint (e.g. [2, 0, 1] for ZXY). Near gimbal lock
    (|cos t1| < GIMBAL_EPS) the first and last axes coincide; t2 is set to 0 and t0 takes the
    whole rotation about them, so the angles still rebuild ``R`` exactly.

    Shapes: rotations [F, J, 3, 3], orders int [J, 3] -> angles [F, J, 3].
    """
    i, j, k = orders[:, 0], orders[:, 1], orders[:, 2]
    sign = np.where(j == (i + 1) % 3, 1.0, -1.0)  # +1 for cyclic orders (XYZ, YZX, ZXY)
    joint = np.arange(orders.shape[0])

    def entry(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return rotations[:, joint, row, col]

    r_ii, r_ij = entry(i, i), entry(i, j)
    cos_mid = np.hypot(r_ii, r_ij)
    mid = np.arctan2(sign * entry(i, k), cos_mid)
    first = np.arctan2(-sign * entry(j, k), entry(k, k))
    last = np.arctan2(-sign * r_ij, r_ii)
    locked = cos_mid < GIMBAL_EPS
    first = np.where(locked, np.arctan2(sign * entry(k, j), entry(j, j)), first)
    last = np.where(locked, 0.0, last)
    return np.rad2deg(np.stack([first, mid, last], axis=-1))
