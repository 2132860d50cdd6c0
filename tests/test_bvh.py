"""BVH reading (forward kinematics against hand-computed answers), writing (inverse kinematics,
round trips) and the one-line errors for bad files. All files are generated here in tmp_path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from dynforecast.errors import InputError, OutputError, UsageError
from dynforecast.io import bvh as bvh_module
from dynforecast.io.bvh import format_bvh, read_bvh, write_bvh
from dynforecast.io.bvh_kinematics import axis_rotations, euler_angles, forward_kinematics
from dynforecast.io.bvh_synthetic import random_motion, random_skeleton
from dynforecast.io.trajectory import Trajectory

ZXY = "Zrotation Xrotation Yrotation"
XYZ = "Xrotation Yrotation Zrotation"
ROOT6 = f"Xposition Yposition Zposition {ZXY}"


def chain(
    root_channels: str = ROOT6,
    child_channels: str = ZXY,
    *,
    root_offset: str = "0 0 0",
    child_offset: str = "0 1 0",
    end_offset: str = "0 1 0",
) -> str:
    """Hierarchy of a root, one child joint and the child's end site."""
    n_root, n_child = len(root_channels.split()), len(child_channels.split())
    return (
        "HIERARCHY\n"
        "ROOT Hips\n{\n"
        f"  OFFSET {root_offset}\n"
        f"  CHANNELS {n_root} {root_channels}\n"
        "  JOINT Chest\n  {\n"
        f"    OFFSET {child_offset}\n"
        f"    CHANNELS {n_child} {child_channels}\n"
        f"    End Site\n    {{\n      OFFSET {end_offset}\n    }}\n"
        "  }\n}\n"
    )


def bvh_file(tmp_path: Path, hierarchy: str, rows: list[str], *, frame_time: str = "0.1") -> Path:
    text = hierarchy + f"MOTION\nFrames: {len(rows)}\nFrame Time: {frame_time}\n"
    path = tmp_path / "walk.bvh"
    path.write_text(text + "\n".join(rows) + "\n")
    return path


def read_positions(tmp_path: Path, hierarchy: str, *rows: str) -> np.ndarray:
    return read_bvh(bvh_file(tmp_path, hierarchy, list(rows))).positions


# Forward kinematics against hand-computed answers ---------------------------------------------


