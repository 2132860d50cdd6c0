"""`dynforecast predict`: autoregressive rollout of a trained model from given frames.

The rollout itself (frame grid, m windows per step, finite-difference velocities, the divergence
guard) is `dynforecast.rollout`, shared with `evaluate --rollout`, so an evaluation measures
exactly what predict writes. Here it runs for one start of one system; on divergence the frames
before it are written first, then `DivergenceError` (exit 6) is raised.

The output is the system's `Trajectory` copied with new positions, time, step and velocities, so
names, bonds and writer parameters carry over and exports are valid files of their format; the
H5MD file marks each frame in ``observables/<system>/is_forecast`` (0 given, 1 predicted).

Unit cells: the given frames keep their boxes, and every predicted frame gets the last given
frame's box. This assumes constant volume over the forecast: the models predict positions only,
and do not use periodic boundaries, so nothing predicts how an NPT box would change. It keeps
the forecast a periodic system (a PDB export writes CRYST1 in every MODEL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dynforecast.console import log
from dynforecast.data.graphs import GraphSpec
from dynforecast.data.loading import load_systems
from dynforecast.data.windows import WindowSpec
from dynforecast.errors import DivergenceError, UsageError
from dynforecast.io.atomic import check_output_path, reading_inputs
from dynforecast.io.export import check_export_target
from dynforecast.io.trajectory import Trajectory
from dynforecast.models.base import ForecastModel
from dynforecast.rigid_bones import PARAMETER as RIGID_PARAMETER
from dynforecast.rigid_bones import RigidBones, is_skeleton, resolve_rigid_bones
from dynforecast.rollout import (
    DIVERGENCE_FACTOR,
    RolloutPlan,
    SingleSystemBatcher,
    advance,
)
from dynforecast.train import setup
from dynforecast.train.summary import window_line

__all__ = ["DIVERGENCE_FACTOR", "Rollout", "RolloutPlan", "SingleSystemBatcher", "rollout"]


@dataclass(frozen=True)
class Rollout:
    """Given frames followed by predicted ones.

    Fields: trajectory (the system copy), is_forecast int8 [F], predicted (how many frames were
    predicted), divergence (why the rollout stopped early, or None).
    """

    trajectory: Trajectory
    is_forecast: np.ndarray
    predicted: int
    divergence: str | None


@torch.no_grad()
def rollout(
    model: ForecastModel,
    system: Trajectory,
    spec: WindowSpec,
    graph: GraphSpec,
    *,
    start: int,
    steps: int,
    node_attr_width: int = 0,
    use_velocities: bool = False,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    divergence_factor: float = DIVERGENCE_FACTOR,
    rigid_bones: bool = False,
) -> Rollout:
    """Predict ``steps`` grid frames after the given frames ending at ``start`` (module docstring).

    ``rigid_bones``: project every predicted frame onto the skeleton's bone lengths
    (`dynforecast.rigid_bones`); recorded as the output parameter ``rigid_bones`` (1 or 0).

    A loop over rollout steps is inherent; each step is one batch of m windows over all nodes.
    """
    if steps < 1:
        raise UsageError(f"--steps {steps}: expected at least 1")
    if use_velocities and system.velocities is None:
        raise UsageError(f"system {system.name!r}: the model needs velocities and it has none")
    device = device or torch.device("cpu")
    plan = RolloutPlan.for_spec(spec)
    frames = plan.given_frames(start, system.n_frames)
    frame_time = system.time_step if system.n_frames > 1 else 1.0
    batcher = SingleSystemBatcher(
        system,
        graph,
        node_attr_width=node_attr_width,
        past_dt=spec.spacing * frame_time,
        target_dt=spec.target_offset * frame_time,
        device=device,
        dtype=dtype,
    )
    n_given = len(frames)
    given = torch.as_tensor(system.positions[frames], device=device, dtype=dtype)
    given_velocities = None
    if use_velocities:
        given_velocities = torch.as_tensor(
            system.velocities[frames],  # type: ignore[index]
            device=device,
            dtype=dtype,
        )
    result = advance(
        model,
        batcher,
        plan,
        given,
        given_velocities,
        steps=steps,
        grid_dt=plan.grid * frame_time,
        divergence_factor=divergence_factor,
        bones=RigidBones.from_bonds(system.bonds, given) if rigid_bones else None,
    )
    predicted = int(result.predicted[0])
    known = n_given + predicted
    history, velocity, divergence = result.positions, result.velocities, result.divergence(0)
    positions_out = history[:known].cpu().numpy()
    velocities_out = None if velocity is None else velocity[:known].cpu().numpy()
    trajectory = _forecast_trajectory(system, frames, positions_out, velocities_out, plan.grid)
    parameters = {**trajectory.parameters, RIGID_PARAMETER: np.array([int(rigid_bones)], np.int8)}
    trajectory = dataclasses.replace(trajectory, parameters=parameters)
    flags = np.concatenate([np.zeros(n_given, np.int8), np.ones(predicted, np.int8)])
    return Rollout(trajectory, flags, predicted, divergence)


def _forecast_trajectory(
    system: Trajectory,
    frames: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None,
    grid: int,
) -> Trajectory:
    """The system with the given frames then the predicted ones, evenly continued in time/step.

    Velocities: the rollout's own where it tracked them; else, if the system has velocities,
    the data's at the given frames and finite differences over one grid interval afterwards.
    Box: the given frames' cells, then the last given one repeated (constant volume).
    """
    count = positions.shape[0] - len(frames)
    ahead = np.arange(1, count + 1) * grid
    last = int(frames[-1])
    frame_time = system.time_step
    step_delta = int(system.step[1] - system.step[0]) if system.n_frames > 1 else 1
    time = np.concatenate([system.time[frames], system.time[last] + ahead * frame_time])
    step = np.concatenate([system.step[frames], system.step[last] + ahead * step_delta])
    if velocities is None and system.velocities is not None:
        moved = np.diff(positions[len(frames) - 1 :], axis=0) / (grid * frame_time)
        velocities = np.concatenate([system.velocities[frames], moved])
    box = None
    if system.box is not None:
        held = np.broadcast_to(system.box[last], (count, 3, 3))
        box = np.concatenate([system.box[frames], held]).astype(np.float32)
    return dataclasses.replace(
        system,
        positions=positions.astype(np.float32),
        time=time.astype(np.float64),
        step=step.astype(np.int64),
        velocities=None if velocities is None else velocities.astype(np.float32),
        box=box,
    )


@dataclass(frozen=True)
class PredictSummary:
    output: Path
    export: Path | None
    system: str
    given: int
    predicted: int
    start: int
    frame_stride: int
    rigid_bones: bool = False

    def line(self) -> str:
        exported = f" and {self.export}" if self.export is not None else ""
        grid = (
            "every stored frame"
            if self.frame_stride == 1
            else f"one every {self.frame_stride} stored frames"
        )
        return (
            f"wrote {self.output}{exported}: system {self.system}, {self.given} given frames "
            f"ending at frame {self.start} + {self.predicted} predicted, {grid}"
            + (", bones kept rigid" if self.rigid_bones else "")
        )


def predict_file(
    data: Path,
    checkpoint: Path | Sequence[Path],
    output: Path,
    *,
    system: str | None = None,
    start: int | None = None,
    steps: int,
    export: Path | None = None,
    overwrite: bool = False,
    device: str = "auto",
    rigid_bones: bool | None = None,
) -> PredictSummary:
    """Roll out ``checkpoint`` on one system of ``data`` and write H5MD (and an export).

    Without ``system`` the file's first system is used; without ``start`` the rollout starts at
    the system's last frame (a forecast beyond the data). Output paths are checked before any
    work; on divergence the frames so far are written, then DivergenceError is raised. Several
    checkpoints (or run directories) are an ensemble (`dynforecast.ensemble`): the forecast is
    the members' mean, their spread the observable ``spread`` and a PDB export's B-factors.
    ``rigid_bones`` None = on for skeleton input (BVH, ASF/AMC), `dynforecast.rigid_bones`.
    An output or export that is ``data`` or a checkpoint is refused, even with ``overwrite``
    (OutputError, `dynforecast.io.atomic.reading_inputs`).
    """
    paths = (
        [Path(checkpoint)] if isinstance(checkpoint, (str, Path)) else list(map(Path, checkpoint))
    )
    from dynforecast.train.trained import checkpoint_inputs

    with reading_inputs([data, *checkpoint_inputs(paths)]):
        from dynforecast.ensemble import check_all, ensemble_rollout, load_members
        from dynforecast.io.h5md import write_h5md

        check_output_path(output, overwrite=overwrite)
        if export is not None:
            check_export_target(export, overwrite=overwrite)
        torch_device = setup.resolve_device(device)
        members = load_members(paths)
        trained = members[0]
        # Only the system forecast is read (the first one by default), however many the file has.
        chosen = load_systems(data, [system if system is not None else _first_system(data)])[0]
        if export is not None:  # the format's preconditions, before anything is written
            check_export_target(export, overwrite=overwrite, trajectory=chosen)
        check_all(members, [chosen], data)
        for member in members:
            member.to(torch_device)
        spec = setup.window_spec(trained.config)
        plan = RolloutPlan.for_spec(spec)
        rigid = resolve_rigid_bones(rigid_bones, [chosen])

        def run(model: ForecastModel) -> Rollout:
            return rollout(
                model,
                chosen,
                spec,
                setup.graph_spec(trained.config),
                start=chosen.n_frames - 1 if start is None else start,
                steps=steps,
                node_attr_width=trained.signature.node_attr_width,
                use_velocities=trained.signature.has_velocities,
                device=torch_device,
                dtype=getattr(torch, trained.config.dtype),
                rigid_bones=rigid,
            )

        spread = None
        if len(members) == 1:
            result = run(trained.model)
        else:
            result, spread, _ = ensemble_rollout([m.model for m in members], run)
        log(f"window {window_line(spec, chosen.time_step, chosen.time_unit)}; system {chosen.name}")
        if is_skeleton(chosen):
            log(
                "rigid bones: "
                + (
                    "on (each predicted frame projected onto the bone lengths; --no-rigid-bones "
                    "turns it off)"
                    if rigid
                    else "off (--no-rigid-bones)"
                )
            )
        write_h5md(
            output,
            [result.trajectory],
            overwrite=overwrite,
            is_forecast={chosen.name: result.is_forecast},
            spread=None if spread is None else {chosen.name: spread},
        )
        if export is not None:
            from dynforecast.io.export import export_trajectory

            try:
                export_trajectory(
                    result.trajectory,
                    export,
                    overwrite=overwrite,
                    is_forecast=result.is_forecast,
                    bfactors=_bfactors(spread, export, chosen.length_unit),
                )
            except BaseException:  # one command, both files or neither (Ctrl-C included)
                output.unlink(missing_ok=True)
                raise
        if result.divergence is not None:
            raise DivergenceError(
                f"{output}: rollout diverged: {result.divergence}; wrote the "
                f"{plan.given} given and {result.predicted} predicted frames before it"
            )
        return PredictSummary(
            output=output,
            export=export,
            system=chosen.name,
            given=plan.given,
            predicted=result.predicted,
            start=chosen.n_frames - 1 if start is None else start,
            frame_stride=plan.grid,
            rigid_bones=rigid,
        )


#: Largest value PDB's B-factor field (F6.2) holds.
MAX_BFACTOR = 99.99


def _bfactors(spread: np.ndarray | None, export: Path, length_unit: str) -> np.ndarray | None:
    """The spread for a PDB's B-factor column (in Angstrom like the coordinates, clipped to the
    field; dimensionless data as is); None without a spread or for other formats."""
    from dynforecast.io.units import length_factor

    if spread is None:
        return None
    if export.suffix.lower() != ".pdb":
        log(f"note: {export}: only a PDB export carries the ensemble spread (B-factor column)")
        return None
    return np.clip(spread * (length_factor(length_unit, "Angstrom") or 1.0), 0.0, MAX_BFACTOR)


def _first_system(data: Path) -> str:
    """The name of the first system of ``data``; InputError for a file without one."""
    from dynforecast.errors import InputError, describe_path
    from dynforecast.io.h5md import list_systems

    names = list_systems(data)
    if not names:
        raise InputError(f"{describe_path(data)}: no systems in the file")
    return names[0]
