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

EXPORT_EXTENSIONS = (".pdb", ".xyz", ".extxyz", ".bvh")


def check_export_target(path: str | Path, *, overwrite: bool) -> None:
    """Refuse an unknown export extension or an unusable output path before any work is done."""
    path = Path(path)
    extension = extension_of(path)
    if extension not in EXPORT_EXTENSIONS:
        raise OutputError(
            f"{path}: unknown export extension {extension or '(none)'!r} "
            f"(supported: {', '.join(EXPORT_EXTENSIONS)})"
        )
    check_output_path(path, overwrite=overwrite)


def export_trajectory(
    trajectory: Trajectory,
    path: str | Path,
    overwrite: bool = False,
    *,
    bfactors: np.ndarray | None = None,
) -> None:
    """Write ``trajectory`` to ``path`` in the format its extension names, atomically.

    Non-finite positions (a diverged forecast) are refused for every format, as the BVH writer
    does: no format can represent them and a reader would fail later with a worse message.
    """
    path = Path(path)
    extension = extension_of(path)
    finite = np.isfinite(trajectory.positions).reshape(trajectory.n_frames, -1).all(axis=1)
    if not finite.all():
        frame = int(np.flatnonzero(~finite)[0])
        raise UsageError(f"{path}: cannot write non-finite positions (frame {frame})")
    if extension == ".pdb":
        from dynforecast.io.pdb import write_pdb

        write_pdb(trajectory, path, overwrite=overwrite, bfactors=bfactors)
    elif extension in (".xyz", ".extxyz"):
        from dynforecast.io.xyz import write_xyz

        write_xyz(trajectory, path, overwrite=overwrite)
    elif extension == ".bvh":
        from dynforecast.io.bvh import write_bvh

        write_bvh(trajectory, path, overwrite=overwrite)
    else:
        check_export_target(path, overwrite=overwrite)  # raises: the extension is unknown
