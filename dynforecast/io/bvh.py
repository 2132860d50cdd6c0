"""BVH motion capture files <-> `Trajectory`: read with forward kinematics, write with inverse.

Reading turns a BVH file into global joint positions (forward kinematics, conventions in
`dynforecast.io.bvh_kinematics`). Particles are the joints in file order followed in place by
their end sites, which become particles named ``<parent>_end``, or ``<name>`` for an
``End Site <name>`` (species 0), so that the skeleton's tips move too. ``--select`` keeps
whole subtrees (`select_joints`). Bones are parent->child pairs. BVH has no length unit, so ``length_unit`` is "1"
(the file's own unit, often cm); time is in seconds from ``Frame Time``.

The hierarchy travels in ``Trajectory.parameters`` so that `write_bvh` can rebuild the file:

    bvh_parents     int32 [J]    parent particle index, -1 for the root
    bvh_offsets     float64 [J, 3]  OFFSET of each joint / end site
    bvh_channels    object [J]   channel names per joint, space separated ("" for end sites)
    bvh_end_site    int8 [J]     1 where the particle is an End Site
    bvh_frame_time  float64 [1]  the file's Frame Time (s), before any stride; ingest
                                 --time-step replaces it (io/ingest.py)

Writing needs positions only (e.g. a forecast): joint rotations come from inverse kinematics
(`dynforecast.io.bvh_inverse`) and are written as Euler angles in each joint's recorded channel
order, so read -> write -> read gives the positions back to float32 precision. Channels are
completed where the recorded ones cannot express the pose: the root always gets X/Y/Zposition,
a joint with some position channels gets all three, and every joint gets three distinct rotation
axes (recorded order first, missing axes appended in X, Y, Z order).

A rotation-only BVH keeps the hierarchy's bone lengths. When the positions stretch bones (a
forecast drifting), the written file keeps the bone directions and a warning on stderr gives the
largest bone-length deviation and the resulting largest position error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np

from dynforecast.console import log
from dynforecast.errors import InputError, UsageError
from dynforecast.io.atomic import atomic_output, check_output_path
from dynforecast.io.bvh_inverse import bone_length_deviation, inverse_kinematics
from dynforecast.io.bvh_kinematics import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    BvhSkeleton,
    euler_angles,
    forward_kinematics,
)
from dynforecast.io.bvh_parse import parse_bvh
from dynforecast.io.inputs import check_input_file
from dynforecast.io.notes import IngestNote
from dynforecast.io.selection import Particles
from dynforecast.io.selection import select as select_particles
from dynforecast.io.stream import FrameChunk, StreamedSystem, empty_frames
from dynforecast.io.trajectory import Trajectory

#: Seconds per unit of `Trajectory.time_unit`, to turn frame spacing into a Frame Time.
_SECONDS = {"s": 1.0, "ps": 1e-12, "fs": 1e-15, "1": 1.0}
_PARAMETER_KEYS = ("bvh_parents", "bvh_offsets", "bvh_channels", "bvh_end_site")


def _read_text(path: Path) -> tuple[str, str, list[IngestNote]]:
    """The file's text, SHA-256 and notes; InputError for missing, unreadable or empty files."""
    raw = check_input_file(path).read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    notes = []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = raw.decode("latin-1")  # old exporters write Latin-1 joint names
        notes.append(
            IngestNote(
                "reinterpreted_encoding",
                1,
                f"not UTF-8 (byte {exc.start}); read as Latin-1, which names joints as "
                "old exporters wrote them",
            )
        )
    return text, hashlib.sha256(raw).hexdigest(), notes


def _system_name(path: Path) -> str:
    """The file stem with characters H5MD group names avoid replaced by '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "bvh"


def skeleton_parameters(skeleton: BvhSkeleton, frame_time: float) -> dict[str, np.ndarray]:
    """The ``bvh_*`` entries of `Trajectory.parameters` that describe ``skeleton``."""
    return {
        "bvh_parents": skeleton.parents.astype(np.int32),
        "bvh_offsets": skeleton.offsets.astype(np.float64),
        "bvh_channels": np.array([" ".join(c) for c in skeleton.channels], dtype=object),
        "bvh_end_site": skeleton.end_site.astype(np.int8),
        "bvh_frame_time": np.array([frame_time], dtype=np.float64),
    }


def _as_strings(value: object) -> list[str]:
    """Strings from an object/str/bytes array (h5py hands back bytes)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]


