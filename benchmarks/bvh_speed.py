"""Speed of BVH forward kinematics, reading and writing (31 joints x 10,000 frames by default).

Compares the vectorised forward kinematics (one step per tree depth level, all frames at once)
with a baseline in the same run: the textbook per-frame, per-joint Python loop. The baseline is
timed on a slice of the frames and scaled, so that the script stays short.

    OMP_NUM_THREADS=1 python -m benchmarks.bvh_speed [--frames 10000] [--joints 31]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.timing import median_ms
from dynforecast.io.bvh import format_bvh, read_bvh, write_bvh
from dynforecast.io.bvh_kinematics import BvhSkeleton, axis_rotations, forward_kinematics
from dynforecast.io.bvh_synthetic import random_motion, random_skeleton


def loop_forward_kinematics(skeleton: BvhSkeleton, motion: np.ndarray) -> np.ndarray:
    """Baseline: one frame at a time, one joint at a time, as a straightforward reader does."""
    columns, axes = skeleton.rotation_columns
    out = np.zeros((motion.shape[0], skeleton.n_joints, 3))
    for f in range(motion.shape[0]):
        rot = [np.eye(3)] * skeleton.n_joints
        for j in range(skeleton.n_joints):
            local_rot = np.eye(3)
            for col, axis in zip(columns[j], axes[j], strict=True):
                if col >= 0:
                    local_rot = local_rot @ axis_rotations(axis, np.deg2rad(motion[f, col]))
            local = skeleton.offsets[j].copy()
            for axis, col in enumerate(skeleton.position_columns[j]):
                if col >= 0:
                    local[axis] += motion[f, col]
            parent = skeleton.parents[j]
            if parent < 0:
                rot[j], out[f, j] = local_rot, local
            else:
                rot[j] = rot[parent] @ local_rot
                out[f, j] = out[f, parent] + rot[parent] @ local
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--joints", type=int, default=31)
    parser.add_argument("--baseline-frames", type=int, default=500)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    skeleton = random_skeleton(rng, args.joints)
    motion = random_motion(rng, skeleton, args.frames)
    part = motion[: args.baseline_frames]
    np.testing.assert_allclose(
        loop_forward_kinematics(skeleton, part), forward_kinematics(skeleton, part), atol=1e-9
    )

    fk_ms = median_ms(lambda: forward_kinematics(skeleton, motion), repeats=5, warmup=1)
    loop_ms = median_ms(lambda: loop_forward_kinematics(skeleton, part), repeats=1, warmup=0)
    loop_ms *= args.frames / part.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.bvh", Path(tmp) / "out.bvh"
        src.write_text(format_bvh(skeleton, motion, 1 / 120))
        traj = read_bvh(src)
        read_ms = median_ms(lambda: read_bvh(src), repeats=3, warmup=1)
        write_ms = median_ms(lambda: write_bvh(traj, dst, overwrite=True), repeats=3, warmup=1)

    print(
        f"{skeleton.n_joints} particles ({args.joints} joints + end sites), "
        f"{skeleton.n_channels} channels, {args.frames} frames"
    )
    print(f"forward kinematics, vectorised      {fk_ms:9.1f} ms")
    print(f"forward kinematics, per-frame loop  {loop_ms:9.1f} ms (scaled from {part.shape[0]})")
    print(f"speed-up                            {loop_ms / fk_ms:9.1f} x")
    print(f"read_bvh (parse + FK)               {read_ms:9.1f} ms")
    print(f"write_bvh (IK + Euler + text)       {write_ms:9.1f} ms")


if __name__ == "__main__":
    main()