@pytest.mark.parametrize(
    ("root_angles", "expected_child", "expected_tip_offset"),
    [
        ("0 90 0", [1, -3, 2], [0, -1, 0]),  # Rx(90) (x, y, z) = (x, -z, y)
        ("0 0 90", [3, 2, -1], [1, 0, 0]),  # Ry(90) (x, y, z) = (z, y, -x)
        ("90 0 0", [-2, 1, 3], [0, 0, 1]),  # Rz(90) (x, y, z) = (-y, x, z)
    ],
    ids=["X", "Y", "Z"],
)
def test_root_rotated_90_degrees_about_each_axis(
    tmp_path, root_angles, expected_child, expected_tip_offset
):
    # Channels Z X Y; child offset (1, 2, 3); its end site (0, 0, 1) turns with the root.
    hierarchy = chain(child_offset="1 2 3", end_offset="0 0 1")
    positions = read_positions(tmp_path, hierarchy, f"0 0 0 {root_angles} 0 0 0")
    np.testing.assert_allclose(positions[0, 0], [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(positions[0, 1], expected_child, atol=1e-6)
    tip = np.add(expected_child, expected_tip_offset)
    np.testing.assert_allclose(positions[0, 2], tip, atol=1e-6)


def test_channel_order_zxy_and_xyz_give_different_known_answers(tmp_path):
    # Z = 90, X = 90, Y = 0 degrees on the root; child offset (0, 1, 0).
    zxy = read_positions(tmp_path, chain(ROOT6), "0 0 0 90 90 0 0 0 0")
    # ZXY: Rz(90) Rx(90) (0, 1, 0) = Rz(90) (0, 0, 1) = (0, 0, 1)
    np.testing.assert_allclose(zxy[0, 1], [0, 0, 1], atol=1e-6)
    xyz = read_positions(
        tmp_path, chain(f"Xposition Yposition Zposition {XYZ}"), "0 0 0 90 0 90 0 0 0"
    )
    # XYZ: Rx(90) Ry(0) Rz(90) (0, 1, 0) = Rx(90) (-1, 0, 0) = (-1, 0, 0)
    np.testing.assert_allclose(xyz[0, 1], [-1, 0, 0], atol=1e-6)


def test_offset_root_adds_offset_and_position_channels(tmp_path):
    hierarchy = chain(root_offset="1 2 3")
    positions = read_positions(tmp_path, hierarchy, "10 20 30 0 0 0 0 0 0")
    np.testing.assert_allclose(positions[0, :2], [[11, 22, 33], [11, 23, 33]], atol=1e-6)


def test_end_site_follows_the_rotations_of_all_ancestors(tmp_path):
    # Root Rz(90), child Rx(90): child = Rz (0,1,0) = (-1,0,0); tip = child + Rz Rx (0,1,0)
    # = (-1, 0, 0) + Rz (0, 0, 1) = (-1, 0, 1).
    traj = read_bvh(bvh_file(tmp_path, chain(), ["0 0 0 90 0 0 0 90 0"]))
    np.testing.assert_allclose(traj.positions[0], [[0, 0, 0], [-1, 0, 0], [-1, 0, 1]], atol=1e-6)
    assert traj.names == ["Hips", "Chest", "Chest_end"]
    assert traj.species.tolist() == [0, 0, 0]
    assert traj.bonds.tolist() == [[0, 1], [1, 2]]
    assert traj.parameters["bvh_end_site"].tolist() == [0, 0, 1]
    assert traj.parameters["bvh_parents"].tolist() == [-1, 0, 1]


def test_six_channel_child_translates_in_its_parent_frame(tmp_path):
    # Root Rz(90); child offset (0,1,0) + Xposition 0.5 -> Rz (0.5, 1, 0) = (-1, 0.5, 0).
    # Child Yrotation 90: tip = child + Rz Ry (0, 0, 2) = child + Rz (2, 0, 0) = child + (0, 2, 0).
    hierarchy = chain(child_channels=f"Xposition Yposition Zposition {ZXY}", end_offset="0 0 2")
    positions = read_positions(tmp_path, hierarchy, "0 0 0 90 0 0 0.5 0 0 0 0 90")
    np.testing.assert_allclose(positions[0], [[0, 0, 0], [-1, 0.5, 0], [-1, 2.5, 0]], atol=1e-6)


def test_crlf_tabs_and_braces_on_the_joint_line_read_like_plain_text(tmp_path):
    rows = ["1 2 3 30 40 50 10 20 30", "4 5 6 -30 -40 -50 -10 -20 -30"]
    plain = read_bvh(bvh_file(tmp_path, chain(), rows)).positions
    messy = chain().replace("  ", "\t").replace("ROOT Hips\n{", "ROOT Hips {")
    text = (
        messy
        + "MOTION\nFrames: 2\nFrame Time:\t0.1\n"
        + "\n".join(r.replace(" ", "\t") for r in rows)
    )
    path = tmp_path / "crlf.bvh"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    np.testing.assert_array_equal(read_bvh(path).positions, plain)


def test_frames_time_stride_and_metadata(tmp_path):
    rows = [f"{f} 0 0 {10 * f} 0 0 0 0 0" for f in range(5)]
    path = bvh_file(tmp_path, chain(), rows, frame_time="0.05")
    full = read_bvh(path)
    assert full.positions.dtype == np.float32 and full.positions.shape == (5, 3, 3)
    np.testing.assert_allclose(full.positions[:, 0, 0], np.arange(5))
    np.testing.assert_allclose(full.time, 0.05 * np.arange(5))
    strided = read_bvh(path, stride=2, name="walk2")
    np.testing.assert_array_equal(strided.step, [0, 2, 4])
    np.testing.assert_allclose(strided.time, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(strided.positions, full.positions[::2])
    assert (full.name, strided.name) == ("walk", "walk2")
    assert (full.length_unit, full.time_unit) == ("1", "s")
    assert full.source == str(path)
    assert full.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    assert full.parameters["bvh_frame_time"].tolist() == [0.05]


# Euler decomposition and round trips --------------------------------------------------------


ORDERS = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]


@pytest.mark.parametrize("order", ORDERS, ids=lambda o: "".join("XYZ"[a] for a in o))
def test_euler_angles_rebuild_the_rotation_also_at_gimbal_lock(rng, order):
    angles = rng.uniform(-180, 180, size=(64, 3))
    angles[:, 1] /= 2  # the middle angle's unique range is [-90, 90]
    angles[:16, 1] = 90.0  # gimbal lock: first and last axes coincide
    angles[16:32, 1] = -90.0
    axes = np.array(order)
    rotations = np.eye(3)
    for k in range(3):
        rotations = rotations @ axis_rotations(axes[k], np.deg2rad(angles[:, k]))
    found = euler_angles(rotations[:, None], axes[None])[:, 0]
    rebuilt = np.eye(3)
    for k in range(3):
        rebuilt = rebuilt @ axis_rotations(axes[k], np.deg2rad(found[:, k]))
    np.testing.assert_allclose(rebuilt, rotations, atol=1e-9)
    np.testing.assert_allclose(found[32:], angles[32:], atol=1e-7)  # unique away from the lock


def test_read_write_read_reproduces_positions_and_hierarchy(tmp_path):
    hierarchy = chain(child_channels=f"Xposition Yposition Zposition {XYZ}", root_offset="1 2 3")
    traj = read_bvh(bvh_file(tmp_path, hierarchy, ["1 2 3 30 40 50 0.5 0.1 0 10 20 30"] * 2))
    out = tmp_path / "out.bvh"
    write_bvh(traj, out)
    again = read_bvh(out)
    np.testing.assert_allclose(again.positions, traj.positions, rtol=1e-4, atol=1e-5)
    for key in ("bvh_parents", "bvh_offsets", "bvh_channels", "bvh_end_site", "bvh_frame_time"):
        np.testing.assert_array_equal(again.parameters[key], traj.parameters[key])
    assert again.names == traj.names


def _random_file(tmp_path: Path, rng: np.random.Generator, joints: int, frames: int) -> Path:
    skeleton = random_skeleton(rng, joints, six_channel_fraction=0.2)
    motion = random_motion(rng, skeleton, frames)
    # Force gimbal lock (middle angle +-90) on every joint in a few frames.
    _, _, middle = skeleton.rotation_columns[0].T
    middle = middle[middle >= 0]
    motion[:10, middle] = 90.0
    motion[10:20, middle] = -90.0
    path = tmp_path / "random.bvh"
    path.write_text(format_bvh(skeleton, motion, 1 / 120))
    return path


def test_random_skeleton_round_trip_with_gimbal_lock(tmp_path, rng):
    path = _random_file(tmp_path, rng, joints=24, frames=100)
    traj = read_bvh(path)
    assert traj.n_particles >= 24 and traj.n_frames == 100
    out = tmp_path / "again.bvh"
    write_bvh(traj, out)
    again = read_bvh(out)
    scale = np.abs(traj.positions).max()
    np.testing.assert_allclose(again.positions, traj.positions, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_array_equal(again.parameters["bvh_channels"], traj.parameters["bvh_channels"])


def test_positions_only_input_is_inverted_exactly(tmp_path, rng):
    """A rigidly moved copy has no stored angles anywhere: the writer must solve for them."""
    traj = read_bvh(_random_file(tmp_path, rng, joints=24, frames=20))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    turn = q * np.sign(np.linalg.det(q))  # a proper rotation
    traj.positions = (traj.positions @ turn.T.astype(np.float32)) + np.float32(7.0)
    out = tmp_path / "moved.bvh"
    write_bvh(traj, out)
    again = read_bvh(out)
    scale = np.abs(traj.positions).max()
    np.testing.assert_allclose(again.positions, traj.positions, rtol=1e-4, atol=1e-4 * scale)


def test_stretched_bones_keep_directions_and_warn(tmp_path, monkeypatch):
    messages = []
    monkeypatch.setattr(bvh_module, "log", messages.append)
    traj = read_bvh(bvh_file(tmp_path, chain(), ["0 0 0 30 40 50 10 20 30"]))
    stretched = traj.positions * np.float32(1.5)  # bones 1 -> 1.5 long, root at the origin
    traj.positions = stretched
    out = tmp_path / "stretched.bvh"
    write_bvh(traj, out)
    again = read_bvh(out).positions[0].astype(np.float64)
    bones = np.diff(again, axis=0)
    wanted = np.diff(stretched[0].astype(np.float64), axis=0)
    np.testing.assert_allclose(np.linalg.norm(bones, axis=1), [1, 1], atol=1e-5)
    np.testing.assert_allclose(
        bones, wanted / np.linalg.norm(wanted, axis=1, keepdims=True), atol=1e-5
    )
    error = np.abs(again - stretched[0]).max()
    assert messages == [
        f"warning: {out}: bone lengths differ from the BVH hierarchy by up to 0.5; the file keeps "
        f"the hierarchy's lengths and the bone directions, so joint positions are off by up to "
        f"{error:.4g}"
    ]


def test_channels_stored_as_bytes_still_write(tmp_path):
    """h5py returns variable-length strings as bytes; the writer must accept them."""
    traj = read_bvh(bvh_file(tmp_path, chain(), ["0 0 0 30 40 50 10 20 30"]))
    traj.parameters["bvh_channels"] = np.array(
        [c.encode() for c in traj.parameters["bvh_channels"]], dtype=object
    )
    write_bvh(traj, tmp_path / "bytes.bvh")
    np.testing.assert_allclose(
        read_bvh(tmp_path / "bytes.bvh").positions, traj.positions, atol=1e-5
    )


def test_root_without_position_channels_gets_them_written(tmp_path):
    traj = read_bvh(bvh_file(tmp_path, chain(root_channels="Yrotation"), ["45 10 20 30"]))
    traj.positions = traj.positions + np.float32(3.0)  # a forecast moving the whole body
    write_bvh(traj, tmp_path / "moved.bvh")
    again = read_bvh(tmp_path / "moved.bvh")
    root_channels = "Xposition Yposition Zposition Yrotation Xrotation Zrotation"
    assert again.parameters["bvh_channels"][0] == root_channels
    np.testing.assert_allclose(again.positions, traj.positions, atol=1e-5)


# Writer refusals -----------------------------------------------------------------------------


def _molecule() -> Trajectory:
    return Trajectory(
        name="water",
        positions=np.zeros((1, 3, 3), dtype=np.float32),
        species=np.array([8, 1, 1], dtype=np.int32),
        time=np.zeros(1),
        step=np.zeros(1, dtype=np.int64),
        length_unit="Angstrom",
        time_unit="ps",
    )


def test_writer_refuses_a_trajectory_without_hierarchy(tmp_path):
    out = tmp_path / "water.bvh"
    with pytest.raises(UsageError) as info:
        write_bvh(_molecule(), out)
    assert str(info.value) == (
        f"{out}: trajectory 'water' has no BVH hierarchy (missing parameter bvh_parents); "
        "only skeletons read from BVH files can be written as BVH"
    )
    assert not out.exists()


def test_writer_refuses_existing_files_unless_overwrite_and_leaves_no_temp(tmp_path):
    traj = read_bvh(bvh_file(tmp_path, chain(), ["0 0 0 0 0 0 0 0 0"]))
    out = tmp_path / "out.bvh"
    out.write_text("keep me")
    with pytest.raises(OutputError) as info:
        write_bvh(traj, out)
    assert str(info.value) == f"{out}: exists (use --overwrite to replace it)"
    assert out.read_text() == "keep me"
    write_bvh(traj, out, overwrite=True)
    assert out.read_text().startswith("HIERARCHY\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bvh", "walk.bvh"]


def test_writer_refuses_missing_directory_and_nan_positions(tmp_path):
    traj = read_bvh(bvh_file(tmp_path, chain(), ["0 0 0 0 0 0 0 0 0"] * 2))
    missing = tmp_path / "nope" / "out.bvh"
    with pytest.raises(OutputError) as info:
        write_bvh(traj, missing)
    assert str(info.value) == f"{missing}: directory {missing.parent} does not exist"
    traj.positions[1, 2, 0] = np.nan
    with pytest.raises(UsageError) as info:
        write_bvh(traj, tmp_path / "nan.bvh")
    assert str(info.value) == f"{tmp_path / 'nan.bvh'}: cannot write non-finite positions (frame 1)"


# Bad input: one line naming the file and the problem --------------------------------------------

GOOD_ROW = "0 0 0 0 0 0 0 0 0"


@pytest.mark.parametrize(
    ("edit", "rows", "problem"),
    [
        (
            ("OFFSET 0 0 0", "OFSET 0 0 0"),
            [GOOD_ROW],
            "line 4: unexpected 'OFSET' in joint 'Hips' (expected OFFSET, CHANNELS, JOINT, End Site or '}')",
        ),
        (("HIERARCHY", "HIERACHY"), [GOOD_ROW], "line 1: expected 'HIERARCHY', got 'HIERACHY'"),
        (
            ("  }\n}\n", "  }\n"),
            [GOOD_ROW],
            "unexpected end before MOTION inside joint 'Hips' (unbalanced braces)",
        ),
        (
            ("  }\n}\n", "  }\n}\n}\n"),
            [GOOD_ROW],
            "line 16: unbalanced braces: '}' after the ROOT joint is closed",
        ),
        (
            ("CHANNELS 3 Zrotation", "CHANNELS 4 Zrotation"),
            [GOOD_ROW],
            "line 9: joint 'Chest' declares 4 channels but lists 3",
        ),
        (
            ("CHANNELS 3 Zrotation", "CHANNELS 3 Zrot"),
            [GOOD_ROW],
            "line 9: unknown channel 'Zrot' in joint 'Chest'",
        ),
        (
            ("OFFSET 0 1 0\n    CHANNELS", "OFFSET 0 1\n    CHANNELS"),
            [GOOD_ROW],
            "line 8: OFFSET of 'Chest' needs 3 finite numbers, got '0 1'",
        ),
        (("  JOINT Chest", "  JOINT"), [GOOD_ROW], "line 6: JOINT without a name"),
        (None, [GOOD_ROW, "0 0 0 0 0 0 0 0"], "line 20: expected 9 channel values, got 8"),
        (
            None,
            [GOOD_ROW, "0 0 0 0 abc 0 0 0 0"],
            "line 20: non-numeric value 'abc' in motion data",
        ),
        (None, [GOOD_ROW, "0 0 0 0 nan 0 0 0 0"], "line 20: non-finite value nan in motion data"),
        (None, ["0 0 0 0 0 0 0 -inf 0"], "line 19: non-finite value -inf in motion data"),
        (
            ("Frame Time: 0.1", "Frame Time: 0"),
            [GOOD_ROW],
            "line 18: expected a positive frame time, got '0'",
        ),
        (
            ("Frames: 1", "Frames: many"),
            [GOOD_ROW],
            "line 17: expected a positive frame count, got 'many'",
        ),
        (("Frames: 1", "Frame: 1"), [GOOD_ROW], "line 17: expected 'Frames: ...', got 'Frame: 1'"),
        (
            ("MOTION\n", "MOTON\n"),
            [GOOD_ROW],
            "line 16: expected 'MOTION' after the hierarchy, got 'MOTON'",
        ),
    ],
)
def test_malformed_files_raise_one_line_input_errors(tmp_path, edit, rows, problem):
    path = bvh_file(tmp_path, chain(), rows)
    if edit is not None:
        text = path.read_text()
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(InputError) as info:
        read_bvh(path)
    assert str(info.value) == f"{path}: {problem}"


def test_truncated_motion_names_expected_and_found_frames(tmp_path):
    path = bvh_file(tmp_path, chain(), [GOOD_ROW] * 3)
    path.write_text(path.read_text().replace("Frames: 3", "Frames: 120"))
    with pytest.raises(InputError) as info:
        read_bvh(path)
    assert str(info.value) == f"{path}: truncated BVH: expected 120 frames of 9 channels, got 3"


def test_missing_empty_and_motionless_files(tmp_path):
    missing = tmp_path / "missing.bvh"
    with pytest.raises(InputError) as info:
        read_bvh(missing)
    assert str(info.value) == f"{missing}: no such file"
    empty = tmp_path / "empty.bvh"
    empty.write_text(" \n\n")
    with pytest.raises(InputError) as info:
        read_bvh(empty)
    assert str(info.value) == f"{empty}: empty file"
    motionless = tmp_path / "motionless.bvh"
    motionless.write_text(chain())
    with pytest.raises(InputError) as info:
        read_bvh(motionless)
    assert str(info.value) == f"{motionless}: no MOTION section"


def test_stride_below_one_is_a_usage_error(tmp_path):
    path = bvh_file(tmp_path, chain(), [GOOD_ROW])
    with pytest.raises(UsageError) as info:
        read_bvh(path, stride=0)
    assert str(info.value) == "--stride must be at least 1 (got 0)"


def test_forward_kinematics_is_vectorised_over_frames(rng):
    """Frames are independent: FK of a stack equals FK frame by frame."""
    skeleton = random_skeleton(rng, 12)
    motion = random_motion(rng, skeleton, 8)
    stacked = forward_kinematics(skeleton, motion)
    single = np.stack([forward_kinematics(skeleton, motion[f : f + 1])[0] for f in range(8)])
    np.testing.assert_allclose(stacked, single, atol=1e-12)


def test_ingest_to_h5md_then_export_reproduces_positions(tmp_path, rng):
    """BVH -> H5MD -> BVH -> positions: the hierarchy survives the container (strings as vlen)."""
    from dynforecast.io.h5md import read_h5md, write_h5md

    traj = read_bvh(_random_file(tmp_path, rng, joints=21, frames=30))
    write_h5md(tmp_path / "walk.h5", [traj])
    (stored,) = read_h5md(tmp_path / "walk.h5")
    write_bvh(stored, tmp_path / "export.bvh")
    again = read_bvh(tmp_path / "export.bvh")
    scale = np.abs(traj.positions).max()
    np.testing.assert_allclose(again.positions, traj.positions, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(again.time, traj.time, rtol=1e-6)
    assert again.names == traj.names


def test_blank_lines_around_the_motion_header_are_skipped(tmp_path):
    path = bvh_file(tmp_path, chain(), ["1 2 3 0 0 0 0 0 0", "0 0 0 0 0 0 0 0 abc"])
    text = (
        path.read_text()
        .replace("MOTION\n", "MOTION\n\n")
        .replace("Frame Time: 0.1\n", "Frame Time: 0.1\n\n")
    )
    path.write_text(text)
    with pytest.raises(InputError) as info:  # line numbers still count the blank lines
        read_bvh(path)
    assert str(info.value) == f"{path}: line 22: non-numeric value 'abc' in motion data"
    path.write_text(text.replace("abc", "0"))
    np.testing.assert_allclose(read_bvh(path).positions[0, 0], [1, 2, 3])


def test_zero_length_and_collinear_children_are_inverted_exactly(tmp_path, rng):
    """Real files have zero OFFSETs (CMU's hip joints) and joints whose children line up."""
    hierarchy = (
        "HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 6 " + ROOT6 + "\n"
        "  JOINT HipJoint\n  {\n    OFFSET 0 0 0\n    CHANNELS 3 " + XYZ + "\n"
        "    JOINT Thigh\n    {\n      OFFSET 2 -1 0\n      CHANNELS 3 " + ZXY + "\n"
        "      End Site\n      {\n        OFFSET 0 -4 0\n      }\n    }\n  }\n"
        "  JOINT Spine\n  {\n    OFFSET 0 1 0\n    CHANNELS 3 " + ZXY + "\n"
        "    End Site\n    {\n      OFFSET 0 2 0\n    }\n  }\n"
        "  JOINT Tail\n  {\n    OFFSET 0 -3 0\n    CHANNELS 3 " + ZXY + "\n"
        "    End Site\n    {\n      OFFSET 1 0 0\n    }\n  }\n}\n"
    )
    rows = [" ".join(f"{v:.4f}" for v in rng.uniform(-170, 170, size=18)) for _ in range(10)]
    traj = read_bvh(bvh_file(tmp_path, hierarchy, rows))
    assert traj.names == [
        "Hips", "HipJoint", "Thigh", "Thigh_end", "Spine", "Spine_end", "Tail", "Tail_end"
    ]  # fmt: skip
    write_bvh(traj, tmp_path / "out.bvh")
    np.testing.assert_allclose(read_bvh(tmp_path / "out.bvh").positions, traj.positions, atol=1e-4)


def test_writer_refuses_unknown_channels_in_parameters(tmp_path):
    traj = read_bvh(bvh_file(tmp_path, chain(), [GOOD_ROW]))
    traj.parameters["bvh_channels"] = np.array(["Xposition Wrotation", "", ""], dtype=object)
    with pytest.raises(UsageError) as info:
        write_bvh(traj, tmp_path / "out.bvh")
    assert (
        str(info.value) == f"{tmp_path / 'out.bvh'}: unknown BVH channel 'Wrotation' in parameters"
    )