def skeleton_from_trajectory(traj: Trajectory, path: Path) -> BvhSkeleton:
    """Rebuild the hierarchy from ``traj.parameters``; UsageError naming ``path`` if absent."""
    params = traj.parameters
    missing = [key for key in _PARAMETER_KEYS if key not in params]
    if missing:
        raise UsageError(
            f"{path}: trajectory {traj.name!r} has no BVH hierarchy (missing parameter "
            f"{missing[0]}); only skeletons read from BVH files can be written as BVH"
        )
    parents = np.asarray(params["bvh_parents"], dtype=np.int64).ravel()
    joints = parents.size
    if joints != traj.n_particles:
        raise UsageError(
            f"{path}: the BVH hierarchy has {joints} joints but trajectory {traj.name!r} "
            f"has {traj.n_particles} particles"
        )
    names = list(traj.names) or [f"joint{j}" for j in range(joints)]
    channels = tuple(tuple(c.split()) for c in _as_strings(params["bvh_channels"]))
    unknown = {c for joint in channels for c in joint} - {*POSITION_CHANNELS, *ROTATION_CHANNELS}
    if unknown:
        raise UsageError(f"{path}: unknown BVH channel {sorted(unknown)[0]!r} in parameters")
    try:
        return BvhSkeleton(
            names=tuple(names),
            parents=parents,
            offsets=np.asarray(params["bvh_offsets"], dtype=np.float64).reshape(joints, 3),
            channels=channels,
            end_site=np.asarray(params["bvh_end_site"]).ravel().astype(bool),
        )
    except ValueError as exc:
        raise UsageError(f"{path}: inconsistent BVH hierarchy in parameters: {exc}") from None


def read_bvh(
    path: Path, *, name: str | None = None, stride: int = 1, select: str | None = None
) -> Trajectory:
    """Read a BVH file as global joint (and end-site) positions over frames.

    ``stride`` keeps every stride-th frame; ``time`` and ``step`` keep the original frame
    indices (time = index * Frame Time). ``select`` (`io.selection`: name, index) keeps some
    joints; it must keep the parent of every joint it keeps, so that the kept joints form a
    BVH hierarchy of their own (whole subtrees dropped) that moves as in the file. Raises
    InputError naming the file (and line) for missing, empty, truncated or malformed files,
    UsageError for a stride below 1 or a bad selection. What the parser dropped is not
    reported here; `open_bvh` returns it as notes.
    """
    return _read(Path(path), name=name, stride=stride, select=select)[0]


def open_bvh(
    path: Path, *, name: str, stride: int = 1, select: str | None = None
) -> StreamedSystem:
    """`read_bvh` as a one-chunk stream for `ingest`, with the parser's notes."""
    whole, notes = _read(Path(path), name=name, stride=stride, select=select)
    header = dataclasses.replace(whole, velocities=None, **empty_frames(whole.n_particles))
    chunk = FrameChunk(positions=whole.positions, time=whole.time, step=whole.step)
    return StreamedSystem(header=header, has_velocities=False, chunks=iter([chunk]), notes=notes)


def _read(
    path: Path, *, name: str | None, stride: int, select: str | None
) -> tuple[Trajectory, list[IngestNote]]:
    if stride < 1:
        raise UsageError(f"--stride must be at least 1 (got {stride})")
    text, checksum, notes = _read_text(path)
    parsed = parse_bvh(text, path)
    notes += parsed.notes
    skeleton = parsed.skeleton
    frames = np.arange(0, parsed.motion.shape[0], stride, dtype=np.int64)
    positions = forward_kinematics(skeleton, parsed.motion[frames])
    parameters = skeleton_parameters(skeleton, parsed.frame_time)
    if select is not None:
        kept = select_joints(skeleton, select)
        skeleton, positions = subset_skeleton(skeleton, kept), positions[:, kept]
        parameters = skeleton_parameters(skeleton, parsed.frame_time)
        parameters["selection"] = select
    child = np.flatnonzero(skeleton.parents >= 0)
    traj = Trajectory(
        name=name or _system_name(path),
        positions=positions.astype(np.float32),
        species=np.zeros(skeleton.n_joints, dtype=np.int32),
        time=frames * parsed.frame_time,
        step=frames,
        length_unit="1",
        time_unit="s",
        bonds=np.stack([skeleton.parents[child], child], axis=1).astype(np.int32),
        names=list(skeleton.names),
        parameters=parameters,
        source=str(path),
        checksum=checksum,
    )
    traj.validate()
    return traj, notes


