"""Write a `Trajectory` back to a source format chosen by the output's extension.

Used by ``predict --export``: .pdb (io/pdb.py), .xyz/.extxyz (io/xyz.py), .bvh (io/bvh.py,
imported only when asked for, as it belongs to the skeleton side).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynforecast.errors import OutputError, UsageError
from dynforecast.io.atomic import check_output_path
from dynforecast.io.inputs import extension_of
from dynforecast.io.trajectory import Trajectory

EXPORT_EXTENSIONS = (".pdb", ".xyz", ".extxyz", ".bvh", ".amc")


def check_export_target(
    path: str | Path, *, overwrite: bool, trajectory: Trajectory | None = None
) -> None:
    """Refuse an unknown export extension (UsageError, exit 2) or an unusable output path
    (OutputError, exit 4) before any work is done.

    With ``trajectory`` (the data a forecast will extend: same particles, names and parameters)
    the format's own preconditions are checked too (`check_exportable`), so that ``predict``
    fails before it writes its H5MD output rather than leaving it behind.
    """
    path = Path(path)
    extension = extension_of(path)
    if extension not in EXPORT_EXTENSIONS:  # a bad option value, as -o out.pdb or --plot x.jpg
        raise UsageError(
            f"{path}: unknown export extension {extension or '(none)'!r} "
            f"(supported: {', '.join(EXPORT_EXTENSIONS)})"
        )
    check_output_path(path, overwrite=overwrite)
    if trajectory is not None:
        check_exportable(trajectory, path)


def check_exportable(trajectory: Trajectory, path: str | Path) -> None:
    """The preconditions of writing ``trajectory``'s kind of data to ``path``'s format.

    Every format needs particles; BVH needs the skeleton hierarchy that a BVH input recorded
    (UsageError otherwise, as `io.bvh.write_bvh` would raise after the rollout). Conditions on
    the frames themselves (finite values, PDB's coordinate columns) can only be checked when
    the frames exist, in `export_trajectory`.
    """
    path = Path(path)
    if trajectory.n_particles == 0:
        raise OutputError(f"{path}: nothing to write (no particles)")
    if extension_of(path) == ".amc" or (
        extension_of(path) == ".bvh" and "asf_text" in trajectory.parameters
    ):
        from dynforecast.io.amc_write import skeleton_of

        skeleton_of(trajectory, path)
    if extension_of(path) == ".bvh" and "asf_text" in trajectory.parameters:
        return  # written from its ASF skeleton (io/asf_bvh.py), checked above
    if extension_of(path) == ".bvh":
        from dynforecast.io.bvh import _writable, skeleton_from_trajectory

        _writable(skeleton_from_trajectory(trajectory, path))


def export_trajectory(
    trajectory: Trajectory,
    path: str | Path,
    overwrite: bool = False,
    *,
    is_forecast: np.ndarray | None = None,
    bfactors: np.ndarray | None = None,
) -> None:
    """Write ``trajectory`` to ``path`` in the format its extension names, atomically.

    Non-finite positions (a diverged forecast) are refused for every format, as the BVH writer
    does: no format can represent them and a reader would fail later with a worse message.
    ``is_forecast`` [F] (1 = predicted frame) is written where the format has a place for it
    (a PDB REMARK naming the forecast MODELs).
    """
    path = Path(path)
    extension = extension_of(path)
    finite = np.isfinite(trajectory.positions).reshape(trajectory.n_frames, -1).all(axis=1)
    if not finite.all():
        frame = int(np.flatnonzero(~finite)[0])
        raise UsageError(f"{path}: cannot write non-finite positions (frame {frame})")
    if extension == ".bvh":
        check_bvh_frame_times(trajectory, path)
    if extension == ".pdb":
        from dynforecast.io.pdb import write_pdb

        write_pdb(trajectory, path, overwrite=overwrite, is_forecast=is_forecast, bfactors=bfactors)
    elif extension in (".xyz", ".extxyz"):
        from dynforecast.io.xyz import write_xyz

        write_xyz(trajectory, path, overwrite=overwrite)
    elif extension == ".amc":
        from dynforecast.io.amc_write import write_amc

        write_amc(trajectory, path, overwrite=overwrite)
    elif extension == ".bvh" and "asf_text" in trajectory.parameters:
        from dynforecast.io.asf_bvh import write_asf_bvh

        write_asf_bvh(trajectory, path, overwrite=overwrite)
    elif extension == ".bvh":
        from dynforecast.io.bvh import write_bvh

        write_bvh(trajectory, path, overwrite=overwrite)
    else:
        check_export_target(path, overwrite=overwrite)  # raises: the extension is unknown


#: Relative tolerance on frame spacings counted as equal (float64 times of float32-era files).
SPACING_TOLERANCE = 1e-6


def check_bvh_frame_times(trajectory: Trajectory, path: Path) -> None:
    """A BVH file has ONE ``Frame Time``: refuse unevenly spaced frames, explain a changed rate.

    Uneven frames (e.g. a forecast whose given frames are spaced otherwise than its predicted
    ones) would need resampling, which would invent frames: UsageError, nothing is written. Even
    frames spaced otherwise than the source BVH's Frame Time (a forecast steps by the model's
    frame spacing, gcd(spacing, horizon) input frames, and its given frames are written at that
    spacing too) are written at their real spacing, with a note on stderr saying so and why.
    """
    from dynforecast.console import log

    if trajectory.n_frames < 2:
        return
    steps = np.diff(np.asarray(trajectory.time, dtype=np.float64))
    unit = "" if trajectory.time_unit == "1" else f" {trajectory.time_unit}"
    if not np.allclose(steps, steps[0], rtol=SPACING_TOLERANCE, atol=0.0) or steps[0] <= 0:
        raise UsageError(
            f"{path}: frames are spaced {steps.min():.6g} to {steps.max():.6g}{unit} apart, and "
            "a BVH file holds one Frame Time; writing them would need resampling, which would "
            "invent frames (not done); the H5MD output keeps every frame's time"
        )
    source = trajectory.parameters.get(
        "bvh_frame_time", trajectory.parameters.get("amc_frame_time")
    )
    if source is None or trajectory.time_unit not in ("s", "1"):
        return
    recorded = float(np.asarray(source, dtype=np.float64).ravel()[0])
    ratio = float(steps[0]) / recorded if recorded > 0 else 1.0
    if abs(ratio - 1.0) > SPACING_TOLERANCE:
        log(
            f"note: {path}: Frame Time {steps[0]:.6g} s, {ratio:.6g} x the source's "
            f"{recorded:.6g} s ({1 / steps[0]:.4g} instead of {1 / recorded:.4g} frames per "
            "second): the frames are that far apart (a forecast steps by the model's frame "
            "spacing, and a BVH holds one frame time, so its given frames are written at that "
            "spacing too); no frame is interpolated"
        )
