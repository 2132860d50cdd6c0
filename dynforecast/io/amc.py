"""Read Acclaim AMC motion files (with their ASF skeleton) as global bone-tip positions.

An AMC file is a header (``#`` comments, ``:FULLY-SPECIFIED``, ``:DEGREES`` or ``:RADIANS``)
followed by frames: a frame number on its own line, then one line per animated bone, its name
and its values in the ASF's dof order (the root's in its ``order``). Every bone with dofs must
appear once in every frame; unknown bones, wrong value counts and non-numeric values are an
`InputError` naming the file and line.

Particles are the ASF root and bone tips (`io.asf`), bonds the ``:hierarchy``. Positions keep
the ASF's length unit (recorded as "1": CMU's ``:units length 0.45`` means one unit is
1/0.45 inch, kept in the parameter ``asf_length_scale``). AMC files store no frame rate: times
assume CMU's 120 frames per second unless ``--time-step`` replaces them. Parameters keep the
ASF text unchanged and the AMC's header and bone order, for writing AMC files back.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from dynforecast.errors import InputError, UsageError
from dynforecast.io.asf import AsfSkeleton, parse_asf
from dynforecast.io.asf_kinematics import forward_kinematics
from dynforecast.io.inputs import check_input_file
from dynforecast.io.notes import IngestNote
from dynforecast.io.stream import FrameChunk, StreamedSystem, empty_frames
from dynforecast.io.trajectory import Trajectory

#: CMU's capture rate (frames per second), the default when nothing else is known.
CMU_FRAME_RATE = 120.0
ASF_EXTENSIONS = (".asf",)
AMC_EXTENSIONS = (".amc",)
_HEADER_KEYS = (":fully-specified", ":degrees", ":radians")


def _text(path: Path) -> tuple[str, str]:
    raw = check_input_file(path).read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: empty file")
    return raw.decode("utf-8", errors="replace"), hashlib.sha256(raw).hexdigest()


def parse_amc(text: str, path: Path, skeleton: AsfSkeleton) -> tuple[np.ndarray, np.ndarray, dict]:
    """AMC values float64 [F, D] (ASF dof order), frame numbers int64 [F] and header facts."""
    lines = text.splitlines()
    header: list[str] = []
    degrees = skeleton.angle_unit == "deg"
    index = {name: i for i, name in enumerate(skeleton.names)}
    body_start = len(lines)
    for number, raw in enumerate(lines):
        token = raw.strip()
        if not token or token.startswith("#"):
            header.append(raw)
            continue
        if token.startswith(":"):
            key = token.split()[0].lower()
            if key not in _HEADER_KEYS:
                raise InputError(f"{path}: line {number + 1}: unknown AMC keyword {token!r}")
            degrees = {":degrees": True, ":radians": False}.get(key, degrees)
            header.append(raw)
            continue
        body_start = number
        break
    tokens = [line.split() for line in lines[body_start:]]
    numbers = [n for n, t in enumerate(tokens) if t]
    is_frame = np.array([len(tokens[n]) == 1 and tokens[n][0].isdigit() for n in numbers])
    if not is_frame.any():
        raise InputError(f"{path}: no frames (a frame starts with its number on its own line)")
    if not is_frame[0]:
        line = body_start + numbers[0] + 1
        raise InputError(
            f"{path}: line {line}: expected a frame number, got {tokens[numbers[0]][0]!r}"
        )
    frame_of = np.cumsum(is_frame) - 1
    n_frames = int(is_frame.sum())
    frame_numbers = np.array(
        [int(tokens[n][0]) for n, f in zip(numbers, is_frame, strict=True) if f], dtype=np.int64
    )
    if np.any(np.diff(frame_numbers) <= 0):
        bad = int(np.flatnonzero(np.diff(frame_numbers) <= 0)[0]) + 1
        raise InputError(
            f"{path}: frame number {frame_numbers[bad]} does not follow {frame_numbers[bad - 1]}"
        )
    motion = np.zeros((n_frames, skeleton.n_dofs))
    seen = np.zeros((n_frames, skeleton.n_particles), dtype=np.int64)
    bone_order: list[str] = []
    for n, frame_line, frame in zip(
        numbers, is_frame, frame_of, strict=True
    ):  # text lines: parsed once each
        if frame_line:
            continue
        line = body_start + n + 1
        name, *values = tokens[n]
        bone = index.get(name)
        if bone is None:
            raise InputError(f"{path}: line {line}: unknown bone {name!r} (not in the ASF)")
        dofs = skeleton.dofs[bone]
        if len(values) != len(dofs):
            raise InputError(
                f"{path}: line {line}: bone {name!r} has {len(dofs)} dof "
                f"({' '.join(dofs) or 'none'}) but {len(values)} values"
            )
        try:
            row = np.array(values, dtype=np.float64)
        except ValueError:
            raise InputError(f"{path}: line {line}: non-numeric value for bone {name!r}") from None
        if not np.isfinite(row).all():
            raise InputError(f"{path}: line {line}: non-finite value for bone {name!r}")
        if seen[frame, bone]:
            raise InputError(f"{path}: line {line}: bone {name!r} given twice in one frame")
        seen[frame, bone] = 1
        start = int(skeleton.dof_starts[bone])
        motion[frame, start : start + len(dofs)] = row
        if frame == 0:
            bone_order.append(name)
    animated = np.array([len(d) > 0 for d in skeleton.dofs])
    missing = np.argwhere((seen == 0) & animated[None, :])
    if missing.size:
        frame, bone = (int(v) for v in missing[0])
        raise InputError(
            f"{path}: frame {frame_numbers[frame]} has no values for bone "
            f"{skeleton.names[bone]!r} (every bone with dof must appear in every frame)"
        )
    return motion, frame_numbers, {"header": header, "degrees": degrees, "bones": bone_order}


def open_amc(
    path: Path, *, asf: Path, name: str, stride: int = 1, select: str | None = None
) -> StreamedSystem:
    """An AMC file with its ASF skeleton as a one-chunk stream of bone-tip positions."""
    if stride < 1:
        raise UsageError(f"--stride must be at least 1 (got {stride})")
    if select is not None:
        raise UsageError("--select is not supported on ASF/AMC inputs")
    asf_text, _ = _text(Path(asf))
    skeleton, notes = parse_asf(asf_text, Path(asf))
    amc_text, checksum = _text(Path(path))
    motion, frame_numbers, facts = parse_amc(amc_text, Path(path), skeleton)
    kept = np.arange(0, motion.shape[0], stride)
    tips, _ = forward_kinematics(skeleton, motion[kept], degrees=facts["degrees"])
    step = frame_numbers[kept] - frame_numbers[0]
    frame_time = 1.0 / CMU_FRAME_RATE
    notes = [
        *notes,
        IngestNote(
            "assumed_frame_rate",
            int(kept.size),
            "AMC files store no frame rate; times assume CMU's 120 frames/s "
            "unless --time-step was given",
        ),
    ]
    child = np.flatnonzero(skeleton.parents >= 0)
    parameters = {
        "asf_text": np.array([asf_text], dtype=object),
        "asf_source": str(asf),
        "asf_length_scale": np.array([skeleton.length_scale]),
        "amc_header": np.array(facts["header"] or [""], dtype=object),
        "amc_bones": np.array(facts["bones"] or [""], dtype=object),
        "amc_degrees": np.array([int(facts["degrees"])], dtype=np.int8),
        "amc_first_frame": np.array([int(frame_numbers[0])], dtype=np.int64),
        "amc_frame_time": np.array([frame_time]),
    }
    header = Trajectory(
        name=name,
        species=np.zeros(skeleton.n_particles, dtype=np.int32),
        length_unit="1",
        time_unit="s",
        bonds=np.stack([skeleton.parents[child], child], axis=1).astype(np.int32),
        names=list(skeleton.names),
        parameters=parameters,
        source=str(path),
        checksum=checksum,
        **empty_frames(skeleton.n_particles),
    )
    header.validate()
    chunk = FrameChunk(
        positions=tips.astype(np.float32), time=step * frame_time, step=step.astype(np.int64)
    )
    header = dataclasses.replace(header)
    return StreamedSystem(header=header, has_velocities=False, chunks=iter([chunk]), notes=notes)


def pair_skeletons(
    paths: list[Path], topology: str | Path | None
) -> list[tuple[Path, Path | None]]:
    """Inputs with the topology each is read with: an ``.asf`` input is the skeleton of the
    ``.amc`` inputs after it (``ingest skel.asf walk.amc run.amc``); ``--topology skel.asf``
    is that of every AMC input. An ASF with no AMC after it is an InputError.
    """
    pairs: list[tuple[Path, Path | None]] = []
    skeleton: Path | None = None
    waiting: Path | None = None
    for path in paths:
        extension = path.suffix.lower()
        if extension in ASF_EXTENSIONS:
            if waiting is not None:
                raise InputError(f"{waiting}: an ASF skeleton needs AMC motion files after it")
            skeleton = waiting = path
        elif extension in AMC_EXTENSIONS and skeleton is not None:
            pairs.append((path, skeleton))
            waiting = None
        else:
            pairs.append((path, None if topology is None else Path(topology)))
    if waiting is not None:
        raise InputError(
            f"{waiting}: an ASF file is a skeleton (no frames); give AMC motion files after it: "
            f"ingest {waiting} MOTION.amc"
        )
    return pairs
