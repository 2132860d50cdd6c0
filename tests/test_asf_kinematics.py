"""ASF/AMC forward kinematics (io/asf_kinematics.py) against hand-computed poses."""

from pathlib import Path

import numpy as np
import pytest

from dynforecast.io.asf import parse_asf
from dynforecast.io.asf_kinematics import forward_kinematics, ordered_rotations
from tests.test_asf import ASF

S3 = np.sqrt(3.0) / 2


def _skeleton(text=ASF):
    return parse_asf(text, Path("t.asf"))[0]


def test_two_bone_chain_with_axes_matches_hand_computation():
    # root moved by (1, 2, 3); upper: C = Rz(90), rz 90 -> L = Rz(90): (0, 2, 0) -> (-2, 0, 0);
    # lower: C = Rx(30) (ZYX order), rz 90 turns (3, 0, 0) about Rx(30) z = (0, -1/2, S3)
    # onto 3 (0, S3, 1/2), then Rz(90) of its parent: (-3 S3, 0, 3/2).
    motion = np.array([[1, 2, 3, 0, 0, 0, 0, 0, 90, 90, 0]], dtype=float)
    tips, _ = forward_kinematics(_skeleton(), motion)
    expected = [[1, 2, 3], [-1, 2, 3], [-1 - 3 * S3, 2, 4.5]]
    np.testing.assert_allclose(tips[0], expected, atol=1e-12)
    radians = motion.copy()
    radians[:, 3:] = np.deg2rad(radians[:, 3:])
    rad_skeleton = _skeleton(
        ASF.replace("angle deg", "angle rad")
        .replace("0 0 90 XYZ", f"0 0 {np.pi / 2} XYZ")
        .replace("30 0 0 ZYX", f"{np.pi / 6} 0 0 ZYX")
    )
    np.testing.assert_allclose(
        forward_kinematics(rad_skeleton, radians, degrees=False)[0], tips, atol=1e-12
    )


@pytest.mark.parametrize(
    "order", ["rx ry rz", "rz ry rx", "ry rx rz", "rx rz ry", "ry rz rx", "rz rx ry"]
)
def test_dof_order_applies_first_listed_first(order):
    text = ASF.replace("dof rx ry rz", f"dof {order}")
    angles = {"rx": 20.0, "ry": -35.0, "rz": 50.0}
    values = [angles[d] for d in order.split()]
    motion = np.array([[0, 0, 0, 0, 0, 0, *values, 0, 0]], dtype=float)
    tips, rotations = forward_kinematics(_skeleton(text), motion)
    axes = np.array(["xyz".index(d[1]) for d in order.split()])
    m = ordered_rotations(axes, np.deg2rad(values))
    c = ordered_rotations(np.arange(3), np.deg2rad([0, 0, 90]))
    np.testing.assert_allclose(rotations[0, 1], c @ m @ c.T, atol=1e-12)
    np.testing.assert_allclose(tips[0, 1], c @ m @ c.T @ [0, 2, 0], atol=1e-12)


def test_ordered_rotations_is_extrinsic_in_listed_order():
    rx = ordered_rotations(np.array([0]), np.array([np.pi / 2]))
    rz = ordered_rotations(np.array([2]), np.array([np.pi / 2]))
    both = ordered_rotations(np.array([0, 2]), np.array([np.pi / 2, np.pi / 2]))
    np.testing.assert_allclose(both, rz @ rx, atol=1e-12)