def select_joints(skeleton: BvhSkeleton, select: str) -> np.ndarray:
    """int64 [K] joints (end sites included) that ``select`` keeps, parents of each included.

    A joint kept without its parent would have no place in a hierarchy: its motion depends on
    the rotations of the joints between it and the root. Such selections are a UsageError
    naming the first orphan and its parent.
    """
    particles = Particles(skeleton.names, None, what="joints", reader="BVH")
    kept = select_particles(select, particles)
    mask = np.zeros(skeleton.n_joints, dtype=bool)
    mask[kept] = True
    parents = skeleton.parents[kept]
    orphans = np.flatnonzero((parents >= 0) & ~mask[np.maximum(parents, 0)])
    if orphans.size:
        joint = int(kept[orphans[0]])
        parent = int(skeleton.parents[joint])
        raise UsageError(
            f"--select {select!r}: keeps joint {skeleton.names[joint]!r} but not its parent "
            f"{skeleton.names[parent]!r}; a BVH selection keeps whole subtrees from the root "
            "(e.g. 'not name LeftHand' drops the hand and every joint below it)"
        )
    return kept


def subset_skeleton(skeleton: BvhSkeleton, kept: np.ndarray) -> BvhSkeleton:
    """The hierarchy of the joints ``kept`` (int [K], sorted, parent-closed), renumbered."""
    new_index = np.full(skeleton.n_joints, -1, dtype=np.int64)
    new_index[kept] = np.arange(kept.size)
    parents = skeleton.parents[kept]
    return BvhSkeleton(
        names=tuple(skeleton.names[j] for j in kept),
        parents=np.where(parents >= 0, new_index[np.maximum(parents, 0)], -1),
        offsets=skeleton.offsets[kept],
        channels=tuple(skeleton.channels[j] for j in kept),
        end_site=skeleton.end_site[kept],
    )


def _writable(skeleton: BvhSkeleton) -> BvhSkeleton:
    """The hierarchy with channels completed so that any pose can be written (module docstring)."""
    channels = []
    for j, recorded in enumerate(skeleton.channels):
        if skeleton.end_site[j]:
            channels.append(())
            continue
        positions = [c for c in recorded if c in POSITION_CHANNELS]
        rotations = list(dict.fromkeys(c for c in recorded if c in ROTATION_CHANNELS))
        positions_ok = len(positions) == 3 or (not positions and skeleton.parents[j] >= 0)
        if positions_ok and len(rotations) == 3 and len(recorded) == len(positions) + 3:
            channels.append(tuple(recorded))
            continue
        if positions or skeleton.parents[j] < 0:
            positions = positions + [c for c in POSITION_CHANNELS if c not in positions]
        rotations = rotations + [c for c in ROTATION_CHANNELS if c not in rotations]
        channels.append(tuple(positions + rotations))
    return BvhSkeleton(
        names=skeleton.names,
        parents=skeleton.parents,
        offsets=skeleton.offsets,
        channels=tuple(channels),
        end_site=skeleton.end_site,
    )


def encode_motion(skeleton: BvhSkeleton, positions: np.ndarray) -> np.ndarray:
    """Motion channels float64 [F, C] that place a `_writable` ``skeleton`` at ``positions``.

    Shapes: positions [F, J, 3] -> [F, C].
    """
    motion = inverse_kinematics(skeleton, positions)
    frames, joints = positions.shape[:2]
    columns, axes = skeleton.rotation_columns  # three rotation channels per non-end joint
    moving = np.flatnonzero(~skeleton.end_site)
    values = np.zeros((frames, joints, 6))  # per joint: X/Y/Z translation, 3 Euler angles
    values[:, :, :3] = motion.translations
    values[:, moving, 3:] = euler_angles(motion.rotations[:, moving], axes[moving, :3])
    source_joint = np.empty(skeleton.n_channels, dtype=np.int64)
    source_slot = np.empty(skeleton.n_channels, dtype=np.int64)
    for j in moving:  # static channel layout: a loop over joints, not frames
        position_cols = skeleton.position_columns[j]
        present = position_cols >= 0
        source_joint[position_cols[present]] = j
        source_slot[position_cols[present]] = np.flatnonzero(present)
        source_joint[columns[j, :3]] = j
        source_slot[columns[j, :3]] = [3, 4, 5]
    return values[:, source_joint, source_slot]


