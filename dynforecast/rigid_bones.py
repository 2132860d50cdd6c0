"""Rigid bones: project predicted skeleton frames onto the hierarchy's bone lengths.

Why: the models predict joint positions freely, so a long rollout of a skeleton stretches its
bones (SAKE's 60-step rollout of a 3-bone arm took a 25-unit bone to 84 units). For skeleton data
(BVH and ASF/AMC input: their bonds are the hierarchy's (parent, child) bones) `RigidBones`
restores every bone's length after each rollout step, so the forecast stays a skeleton and the
next step's input is one.

Projection (forward-kinematics style, top-down over the tree's depth levels): roots keep their
predicted position; each child is placed at

    x'_c = x'_p + L_c (x_c - x_p) / |x_c - x_p|

where x are the predicted positions (so every bone keeps its predicted direction), x' the
projected ones and L_c the bone's reference length: its mean length over the given frames, which
for a BVH or ASF skeleton with rigid bones is the hierarchy's length (rollout_metrics measures
bone error against the same reference). A bone predicted with zero length keeps its direction
in the last given frame. Translations and rotations commute with the projection, so a rollout
stays E(3)-equivariant. Cost: one gather and one scatter per depth level, vectorised over all
frames, rollouts and joints of a level (no loop over joints or frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dynforecast.errors import UsageError
from dynforecast.io.trajectory import Trajectory

#: Parameters that mark skeleton input (io/bvh.py, io/amc.py): rigid bones are on by default.
SKELETON_KEYS = ("bvh_parents", "asf_text")
#: Output parameter (H5MD parameters/dynforecast/<system>/) recording the choice: 1 on, 0 off.
PARAMETER = "rigid_bones"
#: Bones shorter than this (relative to the largest) count as zero length.
ZERO_LENGTH = 1e-9


def is_skeleton(system: Trajectory) -> bool:
    """Whether ``system`` was read from a skeleton format (BVH, ASF/AMC)."""
    return any(key in system.parameters for key in SKELETON_KEYS)


def resolve_rigid_bones(requested: bool | None, systems: Sequence[Trajectory]) -> bool:
    """None (the default) = on for skeleton input; True on data that is not a skeleton is a
    UsageError naming the option."""
    skeleton = all(is_skeleton(s) for s in systems)
    if requested is None:
        return skeleton
    if requested and not skeleton:
        raise UsageError(
            "--rigid-bones: the data is not a skeleton (BVH or ASF/AMC input); bones are "
            "kept rigid only for skeleton hierarchies"
        )
    return requested


def parent_array(bonds: np.ndarray, n_nodes: int) -> np.ndarray:
    """Parent of every node from (parent, child) bonds; -1 for roots. Shapes: [B, 2] -> [V].

    UsageError unless the bonds form a forest (one parent per child, no cycles).
    """
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    parent = np.full(n_nodes, -1, dtype=np.int64)
    children = bonds[:, 1]
    if np.unique(children).size != children.size:
        raise UsageError("--rigid-bones: a joint has two parent bones; the bonds are no hierarchy")
    parent[children] = bonds[:, 0]
    return parent


def depth_levels(parent: np.ndarray) -> list[np.ndarray]:
    """Nodes of depth 1, 2, ... (roots have depth 0): one array per level, found by
    walking every node up to its root at once (a loop over tree depth, vectorised over nodes)."""
    n = parent.size
    depth = np.zeros(n, dtype=np.int64)
    ancestor = parent.copy()
    for _ in range(n + 1):
        alive = ancestor >= 0
        if not alive.any():
            break
        depth[alive] += 1
        ancestor[alive] = parent[ancestor[alive]]
    else:
        raise UsageError("--rigid-bones: the bones form a cycle; the bonds are no hierarchy")
    return [np.flatnonzero(depth == d) for d in range(1, int(depth.max(initial=0)) + 1)]


@dataclass(frozen=True)
class RigidBones:
    """The projection of the module docstring for V nodes (any number of rollouts).

    Fields: levels (per depth level, child and parent indices [n_d] each), length [V] (the
    reference length of the bone ending at each node; 0 for roots), direction [V, 3] (that
    bone's unit direction in the last given frame).
    """

    levels: tuple[tuple[Tensor, Tensor], ...]
    length: Tensor
    direction: Tensor

    @classmethod
    def from_bonds(cls, bonds: np.ndarray, given: Tensor) -> RigidBones:
        """Bones (parent, child) [B, 2] in the node numbering of ``given`` [G, V, 3]."""
        n_nodes = given.shape[1]
        parent = parent_array(bonds, n_nodes)
        levels = depth_levels(parent)
        device = given.device
        has_parent = torch.as_tensor(parent >= 0, device=device)
        safe_parent = torch.as_tensor(np.where(parent >= 0, parent, 0), device=device)
        bone = given - given[:, safe_parent]  # [G, V, 3]; roots: x - x_0, masked below
        length = bone.norm(dim=-1).mean(dim=0) * has_parent  # [V]
        last = bone[-1]
        norm = last.norm(dim=-1, keepdim=True)
        direction = torch.where(norm > 0, last / norm.clamp_min(1e-30), torch.zeros_like(last))
        as_long = [
            (torch.as_tensor(c, device=device), torch.as_tensor(parent[c], device=device))
            for c in levels
        ]
        return cls(tuple(as_long), length, direction)

    @classmethod
    def for_rollouts(
        cls, systems: Sequence[Trajectory], rollout_system: np.ndarray, given: Tensor
    ) -> RigidBones:
        """The bones of R rollouts laid out as `dynforecast.rollout.RolloutBatcher` lays out
        nodes (rollout r's particles contiguous, rollouts in order). Shapes: given [G, V, 3]."""
        return cls.from_bonds(concatenated_bonds(systems, rollout_system), given)

    def project(self, frames: Tensor) -> Tensor:
        """Frames [..., V, 3] with every bone at its reference length (module docstring)."""
        out = frames.clone()
        scale = self.length.abs().max().clamp_min(1e-30)
        for child, parent in self.levels:  # loop over tree depth only
            bone = frames[..., child, :] - frames[..., parent, :]
            norm = bone.norm(dim=-1, keepdim=True)
            unit = torch.where(
                norm > ZERO_LENGTH * scale,
                bone / norm.clamp_min(1e-30),
                self.direction[child].expand_as(bone),
            )
            out[..., child, :] = out[..., parent, :] + self.length[child, None] * unit
        return out


def concatenated_bonds(systems: Sequence[Trajectory], rollout_system: np.ndarray) -> np.ndarray:
    """[B, 2] bonds of every rollout in the concatenated node numbering (one step per system)."""
    rollout_system = np.asarray(rollout_system, dtype=np.int64).reshape(-1)
    sizes = np.array([s.n_particles for s in systems], dtype=np.int64)[rollout_system]
    node_offset = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    parts = []
    for index in np.unique(rollout_system):  # once per system, never per rollout
        bonds = np.asarray(systems[index].bonds, dtype=np.int64).reshape(-1, 2)
        rows = np.flatnonzero(rollout_system == index)
        parts.append((node_offset[rows][:, None, None] + bonds[None]).reshape(-1, 2))
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def bone_length_error(frames: Tensor, bones: RigidBones) -> Tensor:
    """Largest relative bone-length deviation |l / L - 1| per frame. Shapes: [F, V, 3] -> [F]."""
    worst = frames.new_zeros(frames.shape[0])
    for child, parent in bones.levels:
        length = (frames[:, child] - frames[:, parent]).norm(dim=-1)
        reference = bones.length[child].clamp_min(1e-30)
        worst = torch.maximum(worst, (length / reference - 1.0).abs().amax(dim=1))
    return worst
