"""Write positions of an ASF skeleton (an ingested AMC or a forecast of one) as an AMC file.

Inverse kinematics: the AMC values whose forward kinematics (`io.asf_kinematics`) best places
the bone tips, found per frame by damped Gauss-Newton (Levenberg-Marquardt) over all dofs at
once, vectorised over frames, so bones with fewer than three dofs (hinges) are solved within
their dofs. Exact poses are reproduced to float precision; stretched ones in least squares.
The ASF is the one recorded at ingest (``asf_text``), unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynforecast.console import log
from dynforecast.errors import UsageError
from dynforecast.io.asf import AsfSkeleton, parse_asf
from dynforecast.io.asf_kinematics import forward_kinematics
from dynforecast.io.atomic import atomic_output, check_output_path
from dynforecast.io.trajectory import Trajectory

_ITERATIONS = 60


def _strings(value: object) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]


def skeleton_of(traj: Trajectory, path: Path) -> AsfSkeleton:
    """The ASF skeleton recorded at ingest; UsageError naming ``path`` if absent."""
    if "asf_text" not in traj.parameters:
        raise UsageError(
            f"{path}: trajectory {traj.name!r} has no ASF skeleton (parameter asf_text); only "
            "skeletons read from ASF/AMC files can be written as AMC"
        )
    skeleton = parse_asf("".join(_strings(traj.parameters["asf_text"])), Path("asf_text"))[0]
    if skeleton.n_particles != traj.n_particles:
        raise UsageError(
            f"{path}: the ASF skeleton has {skeleton.n_particles} bones and root but trajectory "
            f"{traj.name!r} has {traj.n_particles} particles"
        )
    return skeleton


def inverse_kinematics(
    skeleton: AsfSkeleton, tips: np.ndarray, *, degrees: bool = True
) -> np.ndarray:
    """AMC values float64 [F, D] whose tips best match ``tips`` [F, P, 3] (least squares)."""
    tips = np.asarray(tips, dtype=np.float64)
    frames, dofs = tips.shape[0], skeleton.n_dofs
    motion = np.zeros((frames, dofs))
    root = skeleton.dofs[0]
    for axis, dof in enumerate(("tx", "ty", "tz")):
        if dof in root:
            motion[:, root.index(dof)] = tips[:, 0, axis] - skeleton.root_position[axis]
    scale = max(1.0, float(np.abs(tips).max()))

    def residual(values: np.ndarray) -> np.ndarray:
        return (forward_kinematics(skeleton, values, degrees=degrees)[0] - tips).reshape(frames, -1)

    r = residual(motion)
    cost = np.sum(r**2, axis=1)
    damping = np.full(frames, 1e-3)
    step = 1e-6 * (180.0 / np.pi if degrees else 1.0)
    for _ in range(_ITERATIONS):  # iterations of the solver, every frame at once
        if cost.max() < (1e-12 * scale) ** 2:
            break
        jacobian = np.empty((frames, r.shape[1], dofs))
        for d in range(dofs):  # one FK per dof: columns of the Jacobian for all frames
            shifted = motion.copy()
            shifted[:, d] += step
            jacobian[:, :, d] = (residual(shifted) - r) / step
        normal = np.swapaxes(jacobian, 1, 2) @ jacobian
        gradient = np.einsum("frd,fr->fd", jacobian, r)
        diagonal = np.einsum("fdd->fd", normal)
        damped = normal + (damping[:, None] * (diagonal + 1e-9))[:, :, None] * np.eye(dofs)
        delta = np.linalg.solve(damped, -gradient[..., None])[..., 0]
        trial = motion + delta
        trial_r = residual(trial)
        trial_cost = np.sum(trial_r**2, axis=1)
        better = trial_cost < cost
        motion = np.where(better[:, None], trial, motion)
        r = np.where(better[:, None], trial_r, r)
        cost = np.where(better, trial_cost, cost)
        damping = np.where(better, damping / 3.0, damping * 4.0)
    rotation = np.array([d[0] == "r" for dofs_ in skeleton.dofs for d in dofs_], dtype=bool)
    half = 180.0 if degrees else np.pi
    motion[:, rotation] = (motion[:, rotation] + half) % (2 * half) - half
    return motion


def write_amc(traj: Trajectory, path: Path, *, overwrite: bool = False) -> None:
    """Write ``traj`` (an ASF/AMC system or its forecast) as an AMC file for its ASF."""
    path = Path(path)
    check_output_path(path, overwrite=overwrite)
    skeleton = skeleton_of(traj, path)
    params = traj.parameters
    degrees = bool(np.asarray(params.get("amc_degrees", [1])).ravel()[0])
    motion = inverse_kinematics(skeleton, traj.positions, degrees=degrees)
    tips = forward_kinematics(skeleton, motion, degrees=degrees)[0]
    error = float(np.abs(tips - traj.positions).max()) if traj.n_frames else 0.0
    if error > 1e-5 * max(1.0, float(np.abs(traj.positions).max())):
        log(
            f"warning: {path}: the AMC values place bone tips up to {error:.4g} away from the "
            "positions (stretched bones, or inverse kinematics did not converge)"
        )
    header = [h for h in _strings(params.get("amc_header", [""])) if h]
    bones = [b for b in _strings(params.get("amc_bones", [""])) if b]
    if not bones:
        bones = [n for n, d in zip(skeleton.names, skeleton.dofs, strict=True) if d]
    index = {name: i for i, name in enumerate(skeleton.names)}
    columns, lines = [], []
    for bone in bones:  # static layout of one frame
        b = index[bone]
        start, count = int(skeleton.dof_starts[b]), len(skeleton.dofs[b])
        columns += list(range(start, start + count))
        lines.append(bone + " %.6f" * count)
    first = int(np.asarray(params.get("amc_first_frame", [1])).ravel()[0])
    numbers = np.arange(first, first + traj.n_frames, dtype=np.float64)
    values = np.concatenate([numbers[:, None], motion[:, columns]], axis=1)
    template = "%d\n" + "\n".join(lines) + "\n"
    body = (template * traj.n_frames) % tuple(values.ravel().tolist())
    with atomic_output(path, overwrite=overwrite) as scratch:
        scratch.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