def _hierarchy_text(skeleton: BvhSkeleton) -> list[str]:
    """HIERARCHY lines, tab-indented, End Sites in place."""
    lines = ["HIERARCHY"]
    open_joints: list[int] = []

    def close_until(parent: int) -> None:
        while open_joints and open_joints[-1] != parent:
            open_joints.pop()
            lines.append("\t" * len(open_joints) + "}")

    for j in range(skeleton.n_joints):
        close_until(int(skeleton.parents[j]))
        indent = "\t" * len(open_joints)
        offset = " ".join(f"{v:.6f}" for v in skeleton.offsets[j])
        if skeleton.end_site[j]:
            lines += [f"{indent}End Site", f"{indent}{{", f"{indent}\tOFFSET {offset}"]
            lines.append(f"{indent}}}")
            continue
        keyword = "ROOT" if skeleton.parents[j] < 0 else "JOINT"
        channels = skeleton.channels[j]
        lines += [f"{indent}{keyword} {skeleton.names[j]}", f"{indent}{{"]
        lines += [
            f"{indent}\tOFFSET {offset}",
            f"{indent}\tCHANNELS {len(channels)} " + " ".join(channels),
        ]
        open_joints.append(j)
    close_until(-1)
    return lines


def format_bvh(skeleton: BvhSkeleton, motion: np.ndarray, frame_time: float) -> str:
    """BVH file text for ``skeleton`` and its motion channels float [F, C] (6 decimals)."""
    frames, n_channels = motion.shape
    if n_channels != skeleton.n_channels:
        raise ValueError(f"expected {skeleton.n_channels} motion channels (got {n_channels})")
    lines = _hierarchy_text(skeleton)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time:.9g}"]
    row = " ".join(["%.6f"] * n_channels) + "\n"
    body = (row * frames) % tuple(motion.ravel().tolist())  # one C-level formatting call
    return "\n".join(lines) + "\n" + body


def _frame_time(traj: Trajectory, path: Path) -> float:
    """Seconds between frames: from ``traj.time``, or the recorded Frame Time for one frame."""
    if traj.n_frames > 1:
        seconds = traj.time_step * _SECONDS.get(traj.time_unit, 1.0)
    else:
        seconds = float(np.asarray(traj.parameters.get("bvh_frame_time", [1 / 30])).ravel()[0])
    if not (np.isfinite(seconds) and seconds > 0):
        raise UsageError(f"{path}: frame spacing must be positive (got {seconds} s)")
    return seconds


def write_bvh(traj: Trajectory, path: Path, *, overwrite: bool = False) -> None:
    """Write ``traj`` (a skeleton read by `read_bvh`, or a forecast of one) as a BVH file.

    Joint rotations come from inverse kinematics; see the module docstring for how channels are
    completed and what happens when bones are stretched. Raises UsageError if ``traj`` has no
    BVH hierarchy or non-finite positions, OutputError if ``path`` exists (without
    ``overwrite``) or cannot be written.
    """
    path = Path(path)
    check_output_path(path, overwrite=overwrite)  # before the work, not only at the rename
    skeleton = _writable(skeleton_from_trajectory(traj, path))
    positions = np.asarray(traj.positions, dtype=np.float64)
    finite = np.isfinite(positions).all(axis=(1, 2))
    if not finite.all():
        frame = int(np.flatnonzero(~finite)[0])
        raise UsageError(f"{path}: cannot write non-finite positions (frame {frame})")
    frame_time = _frame_time(traj, path)
    motion = encode_motion(skeleton, positions)
    _warn_if_stretched(skeleton, positions, motion, path)

    text = format_bvh(skeleton, motion, frame_time)
    with atomic_output(path, overwrite=overwrite) as scratch:
        scratch.write_text(text, encoding="utf-8")


def _warn_if_stretched(
    skeleton: BvhSkeleton, positions: np.ndarray, motion: np.ndarray, path: Path
) -> None:
    """Log the bone-length deviation when the written file cannot reproduce ``positions``."""
    deviation = bone_length_deviation(skeleton, positions)
    scale = max(float(np.abs(positions).max()), float(np.abs(skeleton.offsets).max()), 1e-12)
    if deviation <= 1e-5 * scale:
        return
    error = float(np.abs(forward_kinematics(skeleton, motion) - positions).max())
    log(
        f"warning: {path}: bone lengths differ from the BVH hierarchy by up to {deviation:.4g}; "
        f"the file keeps the hierarchy's lengths and the bone directions, so joint positions "
        f"are off by up to {error:.4g}"
    )
