"""Forward kinematics of ASF/AMC skeletons, vectorised over frames (loops over tree depth only).

Convention (Acclaim's, as CMU's own ASF/AMC viewer applies it), column vectors:

* An order such as ``XYZ`` (a bone's ``axis``, the root's ``axis``) or a dof list such as
  ``rx ry rz`` applies its rotations in the listed order about fixed axes:
  ``XYZ`` is ``Rz @ Ry @ Rx``; ``dof rz rx`` is ``Rx @ Rz``.
* ``C`` is the rotation of a bone's ``axis`` angles (the root's ``orientation``), ``M`` that of
  its AMC rotation values; the bone's local rotation is ``L = C @ M @ C^T``.
* ``R[b] = R[parent] @ L[b]`` (the root's parent frame is the identity) and
  ``tip[b] = tip[parent] + R[parent] @ (L[b] @ ((length + l) * direction) + C @ t)`` where
  ``t`` are the bone's tx/ty/tz values and ``l`` its length dof (0 where absent). The root's
  tip is ``position + (TX, TY, TZ)`` in global coordinates.

Shapes: F frames, P particles (root and bone tips), D dof columns.
"""

from __future__ import annotations

import numpy as np

from dynforecast.io.asf import AsfSkeleton
from dynforecast.io.bvh_kinematics import axis_rotations


def ordered_rotations(axes: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    """Rotations applied in the listed order: axes [..., K], angles [..., K] -> [..., 3, 3].

    ``ordered_rotations([0, 1, 2], [a, b, c]) = Rz(c) @ Ry(b) @ Rx(a)``.
    """
    result = axis_rotations(axes[..., 0], angles_rad[..., 0])
    for k in range(1, axes.shape[-1]):
        result = axis_rotations(axes[..., k], angles_rad[..., k]) @ result
    return result


def axis_frames(skeleton: AsfSkeleton) -> np.ndarray:
    """C per particle: float64 [P, 3, 3] from the axis angles in their order."""
    angles = np.take_along_axis(skeleton.axis_angles, skeleton.axis_orders, axis=1)
    return ordered_rotations(skeleton.axis_orders, angles)


def _layout(skeleton: AsfSkeleton) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Static dof layout: rotation (columns, axes) [P, 3], translation columns [P, 3],
    length columns [P]; -1 where absent (read as 0)."""
    rot_cols = np.full((skeleton.n_particles, 3), -1, dtype=np.int64)
    rot_axes = np.zeros((skeleton.n_particles, 3), dtype=np.int64)
    trans_cols = np.full((skeleton.n_particles, 3), -1, dtype=np.int64)
    length_cols = np.full(skeleton.n_particles, -1, dtype=np.int64)
    for p, dofs in enumerate(skeleton.dofs):  # static, once per bone
        k = 0
        for slot, dof in enumerate(dofs):
            column = int(skeleton.dof_starts[p]) + slot
            if dof[0] == "r":
                rot_cols[p, k], rot_axes[p, k] = column, "xyz".index(dof[1])
                k += 1
            elif dof[0] == "t":
                trans_cols[p, "xyz".index(dof[1])] = column
            else:
                length_cols[p] = column
    return rot_cols, rot_axes, trans_cols, length_cols


def _gather(motion: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """motion[:, columns] with 0 where a column is -1. Shapes: [F, D], [...] -> [F, ...]."""
    if motion.shape[1] == 0:
        return np.zeros((motion.shape[0], *columns.shape))
    return np.where(columns >= 0, motion[:, np.maximum(columns, 0)], 0.0)


def local_transforms(skeleton: AsfSkeleton, motion: np.ndarray, *, degrees: bool):
    """Per frame and particle: L [F, P, 3, 3] and the tip offset in the parent frame [F, P, 3]."""
    rot_cols, rot_axes, trans_cols, length_cols = _layout(skeleton)
    angles = _gather(motion, rot_cols)
    if degrees:
        angles = np.deg2rad(angles)
    m = ordered_rotations(np.broadcast_to(rot_axes, angles.shape), angles)
    c = axis_frames(skeleton)
    local = c @ m @ np.swapaxes(c, -1, -2)
    bone = (skeleton.lengths + _gather(motion, length_cols))[..., None] * skeleton.directions
    shift = _gather(motion, trans_cols)
    shift = np.where(
        (np.arange(skeleton.n_particles) == 0)[None, :, None],
        shift + skeleton.root_position,
        np.einsum("pij,fpj->fpi", c, shift),
    )
    offset = np.einsum("fpij,fpj->fpi", local, bone) + shift
    return local, offset


def forward_kinematics(
    skeleton: AsfSkeleton, motion: np.ndarray, *, degrees: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Global tip positions [F, P, 3] and rotations [F, P, 3, 3] from AMC values [F, D].

    ``degrees``: whether the AMC angles are in degrees (``:DEGREES``) or radians. Lengths are
    in the ASF's units.
    """
    motion = np.asarray(motion, dtype=np.float64)
    local, offset = local_transforms(skeleton, motion, degrees=degrees)
    rotations = np.empty_like(local)
    tips = np.empty_like(offset)
    rotations[:, 0], tips[:, 0] = local[:, 0], offset[:, 0]
    for level in skeleton.depth_levels[1:]:
        of = skeleton.parents[level]
        rotations[:, level] = rotations[:, of] @ local[:, level]
        tips[:, level] = tips[:, of] + np.einsum(
            "fpij,fpj->fpi", rotations[:, of], offset[:, level]
        )
    return tips, rotations
