"""Inverse kinematics: the joint rotations and translations that put a skeleton at given positions.

Positions-only trajectories (ingested skeletons, model forecasts) must become BVH channels again.
A joint's global rotation is fixed by where its children went:

* two or more non-collinear "pulling" children: the Kabsch rotation (SVD) that best carries their
  rest offsets onto the observed bone directions; exact when the pose is a rigid articulation;
* one pulling child: the minimal (swing) rotation that turns its rest offset onto the observed
  direction, applied on top of the parent's rotation, so the twist about the bone is the
  parent's (a single bone cannot tell its twist; positions do not depend on it);
* no pulling child (a leaf without end site): the parent's rotation.

A pulling child is one with a non-zero OFFSET and no position channels; a child with position
channels is placed exactly by those channels instead. Bone directions are matched, bone lengths
come from the hierarchy: when the given positions stretch bones, the BVH cannot reproduce them and
`bone_length_deviation` says by how much.

Shapes: F frames, J joints (end sites included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynforecast.io.bvh_kinematics import BvhSkeleton

_TINY = 1e-12


@dataclass(frozen=True)
class _Plan:
    """Per-joint choice of how its global rotation is found (static, from the hierarchy)."""

    pull_child: np.ndarray  # int [P]: children that pull their parent's rotation
    pull_parent: np.ndarray  # int [P]: their parents
    kabsch: np.ndarray  # bool [J]: >= 2 non-collinear pulling children
    swing_child: np.ndarray  # int [J]: the pulling child used for a swing, -1 if none


def _plan(skeleton: BvhSkeleton) -> _Plan:
    offsets, parents = skeleton.offsets, skeleton.parents
    lengths = np.linalg.norm(offsets, axis=1)
    has_position = (skeleton.position_columns >= 0).any(axis=1)
    pulls = (parents >= 0) & (lengths > _TINY * max(1.0, lengths.max())) & ~has_position
    pull_child = np.flatnonzero(pulls)
    pull_parent = parents[pull_child]
    kabsch = np.zeros(skeleton.n_joints, dtype=bool)
    swing_child = np.full(skeleton.n_joints, -1, dtype=np.int64)
    for joint in np.unique(pull_parent):  # static, once per joint with pulling children
        children = pull_child[pull_parent == joint]
        directions = offsets[children] / lengths[children, None]
        spread = np.linalg.norm(np.cross(directions[:, None], directions[None, :]), axis=-1)
        kabsch[joint] = spread.max() > 1e-6
        swing_child[joint] = children[np.argmax(lengths[children])]
    return _Plan(pull_child, pull_parent, kabsch, swing_child)


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis; zero vectors stay zero."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norm, _TINY)


def kabsch_rotations(covariance: np.ndarray) -> np.ndarray:
    """Proper rotations R minimising sum_i |R a_i - b_i|^2, given H = sum_i a_i b_i^T.

    With H = U S V^T, R = V diag(1, 1, d) U^T where d = sign det(V U^T) rules out reflections;
    this also holds when H has rank 2 (two non-collinear pairs).

    Shapes: covariance [..., 3, 3] -> R [..., 3, 3].
    """
    u, _, vt = np.linalg.svd(covariance)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    det = np.linalg.det(v @ ut)
    fix = np.ones((*det.shape, 3))
    fix[..., 2] = np.sign(det) + (det == 0)
    return (v * fix[..., None, :]) @ ut


def swing_rotations(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The smallest rotation turning unit ``src`` onto unit ``dst`` (identity for zero vectors).

    Opposite vectors get a half turn about an axis perpendicular to ``src``.

    Shapes: src [..., 3], dst [..., 3] -> [..., 3, 3].
    """
    axis = np.cross(src, dst)
    cos = np.sum(src * dst, axis=-1)
    cross = np.zeros((*axis.shape, 3))
    cross[..., 0, 1], cross[..., 0, 2], cross[..., 1, 2] = (
        -axis[..., 2],
        axis[..., 1],
        -axis[..., 0],
    )
    cross = cross - np.swapaxes(cross, -1, -2)
    opposite = cos < -1 + 1e-9
    scale = 1.0 / np.where(opposite, 1.0, 1.0 + cos)
    rot = np.eye(3) + cross + (cross @ cross) * scale[..., None, None]
    # Half turn about n: 2 n n^T - I, with n perpendicular to src.
    helper = np.where(np.abs(src[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    normal = _unit(np.cross(src, helper))
    half = 2 * normal[..., :, None] * normal[..., None, :] - np.eye(3)
    zero = np.linalg.norm(src, axis=-1) * np.linalg.norm(dst, axis=-1) < _TINY
    rot = np.where(opposite[..., None, None], half, rot)
    return np.where(zero[..., None, None], np.eye(3), rot)


@dataclass(frozen=True)
class JointMotion:
    """Per-frame local transforms of every joint (the inverse of forward kinematics).

    Fields:
        rotations: float64 [F, J, 3, 3], each joint's rotation in its parent's frame.
        translations: float64 [F, J, 3], values of the joint's position channels
            (meaningful only for joints that have them; zero elsewhere).
    """

    rotations: np.ndarray
    translations: np.ndarray


def _transpose_rotation(rotations: np.ndarray) -> np.ndarray:
    return np.swapaxes(rotations, -1, -2)


def inverse_kinematics(skeleton: BvhSkeleton, positions: np.ndarray) -> JointMotion:
    """Local rotations and translations whose forward kinematics gives ``positions``.

    Exact for rigidly articulated poses of ``skeleton``; otherwise bone directions are matched.
    Loops over tree depth levels only; works joints-first ([J, F, ...]) so that gathering a
    level's parents copies contiguous blocks. End sites get identity rotations (they have no
    channels).

    Shapes: positions [F, J, 3] -> JointMotion ([F, J, 3, 3], [F, J, 3]).
    """
    points = np.ascontiguousarray(np.swapaxes(np.asarray(positions, dtype=np.float64), 0, 1))
    joints, frames = points.shape[:2]
    plan = _plan(skeleton)
    parents, offsets = skeleton.parents, skeleton.offsets

    rest_dirs = _unit(offsets[plan.pull_child])  # [P, 3]
    seen_dirs = _unit(points[plan.pull_child] - points[plan.pull_parent])  # [P, F, 3]
    kabsch_joints = np.flatnonzero(plan.kabsch)
    # H_j = sum over j's pulling children of rest_dir outer seen_dir: one product with a 0/1
    # membership matrix [K, P] sums all children of all Kabsch joints at once.
    membership = (plan.pull_parent[None, :] == kabsch_joints[:, None]).astype(np.float64)
    outer = rest_dirs[:, None, :, None] * seen_dirs[:, :, None, :]  # [P, F, 3, 3]
    covariance = membership @ outer.reshape(plan.pull_child.size, -1)  # [K, F * 9]
    kabsch_rot = kabsch_rotations(covariance.reshape(-1, frames, 3, 3))  # [K, F, 3, 3]
    kabsch_slot = np.full(joints, -1, dtype=np.int64)
    kabsch_slot[kabsch_joints] = np.arange(kabsch_joints.size)
    bone_of = np.full(joints, -1, dtype=np.int64)  # pulling child -> its row in seen_dirs
    bone_of[plan.pull_child] = np.arange(plan.pull_child.size)

    global_rot = np.empty((joints, frames, 3, 3))
    local_rot = np.broadcast_to(np.eye(3), (joints, frames, 3, 3)).copy()
    for depth, level in enumerate(skeleton.depth_levels):
        level = level[~skeleton.end_site[level]]
        if depth == 0:
            parent_rot = np.broadcast_to(np.eye(3), (level.size, frames, 3, 3))
        else:
            parent_rot = global_rot[parents[level]]
        rot = parent_rot.copy()  # no pulling child: keep the parent's rotation
        is_kabsch = plan.kabsch[level]
        rot[is_kabsch] = kabsch_rot[kabsch_slot[level[is_kabsch]]]
        is_swing = (plan.swing_child[level] >= 0) & ~is_kabsch
        if is_swing.any():
            bone = bone_of[plan.swing_child[level[is_swing]]]
            frame_rot = parent_rot[is_swing]
            target = np.einsum("jfba,jfb->jfa", frame_rot, seen_dirs[bone])  # parent frame
            rot[is_swing] = frame_rot @ swing_rotations(rest_dirs[bone][:, None], target)
        global_rot[level] = rot
        local_rot[level] = _transpose_rotation(parent_rot) @ rot

    translations = np.zeros((joints, frames, 3))
    moved = np.flatnonzero((skeleton.position_columns >= 0).any(axis=1))
    root_moved, child_moved = moved[parents[moved] < 0], moved[parents[moved] >= 0]
    translations[root_moved] = points[root_moved] - offsets[root_moved, None]
    of = parents[child_moved]
    relative = np.einsum("jfba,jfb->jfa", global_rot[of], points[child_moved] - points[of])
    translations[child_moved] = relative - offsets[child_moved, None]
    return JointMotion(
        rotations=np.swapaxes(local_rot, 0, 1), translations=np.swapaxes(translations, 0, 1)
    )


def bone_length_deviation(skeleton: BvhSkeleton, positions: np.ndarray) -> float:
    """Largest |observed bone length - OFFSET length| over frames and fixed-length bones.

    Bones to joints with position channels are free and not counted. Shapes: positions [F, J, 3].
    """
    has_position = (skeleton.position_columns >= 0).any(axis=1)
    children = np.flatnonzero((skeleton.parents >= 0) & ~has_position)
    if children.size == 0:
        return 0.0
    positions = np.asarray(positions, dtype=np.float64)
    observed = np.linalg.norm(
        positions[:, children] - positions[:, skeleton.parents[children]], axis=-1
    )
    rest = np.linalg.norm(skeleton.offsets[children], axis=-1)
    return float(np.abs(observed - rest).max())
